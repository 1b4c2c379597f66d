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


# --reference: which driving frame relative motion is measured from. auto: the frame whose
# keypoint layout is most like the source's; first: frame 0; or a frame number. first stays
# the default: auto is 23-37% better for sources posed unlike frame 0, but 16% worse for one
# posed like it (docs/animating-your-pictures.md).
REFERENCES = ("auto", "first")
DEFAULT_REFERENCE = "first"
# --smooth: the std, in frames, of the zero-phase filter over the driving keypoints (0: off).
# 1 lowered the temporal error 4-5% without raising L1 on held-out and training clips.
SMOOTH_MAX = 10.0
DEFAULT_SMOOTH = 1.0
# --motion-scale: how much of the driving's movement the source makes (1: all of it).
MOTION_SCALE_MAX = 2.0
# --output-size: model (the model's square), source (the source's own size and shape, at most
# OUTPUT_SIDE_CAP on its long side), or the long side in pixels.
OUTPUT_SIZES = ("model", "source")
DEFAULT_OUTPUT_SIZE = "source"
OUTPUT_SIDE_CAP = 1024
OUTPUT_SIDE_RANGE = (16, 4096)


def parse_reference(text: str | int) -> str | int:
    """'auto', 'first' or a frame number (>= 0) -> 'auto', 'first' or the int; ValueError with
    the sentence to show otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        value: str | int = text
    else:
        value = str(text).strip().lower()
        if value not in REFERENCES:
            digits = value.removeprefix("-")
            if not (digits.isascii() and digits.isdigit()):
                raise ValueError(
                    f"reference must be auto, first or a frame number, got {str(text)[:40]!r}"
                )
            value = int(value)
    if isinstance(value, int) and value < 0:
        raise ValueError(f"reference frame numbers start at 0, got {value}")
    return value


def parse_output_size(text: str | int) -> str | int:
    """'model', 'source' or a long side in OUTPUT_SIDE_RANGE -> the str or the int."""
    low, high = OUTPUT_SIDE_RANGE
    value: str | int = text if isinstance(text, int) else str(text).strip().lower()
    if isinstance(value, str) and value not in OUTPUT_SIZES:
        # ASCII digits only: int() would also take other scripts' digits ("١٢٨").
        value = int(value) if value.isascii() and value.isdigit() else -1
    if isinstance(value, int) and not (low <= value <= high) or isinstance(value, bool):
        raise ValueError(
            f"output size must be model, source or a size in [{low}, {high}], got "
            f"{str(text)[:40]!r}"
        )
    return value


def check_fraction(value: float, name: str, high: float) -> float:
    """A finite number in [0, high] (smooth, motion scale)."""
    number = float(value)
    if not (0.0 <= number <= high):  # NaN fails too
        raise ValueError(f"{name} must be in [0, {high:g}], got {value}")
    return number
