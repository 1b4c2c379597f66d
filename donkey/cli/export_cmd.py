"""`donkey export` and `donkey lint`: ONNX graphs, TensorRT engines, and their checks."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from donkey.cli.choices import DEVICE_METAVAR, ExportFormat, check_device
from donkey.cli.common import console, handles_errors, out, start_torch, tagged
from donkey.model.errors import DonkeyError

# export.onnx_trace.DEFAULT_OPSET (that module imports PyTorch; a test checks they agree).
DEFAULT_OPSET = 18


def _check_opset(opset: int) -> int:
    """Typer callback: an opset no export could finish with is a usage error."""
    from donkey.export.trt_rules import check_opset

    try:
        check_opset(opset)
    except DonkeyError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--opset ")) from None
    return opset


def _print_parity(rows, title: str) -> None:
    table = Table(title=title)
    for column in ("graph", "tensor", "batch", "max abs", "mean abs", "PSNR dB", "limit", "ok"):
        table.add_column(
            column, justify="left" if column in ("graph", "tensor", "limit") else "right"
        )
    for r in rows:
        psnr = "" if math.isnan(r.psnr) else ("inf" if math.isinf(r.psnr) else f"{r.psnr:.1f}")
        table.add_row(
            r.graph,
            r.tensor,
            str(r.batch),
            f"{r.max_abs:.2e}",
            f"{r.mean_abs:.2e}",
            psnr,
            r.limit,
            Text("yes", style="green") if r.ok else Text("NO", style="red"),
        )
    out.print(table)


@handles_errors
def export(
    output: Path = typer.Option(
        ...,
        "-o",
        "--output",
        help="Folder to write graphs/engines and manifest.json into. Written whole or not at "
        "all; a previous export there is replaced.",
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Checkpoint to export. Default: the bundled model."
    ),
    fmt: ExportFormat = typer.Option(
        ExportFormat.onnx,
        "--format",
        help="onnx, trt (engines; ONNX kept in OUTPUT/onnx) or all (OUTPUT/onnx + OUTPUT/trt).",
    ),
    fp16: bool = typer.Option(
        False,
        "--fp16",
        help="fp16 graphs (fp32 islands kept: keypoints, gaussians, flow sums, GridSample).",
    ),
    int8: bool = typer.Option(
        False,
        "--int8",
        help="int8 graphs for CPUs, fastest with --engine openvino (static quantization; the "
        "fp16 islands, the keypoint detector and four small convolutions kept fp32). --check "
        "then gates PSNR and keypoint error.",
    ),
    calibration: Path | None = typer.Option(
        None,
        "--calibration",
        help="--int8: folder of videos to calibrate on (its train split; --check scores its "
        "held-out split). Without it: synthetic creatures only.",
    ),
    min_batch: int = typer.Option(1, help="TensorRT profile: smallest batch."),
    opt_batch: int = typer.Option(8, help="TensorRT profile: batch to tune for."),
    max_batch: int = typer.Option(64, help="TensorRT profile: largest batch."),
    opset: int = typer.Option(
        DEFAULT_OPSET,
        callback=_check_opset,
        help="ONNX opset, 16-19 (GridSample exists from 16; after 19 it renames its modes, "
        "which TensorRT and the lint do not read).",
    ),
    workspace: float = typer.Option(
        4.0, "--workspace", help="TensorRT builder workspace limit, GB."
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Run exported graphs and PyTorch on the same inputs; fail on a missed tolerance.",
    ),
    device: str = typer.Option(
        "auto",
        metavar=DEVICE_METAVAR,
        callback=check_device,
        help="Device for --check (and the engines' GPU).",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace OUTPUT even when it holds something no export wrote (its contents are "
        "deleted). Without it only an empty folder or a previous export alone is replaced.",
    ),
) -> None:
    """Export the four inference graphs (kp_detector, dense_motion, source_encoder, generator)."""
    if int8 and (fp16 or fmt != "onnx"):
        raise DonkeyError("--int8 writes ONNX graphs for CPUs: no --fp16, --format onnx")
    if calibration is not None and not int8:
        raise DonkeyError("--calibration belongs to --int8")
    start_torch()
    from donkey.app.exporting import export_model

    next_lines = export_model(
        output,
        model,
        fmt.value,
        fp16=fp16,
        int8=int8,
        calibration=calibration,
        batch=(min_batch, opt_batch, max_batch),
        opset=opset,
        workspace=workspace,
        check=check,
        device=device,
        overwrite=overwrite,
        log=lambda line: console.print(line, highlight=False),
        show=out.print,
        say=lambda label, message: tagged(label, "yellow", message),
        show_parity=_print_parity,
    )
    for line in next_lines:
        out.print(line)


@handles_errors
def lint(folder: Path = typer.Argument(..., help="ONNX export folder (`donkey export`).")) -> None:
    """TensorRT-compatibility lint: supported ops, GridSample/Resize modes, no
    Inverse/ScatterND/Loop/If, static non-batch dimensions. Exits non-zero on any violation.

    The folder is checked first: valid manifest.json, every graph inside the folder with its
    recorded sha256, no stray temporary or unknown file."""
    from donkey.app.exporting import lint_export

    problems, clean = lint_export(folder)
    for v in problems:
        tagged("violation", "red", str(v))
    if problems:
        raise typer.Exit(1)
    out.print(clean)
