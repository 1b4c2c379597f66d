"""A source image and a driving clip of real image content (rendered synthetic creatures), for
parity checks and benchmarks: deterministic, and needs no data on disk."""

from __future__ import annotations

import numpy as np

from donkey.data.creature import random_plan
from donkey.data.synthetic import random_motion, render_video


def rendered_clip(size: int, frames: int = 8, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) source and (frames, size, size, 3) driving, uint8: two creatures."""
    rng = np.random.default_rng(seed)
    motion = random_motion(rng, frames)
    source, _ = render_video(random_plan(rng, motion.legs), motion, size)
    driving, _ = render_video(random_plan(rng, motion.legs), motion, size)
    return source[0], driving
