"""Training datasets and the deterministic step sampler.

Every sample is a pure function of (dataset index, sample seed), and the sampler makes both a
pure function of the training step. So a resumed run sees exactly the samples an
uninterrupted one would, with or without loader workers, on any number of ranks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from donkey.data.augment import augment_frames
from donkey.data.budget import Budget
from donkey.data.frames import frames_to_tensor
from donkey.data.manifest import PairsManifest, check_pair_lengths
from donkey.data.media import MEDIA_SUFFIXES, MediaError, read_video
from donkey.model.config import AugmentConfig
from donkey.model.errors import DonkeyError

Progress = Callable[[int, int], None]


def list_videos(folder: str | Path) -> list[Path]:
    """Media files directly inside `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        reason = "is not a folder" if folder.exists() else "no such data folder"
        raise DonkeyError(f"{folder}: {reason}")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES
    )
    if not files:
        raise DonkeyError(f"{folder}: holds no GIF, MP4 or image files")
    return files


def split_fraction(name: str) -> float:
    """A stable number in [0, 1) from a file name: the same split on every machine."""
    # surrogateescape: a name that is not UTF-8 hashes its raw bytes (valid names are unchanged).
    digest = hashlib.sha1(name.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def select_split(files: Sequence[Path], split: str, val_fraction: float) -> list[Path]:
    """'train' keeps names hashing at or above `val_fraction`, 'val' those below, 'all' all."""
    if split == "all":
        return list(files)
    if split not in ("train", "val"):
        raise DonkeyError(f"split must be train, val or all, got {split!r}")
    keep_val = split == "val"
    return [f for f in files if (split_fraction(f.name) < val_fraction) == keep_val]


@dataclass
class Video:
    name: str
    frames: np.ndarray  # (T, S, S, 3) uint8


def load_videos(
    files: Sequence[Path],
    size: int,
    min_frames: int = 2,
    progress: Progress | None = None,
    allow_empty: bool = False,
    budget: Budget | None = None,
) -> tuple[list[Video], list[str]]:
    """Reads videos at the model size (within `budget`; None: the environment's); returns them
    and one-line notes for skipped files.

    When none can be used that is an error, unless `allow_empty` (one shard of a larger set,
    whose caller decides once all shards are in)."""
    videos, skipped = [], []
    for i, path in enumerate(files):
        try:
            clip = read_video(path, size, budget=budget)
        except MediaError as exc:
            skipped.append(str(exc))
        else:
            if len(clip.frames) < min_frames:
                skipped.append(f"{path}: only {len(clip.frames)} frame(s)")
            else:
                videos.append(Video(path.name, clip.frames))
        if progress is not None:
            progress(i + 1, len(files))
    if files and not videos and not allow_empty:
        # Nothing to work on: say why instead of carrying on with an empty set.
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise DonkeyError(f"none of the {len(files)} files could be used: {skipped[0]}{more}")
    return videos, skipped


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


class SingleVideoDataset(Dataset):
    """Monkey-Net samples: source and driving are two different frames of one video."""

    def __init__(self, videos: list[Video], augment: AugmentConfig | None) -> None:
        if not videos:
            raise DonkeyError("no training videos with at least 2 frames")
        self.videos = videos
        self.augment = augment

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Tensor]:
        index, seed = item
        rng = _rng(seed)
        frames = self.videos[index].frames
        src, drv = rng.choice(len(frames), size=2, replace=False)
        x = frames_to_tensor(frames[[src, drv]])
        if self.augment is not None:
            x = augment_frames(x, self.augment, rng)
        return {"source": x[0], "driving": x[1], "index": torch.tensor(index)}


def source_candidates(length: int, excluded: int) -> np.ndarray:
    """Original frame ids other than the target's: a source never equals its target."""
    ids = np.arange(length)
    return ids[ids != excluded]


class PairedVideoDataset(Dataset):
    """Donkey-Net dual-reconstruction samples from a pairs manifest.

    For a pair (A, B) and a time t of A: driving_A = A[t], driving_B = B[b_for_a[t]] (the
    same pose), source_A from A's frames except t, source_B from B's original frames except
    b_for_a[t]. Each pair is listed `repeats` times per epoch; half the samples swap roles.
    """

    def __init__(
        self,
        manifest: PairsManifest,
        size: int,
        augment: AugmentConfig | None,
        repeats: int = 3,
        videos: dict[str, np.ndarray] | None = None,
    ) -> None:
        if not manifest.pairs:
            raise DonkeyError("the pairs manifest holds no pairs")
        self.pairs = manifest.pairs
        self.repeats = repeats
        self.augment = augment
        if videos is None:
            names = sorted({p.a for p in self.pairs} | {p.b for p in self.pairs})
            videos = {n: read_video(manifest.path_of(n), size).frames for n in names}
        self.videos = videos
        for pair in self.pairs:
            la, lb = len(self.videos[pair.a]), len(self.videos[pair.b])
            check_pair_lengths(pair, la, lb, manifest.source)
            if la < 2 or lb < 2:
                raise DonkeyError(f"pair ({pair.a}, {pair.b}): videos need at least 2 frames")

    def __len__(self) -> int:
        return len(self.pairs) * self.repeats

    def sample_ids(self, index: int, seed: int) -> dict[str, object]:
        """The frame choice for one sample (exposed for tests): names and frame ids."""
        rng = _rng(seed)
        pair = self.pairs[index % len(self.pairs)]
        a, b, mapping = pair.a, pair.b, pair.b_for_a
        if rng.random() < 0.5:
            a, b, mapping = pair.b, pair.a, pair.a_for_b
        t = int(rng.integers(len(mapping)))
        t_b = int(mapping[t])
        src_a = int(rng.choice(source_candidates(len(self.videos[a]), t)))
        src_b = int(rng.choice(source_candidates(len(self.videos[b]), t_b)))
        return {
            "a": a,
            "b": b,
            "driving_a": t,
            "driving_b": t_b,
            "source_a": src_a,
            "source_b": src_b,
            "rng": rng,
        }

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Tensor]:
        index, seed = item
        ids = self.sample_ids(index, seed)
        va, vb = self.videos[ids["a"]], self.videos[ids["b"]]
        stack = np.stack(
            [va[ids["driving_a"]], vb[ids["driving_b"]], va[ids["source_a"]], vb[ids["source_b"]]]
        )
        x = frames_to_tensor(stack)
        if self.augment is not None:
            # Time flip would reorder roles here; only the spatial and colour parts apply.
            cfg = AugmentConfig(
                0.0,
                self.augment.flip_horizontal,
                self.augment.scale_min,
                self.augment.scale_max,
                self.augment.hue,
            )
            x = augment_frames(x, cfg, ids["rng"])
        return {
            "driving_a": x[0],
            "driving_b": x[1],
            "source_a": x[2],
            "source_b": x[3],
            "index": torch.tensor(index),
        }


class StepBatchSampler:
    """Yields, for each step in [start, stop), this rank's list of (index, sample seed).

    Epoch e is a seeded permutation of the dataset (repeated when the dataset is smaller
    than one global batch); step s takes global batch s mod steps-per-epoch of it; rank r
    takes the r-th slice. Ranks therefore see disjoint samples.
    """

    def __init__(
        self, size: int, batch_size: int, world: int, rank: int, seed: int, start: int, stop: int
    ) -> None:
        if size < 1:
            raise DonkeyError("empty training set")
        self.size, self.batch, self.world, self.rank = size, batch_size, world, rank
        self.seed, self.start, self.stop = seed, start, stop
        self.global_batch = batch_size * world
        self.copies = -(-self.global_batch // size)  # ceil
        self.steps_per_epoch = (size * self.copies) // self.global_batch

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def _epoch(self, epoch: int) -> np.ndarray:
        order = _rng([self.seed, epoch, 7919]).permutation(self.size * self.copies)
        return order % self.size

    def batch_for(self, step: int) -> list[tuple[int, int]]:
        epoch, pos = divmod(step, self.steps_per_epoch)
        order = self._epoch(epoch)
        first = pos * self.global_batch + self.rank * self.batch
        chosen = order[first : first + self.batch]
        seeds = _rng([self.seed, step, self.rank, 104729]).integers(0, 2**62, size=self.batch)
        return [(int(i), int(s)) for i, s in zip(chosen, seeds)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            yield self.batch_for(step)
