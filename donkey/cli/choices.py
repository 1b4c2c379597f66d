"""Every fixed set of choices the commands take, as Enums built from the vocabulary.

Typer lists an Enum option's values in `--help` and refuses any other value while it parses
the command line, before a command imports PyTorch or reads a file. The values are defined
once, in donkey/core/vocab.py (and the engines in donkey/core/engines.py), where the layers
below read them too.

This module imports only the standard library and Typer: `donkey --help` loads it.
"""

from __future__ import annotations

from enum import StrEnum

import typer

from donkey.core import vocab
from donkey.core.engines import ENGINE_NAMES
from donkey.core.vocab import GAITS


def _choices(name: str, values: tuple[str, ...], doc: str = "") -> type[StrEnum]:
    """An Enum whose members are the strings themselves (StrEnum), so they pass unchanged to
    code that compares or formats them (`engine == "ort"`, f"{engine}")."""
    choices = StrEnum(name, [(value, value) for value in values])
    choices.__doc__ = doc or None
    return choices


Engine = _choices("Engine", ENGINE_NAMES)
Precision = _choices("Precision", vocab.PRECISIONS)
Fit = _choices("Fit", vocab.FIT_MODES)
Motion = _choices("Motion", vocab.MOTION_MODES)
OutFormat = _choices("OutFormat", vocab.OUTPUT_FORMATS, "Batch output files of `donkey animate`.")
ExportFormat = _choices("ExportFormat", vocab.EXPORT_FORMATS)
SynthFormat = _choices("SynthFormat", vocab.SYNTH_FORMATS)
Split = _choices("Split", vocab.SPLITS)
KeypointSource = _choices("KeypointSource", vocab.KEYPOINT_SOURCES)

ENGINE_HELP = (
    "Default: what --model is (torch for checkpoints, ort for ONNX folders, trt for engines); "
    "int8 on the CPU: openvino where installed, else ort."
)

# --device takes a CUDA index too (cuda:1), so it is a checked string, not an Enum.
DEVICE_METAVAR = "[auto|cpu|cuda|cuda:N]"


def check_device(value: str | None) -> str | None:
    """Typer callback: --device is refused at parse time like the Enum options."""
    if value is None or vocab.is_device(value):
        return value
    raise typer.BadParameter(f"{value!r} is not one of {vocab.DEVICE_CHOICES}")


def _subset(value: str, known: tuple[str, ...]) -> str:
    """A comma-separated subset of `known`, each name once ("ort,ort" runs ort once)."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names or any(n not in known for n in names):
        raise typer.BadParameter(
            f"takes a comma-separated subset of {', '.join(known)}, got {value!r}"
        )
    return ",".join(dict.fromkeys(names))


def check_engines(value: str | None) -> str | None:
    """Typer callback for a comma-separated subset of the engines (`donkey bench`)."""
    return None if value is None else _subset(value, ENGINE_NAMES)


def device_option():
    """`--device` of the commands that run a model (animate, serve)."""
    return typer.Option(
        "auto", metavar=DEVICE_METAVAR, callback=check_device, help="cuda when available with auto."
    )


def precision_option():
    return typer.Option(
        Precision.fp32,
        help="fp16: torch on CUDA autocasts, ort/trt run fp16 graphs; bf16: torch autocast "
        "(CPUs with AVX512-BF16/AMX); int8: ort or openvino, quantized ONNX (see `donkey export "
        "--int8`).",
    )


def allow_slow_option():
    return typer.Option(
        False,
        "--allow-slow-precision",
        help="Run bf16 on a CPU without AVX512-BF16/AMX, or int8 on one with neither AVX2 nor "
        "VNNI, where they are slower than fp32 and refused by default.",
    )


def check_precisions(value: str) -> str:
    """Typer callback for a comma-separated subset of the precisions (`donkey bench`)."""
    return _subset(value, vocab.PRECISIONS)


def check_gaits(value: str) -> str:
    return _subset(value, GAITS)


def listed(choices: type[StrEnum]) -> str:
    return ", ".join(c.value for c in choices)


def check_colour(value: str | None) -> str | None:
    """Typer callback: a colour name or hex code, refused at parse time otherwise."""
    from donkey.data.colours import parse_colour

    if value is None:
        return None
    try:
        parse_colour(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def _parsed(parse):  # noqa: ANN001, ANN202 - a vocabulary parser -> a Typer callback
    """A Typer callback that refuses at parse time what `parse` refuses (its ValueError)."""

    def check(value: str) -> str:
        try:
            return str(parse(value))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return check


check_reference = _parsed(vocab.parse_reference)  # --reference auto, first or a frame number
check_output_size = _parsed(vocab.parse_output_size)  # --output-size model, source or a size


def reference_option():
    return typer.Option(
        vocab.DEFAULT_REFERENCE,
        "--reference",
        metavar="[auto|first|N]",
        callback=check_reference,
        help="Relative mode: the driving frame the movement is measured from. auto: the frame "
        "whose keypoint layout is most like the source's pose (the chosen frame is printed); "
        "first: frame 0; N: that frame.",
    )


def _in_range(name: str, high: float):  # noqa: ANN202 - a Typer callback
    def check(value: float) -> float:
        try:
            return vocab.check_fraction(value, name, high)
        except ValueError as exc:  # NaN and infinities included
            raise typer.BadParameter(str(exc)) from None

    return check


def smooth_option():
    return typer.Option(
        vocab.DEFAULT_SMOOTH,
        "--smooth",
        callback=_in_range("smooth", vocab.SMOOTH_MAX),
        help="Steadier motion: std, in frames, of a zero-phase filter over the driving "
        "keypoints (0: off).",
    )


def motion_scale_option():
    return typer.Option(
        1.0,
        "--motion-scale",
        callback=_in_range("motion scale", vocab.MOTION_SCALE_MAX),
        help="Relative mode: how much of the driving's movement the source makes (1: all; "
        "less keeps a drawing in one piece).",
    )


def output_size_option():
    return typer.Option(
        vocab.DEFAULT_OUTPUT_SIZE,
        "--output-size",
        metavar="[model|source|N]",
        callback=check_output_size,
        help="source: the result at the source picture's own size and shape (padding cropped "
        f"off, at most {vocab.OUTPUT_SIDE_CAP} px on the long side); model: the model's square; "
        "N: the long side in pixels. --side-by-side uses the model's size.",
    )
