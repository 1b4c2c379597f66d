"""Exact cross-identity pairs from real videos: each video v paired with identity changes
I_k(v) (donkey/data/identity_change.py), the same motion frame by frame in another shape and
colour, written as PNG strips with a pairs manifest (docs/architecture.md, "Pairs manifest").

The folder is self-contained: each original is written beside its changes as `<stem>.png`, the
frames exactly as read at `size` (alpha composited on white), so A and B of a pair are decoded
the same way and the folder can be moved. `pairs.json` is written last: a run cut short leaves
no manifest. Light to import: NumPy and PyTorch load inside the run."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from donkey.model.errors import DonkeyError

if TYPE_CHECKING:
    import numpy as np

MANIFEST_NAME = "pairs.json"
KIND = "identity-change"
# progress(done): after each video of the split, read or skipped.
Progress = Callable[[int], None]


def changed_name(stem: str, k: int) -> str:
    """The file of identity k of the video named `stem`."""
    return f"{stem}__id{k}.png"


def identity_seed(seed: int, name: str, k: int) -> list[int]:
    """The seed of identity k of a video, from its file name (not its position), so adding
    videos to the folder leaves the other videos' identities as they were."""
    digest = int.from_bytes(hashlib.sha1(name.encode("utf-8", "surrogateescape")).digest()[:8])
    return [seed, digest, k]


def _check_options(
    out_dir: Path, per_video: int, seed: int, strength: float, val_fraction: float, size: int
) -> None:
    def integer(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not integer(per_video) or per_video < 1:
        raise DonkeyError(f"per_video must be an integer >= 1, got {per_video!r}")
    if not integer(seed) or seed < 0:
        raise DonkeyError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)):
        raise DonkeyError(f"strength must be a number in [0, 1], got {strength!r}")
    if not 0.0 <= strength <= 1.0:
        raise DonkeyError(f"strength must be in [0, 1], got {strength!r}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise DonkeyError(f"val_fraction must be a number in [0, 1], got {val_fraction!r}")
    if not 0.0 <= val_fraction <= 1.0:
        raise DonkeyError(f"val_fraction must be in [0, 1], got {val_fraction!r}")
    if not integer(size) or not 16 <= size <= 1024:
        raise DonkeyError(f"size must be an integer in [16, 1024], got {size!r}")
    if out_dir.exists() and not out_dir.is_dir():
        raise DonkeyError(f"{out_dir}: exists and is not a folder")


def videos_of_split(
    videos: Sequence[Path] | Path | str, split: str, val_fraction: float
) -> list[Path]:
    from donkey.data.datasets import list_videos, select_split

    if isinstance(videos, (str, Path)):
        files = list_videos(videos)
        where = str(videos)
    else:
        files = [Path(v) for v in videos]
        where = f"the {len(files)} videos given"
    chosen = select_split(files, split, val_fraction)
    if not chosen:
        raise DonkeyError(f"{where}: no video in the {split!r} split (val_fraction {val_fraction})")
    return chosen


def _read(
    path: Path, size: int, names: list[str], taken: dict[str, str]
) -> tuple[np.ndarray | None, str]:
    """(frames, "") for a usable video, else (None, why not)."""
    from donkey.data.media import MediaError, read_video

    clash = next((n for n in names if n in taken), None)
    if clash is not None:
        return None, f"its output {clash} is already written for {taken[clash]}"
    try:
        frames = read_video(path, size).frames
    except MediaError as exc:
        return None, exc.cause
    if len(frames) < 2:
        return None, f"only {len(frames)} frame"
    return frames, ""


def make_identity_pairs(
    videos: Sequence[Path] | Path | str,
    out_dir: Path | str,
    per_video: int,
    seed: int,
    strength: float,
    split: str = "train",
    val_fraction: float = 0.1,
    size: int = 128,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Writes per video of the split its original `<stem>.png` and `per_video` changed copies
    `<stem>__id<k>.png` (PNG strips, size x size frames) and `out_dir/pairs.json`: one pair
    (original, copy) per copy with identity mappings. Returns the manifest's path.

    `videos` is a folder (its media files) or a list of files; the split is `donkey train`'s
    (by file-name hash). Unreadable videos, videos of one frame and names that would collide
    are listed in the manifest's `rejected`. An existing non-empty `out_dir` is refused unless
    `overwrite` (files of the same names are then replaced, others left alone)."""
    out_dir = Path(out_dir)
    _check_options(out_dir, per_video, seed, strength, val_fraction, size)
    files = videos_of_split(videos, split, val_fraction)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise DonkeyError(
                f"{out_dir}: folder exists and is not empty (pass --overwrite to write into it)"
            )
        inside = next((f for f in files if f.resolve().parent == out_dir.resolve()), None)
        if inside is not None:
            # The originals written as <stem>.png would replace input files.
            raise DonkeyError(f"{out_dir}: holds the input {inside.name}; choose another folder")

    from donkey.data.identity_change import IdentityChange, apply_identity
    from donkey.data.manifest import Pair, PairsManifest, Rejected, save_manifest
    from donkey.data.writers import write_video

    out_dir.mkdir(parents=True, exist_ok=True)
    pairs: list[Pair] = []
    rejected: list[Rejected] = []
    taken: dict[str, str] = {MANIFEST_NAME: "the manifest"}
    for done, path in enumerate(files, start=1):
        names = [f"{path.stem}.png"] + [changed_name(path.stem, k) for k in range(per_video)]
        frames, reason = _read(path, size, names, taken)  # (T, size, size, 3) uint8
        if frames is None:
            rejected.append(Rejected(path.name, "", reason))
        else:
            taken.update(dict.fromkeys(names, path.name))
            write_video(out_dir / names[0], frames)
            identity = list(range(len(frames)))
            for k, name in enumerate(names[1:]):
                change = IdentityChange.random(identity_seed(seed, path.name, k), strength)
                write_video(out_dir / name, apply_identity(frames, change))
                pairs.append(Pair(names[0], name, identity, identity, 0.0, 1.0, 0.0))
        if progress is not None:
            progress(done)
    if not pairs:
        first = rejected[0]
        more = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
        raise DonkeyError(
            f"none of the {len(files)} videos could be used: {first.a}: {first.reason}{more}"
        )
    params = {
        "kind": KIND,
        "seed": seed,
        "strength": float(strength),
        "per_video": per_video,
        "split": split,
        "val_fraction": float(val_fraction),
        "size": size,
    }
    manifest = PairsManifest(root=Path("."), pairs=pairs, params=params, rejected=rejected)
    return save_manifest(out_dir / MANIFEST_NAME, manifest)
