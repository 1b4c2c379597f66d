"""File-level animation of one source with one driving video: read, animate, write."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from donkey.data.frames import WHITE, frames_to_tensor, tensor_to_frames
from donkey.data.media import read_image, read_video
from donkey.data.writers import check_output_suffix, write_video
from donkey.runtime.animator import Animator


@dataclass
class AnimateOptions:
    fit: str = "pad"
    background: tuple[int, int, int] = WHITE
    side_by_side: bool = False


@dataclass
class AnimateResult:
    output: Path
    frames: int
    timings: dict[str, float] = field(default_factory=dict)


def side_by_side(source: np.ndarray, driving: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(H, W, 3), (T, H, W, 3), (T, H, W, 3) -> (T, H, 3W, 3): source | driving | result."""
    src = np.broadcast_to(source, prediction.shape)
    return np.concatenate([src, driving, prediction], axis=2)


def animate_file(
    animator: Animator,
    source_path: str | Path,
    driving_path: str | Path,
    output: str | Path,
    options: AnimateOptions | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> AnimateResult:
    """Animates one source with one driving file; the output is written atomically."""
    options = options or AnimateOptions()
    check_output_suffix(output)
    size = animator.model.config.image_size
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    source = read_image(source_path, size, options.fit, options.background)
    clip = read_video(driving_path, size, options.fit, options.background)
    timings["read"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    state = animator.prepare_source(frames_to_tensor(source[None]))
    driving = animator.driving_keypoints(frames_to_tensor(clip.frames))
    parts = []
    for batch in animator.render_batches(state, driving):
        parts.append(tensor_to_frames(batch))
        if on_frames is not None:
            on_frames(batch.shape[0])
    if animator.device.type == "cuda":
        torch.cuda.synchronize(animator.device)
    timings["model"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    frames = np.concatenate(parts)
    if options.side_by_side:
        frames = side_by_side(source, clip.frames, frames)
    write_video(output, frames, clip.fps)
    timings["write"] = time.perf_counter() - t2
    return AnimateResult(Path(output), len(frames), timings)
