"""Fixed sets of choices that `--help` and the lower layers share, each defined once.

`cli/choices.py` builds its Enums from these tuples (Typer lists them in `--help` and refuses
other values while parsing); the readers, writers and runtime check against the same tuples.
Order matters: it is the order `--help` and error messages list them in.

Standard library only: `donkey --help` loads it. The engines, and the precisions each runs,
are in `donkey/core/engines.py`.
"""

from __future__ import annotations

import re

# How `--fit` squares a frame: pad (centred, background colour), centre crop, or stretch.
FIT_MODES = ("pad", "crop", "stretch")
# Keypoint motion: relative to the first driving frame (the default), or absolute.
MOTION_MODES = ("relative", "absolute")
# Every precision any engine runs (which engine runs which: core/engines.py).
PRECISIONS = ("fp32", "fp16", "bf16", "int8")

# Media read by suffix; videos go through ffmpeg.
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"})
IMAGE_SUFFIXES = frozenset({".gif", ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES
# Suffixes ffmpeg reads or writes for us.
FFMPEG_SUFFIXES = VIDEO_SUFFIXES

# The output formats of `donkey animate` (png: a lossless strip), and their suffixes.
OUTPUT_FORMATS = ("gif", "mp4", "png")
OUTPUT_SUFFIXES = tuple(f".{f}" for f in OUTPUT_FORMATS)
# `donkey synth` writes GIFs or PNG strips.
SYNTH_FORMATS = ("gif", "png")
# `donkey export --format`: an ONNX folder, a TensorRT engine folder, or both.
EXPORT_FORMATS = ("onnx", "trt", "all")

# Which videos of a --data folder: all, val (held out by `donkey train`) or train.
SPLITS = ("all", "val", "train")
# Where `donkey pairs` takes keypoints from: the model, or synth's sidecar files.
KEYPOINT_SOURCES = ("model", "synth")
# Gaits of `donkey synth`'s creatures (data/synthetic.py draws them).
GAITS = ("walk", "gallop", "hop", "flap")

# --device: auto, cpu, cuda, or a CUDA index (cuda:1).
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"


def is_device(value: str) -> bool:
    """Whether `value` is a --device spelling (it may still name a GPU that is not there)."""
    return DEVICE_PATTERN.fullmatch(value) is not None
