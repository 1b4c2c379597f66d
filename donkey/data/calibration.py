"""Clips for int8 calibration and for the reduced-precision quality gate.

Real frames come from a folder of videos, split by file-name hash as training splits them
(`datasets.select_split`): calibration reads the "train" part and the quality gate the
held-out "val" part, so the gate never scores frames the quantizer saw. Synthetic creatures
(`data/synthetic.py`) are always available, need no files, and fill in when no folder is
given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from donkey.data.creature import random_plan
from donkey.data.datasets import list_videos, select_split
from donkey.data.media import MediaError, read_video
from donkey.data.synthetic import random_motion, render_video
from donkey.model.errors import DonkeyError

VAL_FRACTION = 0.1  # the training default (`donkey train --val-fraction`)


@dataclass
class ClipSet:
    """Clips of (T, S, S, 3) uint8 frames and, in words, where they came from."""

    clips: list[np.ndarray]
    sources: list[str]
    skipped: list[str]

    @property
    def frames(self) -> int:
        return sum(len(c) for c in self.clips)


def synthetic_clips(size: int, count: int, frames: int = 8, seed: int = 0) -> list[np.ndarray]:
    """`count` rendered creatures, `frames` frames each (deterministic in seed)."""
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(count):
        motion = random_motion(rng, frames)
        video, _ = render_video(random_plan(rng, motion.legs), motion, size)
        clips.append(video)
    return clips


def _evenly(items: list, count: int) -> list:
    if len(items) <= count:
        return list(items)
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in picks]


def folder_clips(
    folder: Path, size: int, split: str, count: int, frames: int = 8
) -> tuple[list[np.ndarray], list[str]]:
    """Up to `count` videos of the folder's `split`, spread over its sorted names; `frames`
    frames of each, spread over the video. Unreadable files are skipped (not replaced) and
    named."""
    files = select_split(list_videos(folder), split, VAL_FRACTION)
    if not files:
        raise DonkeyError(f"{folder}: its {split} split holds no videos")
    clips, skipped = [], []
    for path in _evenly(files, count):
        try:
            video = read_video(path, size).frames
        except MediaError as exc:
            skipped.append(str(exc))
            continue
        if len(video) < 2:
            skipped.append(f"{path}: only {len(video)} frame(s)")
            continue
        clips.append(np.stack(_evenly(list(video), frames)))
    if not clips:
        raise DonkeyError(f"{folder}: none of its {split} videos could be read ({skipped[0]})")
    return clips, skipped


def clip_set(
    size: int,
    folder: Path | None,
    split: str,
    real: int = 24,
    synthetic: int = 8,
    frames: int = 8,
    seed: int = 0,
) -> ClipSet:
    """Real clips from `folder` (its `split`) plus synthetic ones; synthetic only without a
    folder (then `real` synthetic clips take the folder's place, so the size stays)."""
    clips: list[np.ndarray] = []
    sources: list[str] = []
    skipped: list[str] = []
    if folder is not None:
        real_clips, skipped = folder_clips(Path(folder), size, split, real, frames)
        clips += real_clips
        sources.append(
            f"{len(real_clips)} clips of {folder} ({split} split, "
            f"{sum(len(c) for c in real_clips)} frames)"
        )
    count = synthetic if folder is not None else real + synthetic
    made = synthetic_clips(size, count, frames, seed)
    clips += made
    sources.append(f"{count} synthetic creature clips (seed {seed}, {count * frames} frames)")
    return ClipSet(clips, sources, skipped)
