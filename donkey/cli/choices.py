"""Every fixed set of choices the commands take, defined once.

Typer lists an Enum option's values in `--help` and refuses any other value while it parses
the command line, before a command imports PyTorch or reads a file. The lower layers keep
their own tuples of accepted strings (runtime.loader.ENGINES, data.frames.FIT_MODES, ...);
tests/cli/test_choices.py checks that both say the same.

This module imports only the standard library: `donkey --help` loads it.
"""

from __future__ import annotations

import re
from enum import StrEnum

import typer


# StrEnum: members are the strings themselves, so they pass unchanged to code that compares
# or formats them (`engine == "ort"`, f"{engine}").
class Engine(StrEnum):
    torch = "torch"
    ort = "ort"
    trt = "trt"
    openvino = "openvino"


ENGINE_HELP = (
    "Default: what --model is (torch for checkpoints, ort for ONNX folders, trt for engines); "
    "int8 on the CPU: openvino where installed, else ort."
)


class Precision(StrEnum):
    """One member per line: adding a precision is adding a line here."""

    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    int8 = "int8"


class Fit(StrEnum):
    pad = "pad"
    crop = "crop"
    stretch = "stretch"


class Motion(StrEnum):
    relative = "relative"
    absolute = "absolute"


class OutFormat(StrEnum):
    """Batch output files of `donkey animate`."""

    gif = "gif"
    mp4 = "mp4"
    png = "png"


class ExportFormat(StrEnum):
    onnx = "onnx"
    trt = "trt"
    all = "all"


class SynthFormat(StrEnum):
    gif = "gif"
    png = "png"


class Split(StrEnum):
    all = "all"
    val = "val"
    train = "train"


class KeypointSource(StrEnum):
    model = "model"
    synth = "synth"


# Gaits of `donkey synth` (data.synthetic.GAITS, which imports numpy).
GAITS = ("walk", "gallop", "hop", "flap")

# --device takes a CUDA index too (cuda:1), so it is a checked string, not an Enum.
DEVICE_METAVAR = "[auto|cpu|cuda|cuda:N]"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(value: str | None) -> str | None:
    """Typer callback: --device is refused at parse time like the Enum options."""
    if value is None or _DEVICE.fullmatch(value):
        return value
    raise typer.BadParameter(f"{value!r} is not one of auto, cpu, cuda, cuda:N")


def check_engines(value: str | None) -> str | None:
    """Typer callback for a comma-separated subset of the engines (`donkey bench`)."""
    if value is None:
        return None
    names = [e.strip() for e in value.split(",") if e.strip()]
    known = [e.value for e in Engine]
    if not names or any(e not in known for e in names):
        raise typer.BadParameter(
            f"takes a comma-separated subset of {', '.join(known)}, got {value!r}"
        )
    return ",".join(dict.fromkeys(names))  # "ort,ort" times ort once


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
    names = [p.strip() for p in value.split(",") if p.strip()]
    known = [p.value for p in Precision]
    if not names or any(p not in known for p in names):
        raise typer.BadParameter(
            f"takes a comma-separated subset of {', '.join(known)}, got {value!r}"
        )
    return ",".join(dict.fromkeys(names))  # each once


def check_gaits(value: str) -> str:
    names = [g.strip() for g in value.split(",") if g.strip()]
    if not names or any(g not in GAITS for g in names):
        raise typer.BadParameter(
            f"takes a comma-separated subset of {', '.join(GAITS)}, got {value!r}"
        )
    return ",".join(dict.fromkeys(names))  # each once


def listed(choices: type[StrEnum]) -> str:
    return ", ".join(c.value for c in choices)


def check_colour(value: str) -> str:
    """Typer callback: a colour name or hex code, refused at parse time otherwise."""
    from donkey.data.colours import parse_colour

    try:
        parse_colour(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value
