"""A PNG grid to look at a model's output: per row, one validation video (or synthetic pair):
driving frames on top, the model's frames below, the source first.

    python scripts/preview_grid.py MODEL OUT.png --data ../shared/data/mgif128/train --pairs PAIRS.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from donkey.data.datasets import list_videos, select_split
from donkey.data.frames import frames_to_tensor, tensor_to_frames
from donkey.data.manifest import load_manifest
from donkey.data.media import read_video
from donkey.data.writers import write_image
from donkey.runtime.animator import Animator
from donkey.runtime.loader import load_model


def _row(animator: Animator, source: np.ndarray, driving: np.ndarray, columns: int) -> np.ndarray:
    picks = np.linspace(0, len(driving) - 1, columns).round().astype(int)
    out = tensor_to_frames(
        animator.animate(frames_to_tensor(source[None]), frames_to_tensor(driving[picks])).cpu()
    )
    top = np.concatenate([source, *driving[picks]], axis=1)
    bottom = np.concatenate([np.full_like(source, 255), *out], axis=1)
    return np.concatenate([top, bottom], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--data")
    parser.add_argument("--pairs")
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--columns", type=int, default=6)
    args = parser.parse_args()
    model = load_model(args.model, device="cpu")
    size = model.config.image_size
    rows = []
    if args.data:
        animator = Animator(model, mode="absolute")
        files = select_split(list_videos(args.data), "val", 0.1)
        for f in files[:: max(1, len(files) // args.videos)][: args.videos]:
            frames = read_video(f, size).frames
            rows.append(_row(animator, frames[0], frames, args.columns))
    if args.pairs:
        animator = Animator(model, mode="relative")
        manifest = load_manifest(args.pairs)
        for pair in manifest.pairs[:2]:
            a = read_video(manifest.path_of(pair.a), size).frames
            b = read_video(manifest.path_of(pair.b), size).frames
            rows.append(_row(animator, b[pair.b_for_a[0]], a, args.columns))
    write_image(Path(args.out), np.concatenate(rows, axis=0))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
