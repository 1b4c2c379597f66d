"""The ablation picture (docs/ablation.md): the same transfer pairs animated by each variant.

    python scripts/ablation_picture.py OUT.png --pairs P.json --pair 0 --pair 3 \
        --model control=RUN1/last.ckpt --model dual=RUN2/last.ckpt ...

Per pair: the driving video A (source first: B posed like A's first frame), the ground truth
(B resampled to A's poses), then one row per model (relative keypoints), labelled on the left.
Models of different sizes are compared at the largest one's: each reads the pair at its own
size and its frames are resized up (bilinear, as `donkey eval --size` does).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from donkey.data.frames import frames_to_tensor, tensor_to_frames
from donkey.data.manifest import load_manifest
from donkey.data.media import read_video
from donkey.data.writers import write_image
from donkey.runtime.animator import Animator
from donkey.runtime.loader import load_model

LABEL_WIDTH = 110


def _labelled(row: np.ndarray, text: str, zoom: int) -> np.ndarray:
    row = row.repeat(zoom, axis=0).repeat(zoom, axis=1)
    label = Image.new("RGB", (LABEL_WIDTH, row.shape[0]), (255, 255, 255))
    ImageDraw.Draw(label).text((4, row.shape[0] // 2 - 6), text, fill=(0, 0, 0))
    return np.concatenate([np.asarray(label), row], axis=1)


def _resized(frame: np.ndarray, size: int) -> np.ndarray:
    if frame.shape[0] == size:
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--pair", type=int, action="append", required=True)
    parser.add_argument("--model", action="append", required=True, help="LABEL=PATH")
    parser.add_argument("--columns", type=int, default=6)
    parser.add_argument("--zoom", type=int, default=2)
    args = parser.parse_args()
    models = [m.split("=", 1) for m in args.model]
    animators = [
        (label, Animator(load_model(p, device="cpu"), mode="relative")) for label, p in models
    ]
    size = max(animator.model.config.image_size for _, animator in animators)
    manifest = load_manifest(args.pairs)
    blocks = []
    for index in args.pair:
        pair = manifest.pairs[index]
        a = read_video(manifest.path_of(pair.a), size).frames
        b = read_video(manifest.path_of(pair.b), size).frames
        picks = np.linspace(0, len(a) - 1, args.columns).round().astype(int)
        source = b[pair.b_for_a[0]]
        blank = np.full_like(source, 255)
        rows = [
            _labelled(np.concatenate([source, *a[picks]], axis=1), "source | driving", args.zoom),
            _labelled(
                np.concatenate([blank, *b[np.asarray(pair.b_for_a)[picks]]], axis=1),
                "ground truth",
                args.zoom,
            ),
        ]
        for label, animator in animators:
            own = animator.model.config.image_size
            a_own = read_video(manifest.path_of(pair.a), own).frames
            b_own = read_video(manifest.path_of(pair.b), own).frames
            out = animator.animate(
                frames_to_tensor(b_own[pair.b_for_a[0]][None]), frames_to_tensor(a_own[picks])
            )
            frames = [_resized(f, size) for f in tensor_to_frames(out.cpu())]
            rows.append(_labelled(np.concatenate([blank, *frames], axis=1), label, args.zoom))
        blocks.append(np.concatenate(rows, axis=0))
        blocks.append(np.full((8 * args.zoom, blocks[-1].shape[1], 3), 255, np.uint8))
    write_image(Path(args.out), np.concatenate(blocks[:-1], axis=0))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
