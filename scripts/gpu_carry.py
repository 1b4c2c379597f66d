"""Pack MGIF's training split small enough to travel to a lent GPU machine.

    python scripts/gpu_carry.py ../shared/data/mgif128/train .gpu/train [--max-mib 32]

A lent machine receives at most 64 MiB: the work tree (30 MiB, mostly the bundled model) and
the untracked folders named to travel with it. MGIF's 812 training videos are 80 MB as PNG
strips, so the first GPU run trained on 246 of them. This writes each training video (the
`--split train` side of the 10% file-name-hash split, the videos `donkey train` uses by
default) as a lossless WebP strip of the exact uint8 frames donkey's reader decodes from the
PNG, about half the bytes; every file is read back and compared before it is kept. Videos
longer than a WebP strip allows (16383 pixels wide) are cut into even parts that fit.

All 812 take about 43 MiB, more than fits beside the tree, so videos are taken in the order of
their file-name hash (a fixed random order) until `--max-mib` is reached; the names taken are
listed in TARGET/videos.txt. Files already in TARGET that decode to the right frames are kept,
so an interrupted run continues where it stopped; other .webp files there are removed.

Train on the folder with `--val-fraction 0` (every file in it is a training video): names
change the hash split, and the validation videos are not in it. Evaluate on the CPU here
against the PNGs (docs/default-model.md, "Next: a longer GPU stage").
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from donkey.data.datasets import list_videos, select_split, split_fraction
from donkey.data.media import MediaError, read_video

WEBP_MAX_SIDE = 16383


def encode(frames: np.ndarray) -> bytes:
    """(T, S, S, 3) uint8 -> lossless WebP bytes of the frames side by side."""
    strip = np.concatenate(list(frames), axis=1)
    buffer = io.BytesIO()
    Image.fromarray(strip).save(buffer, "WEBP", lossless=True, quality=100, method=6)
    return buffer.getvalue()


def _decodes_to(path: Path, frames: np.ndarray, size: int) -> bool:
    try:
        back = read_video(path, size).frames
    except MediaError:  # e.g. cut short by an interrupted run
        return False
    return back.shape == frames.shape and np.array_equal(back, frames)


def _write_checked(out: Path, frames: np.ndarray, size: int) -> int:
    """Writes `frames` to `out` unless it already decodes to them; returns the file's bytes."""
    if out.exists() and _decodes_to(out, frames, size):
        return out.stat().st_size
    tmp = out.with_name(f"{out.stem}.partial.webp")
    tmp.write_bytes(encode(frames))
    if not _decodes_to(tmp, frames, size):
        tmp.unlink()
        raise SystemExit(f"{out}: the WebP copy does not decode to the same frames")
    os.replace(tmp, out)
    return out.stat().st_size


def pack(source: Path, target: Path, size: int, val_fraction: float, max_bytes: float) -> int:
    files = select_split(list_videos(source), "train", val_fraction)
    files.sort(key=lambda f: split_fraction(f.name))
    target.mkdir(parents=True, exist_ok=True)
    per_part = WEBP_MAX_SIDE // size
    total, taken, written = 0, [], set()
    for i, path in enumerate(files, 1):
        frames = read_video(path, size).frames
        # Even parts: no one-frame remainder, which training would skip.
        parts = np.array_split(frames, -(-len(frames) // per_part))
        names = [
            path.stem + (f"-{k}" if len(parts) > 1 else "") + ".webp" for k in range(len(parts))
        ]
        sizes = [_write_checked(target / n, part, size) for n, part in zip(names, parts)]
        if total + sum(sizes) > max_bytes:
            for name in names:
                (target / name).unlink()
            break
        total += sum(sizes)
        taken.append(path.name)
        written.update(names)
        if i % 50 == 0:
            print(f"{i}/{len(files)} videos, {total / 2**20:.1f} MiB", flush=True)
    for stale in target.glob("*.webp"):
        if stale.name not in written:  # from an earlier run with a larger budget, or cut short
            stale.unlink()
    (target / "videos.txt").write_text("".join(f"{name}\n" for name in taken))
    print(f"{len(taken)} of {len(files)} training videos")
    return total


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="MGIF folder (PNG strips)")
    parser.add_argument("target", type=Path, help="folder for the WebP strips")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--max-mib", type=float, default=32.0, help="stop before this many MiB")
    args = parser.parse_args(argv)
    total = pack(args.source, args.target, args.size, args.val_fraction, args.max_mib * 2**20)
    print(f"wrote {args.target}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
