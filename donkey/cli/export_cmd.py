"""`donkey export` and `donkey lint`: ONNX graphs, TensorRT engines, and their checks."""

from __future__ import annotations

import math
import shlex
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from donkey.cli.common import console, handles_errors, out, tagged
from donkey.export.exporter import BatchRange, export_onnx
from donkey.export.lint import lint_folder
from donkey.export.onnx_export import DEFAULT_OPSET
from donkey.export.parity import assert_parity, clip_parity, graph_parity, rendered_clip
from donkey.model.errors import DonkeyError
from donkey.runtime.loader import load_model, model_kind, resolve_model

FORMATS = ("onnx", "trt", "all")


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


def _check(
    checkpoint: Path, folder: Path, engine: str, device: str, batches: tuple[int, ...]
) -> None:
    reference = load_model(checkpoint, "torch", device)
    other = load_model(folder, engine, device)
    rows = graph_parity(reference, other, batches)
    source, driving = rendered_clip(reference.config.image_size)
    rows += clip_parity(reference, other, source, driving)
    _print_parity(rows, f"parity: {engine} ({folder.name}) vs torch fp32 on {reference.device}")
    assert_parity(rows)


@handles_errors
def export(
    output: Path = typer.Option(
        ..., "-o", "--output", help="Folder to write graphs/engines and manifest.json into."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Checkpoint to export. Default: the bundled model."
    ),
    fmt: str = typer.Option(
        "onnx",
        "--format",
        help="onnx, trt (engines; ONNX kept in OUTPUT/onnx) or all (OUTPUT/onnx + OUTPUT/trt).",
    ),
    fp16: bool = typer.Option(
        False,
        "--fp16",
        help="fp16 graphs (fp32 islands kept: keypoints, gaussians, flow sums, GridSample).",
    ),
    min_batch: int = typer.Option(1, help="TensorRT profile: smallest batch."),
    opt_batch: int = typer.Option(8, help="TensorRT profile: batch to tune for."),
    max_batch: int = typer.Option(64, help="TensorRT profile: largest batch."),
    opset: int = typer.Option(
        DEFAULT_OPSET, help="ONNX opset (<= 19 keeps GridSample's mode names TensorRT reads)."
    ),
    workspace: float = typer.Option(
        4.0, "--workspace", help="TensorRT builder workspace limit, GB."
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Run exported graphs and PyTorch on the same inputs; fail on a missed tolerance.",
    ),
    device: str = typer.Option("auto", help="Device for --check (and the engines' GPU)."),
) -> None:
    """Export the four inference graphs (kp_detector, dense_motion, source_encoder, generator)."""
    if fmt not in FORMATS:
        raise DonkeyError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    checkpoint = resolve_model(model)
    if model_kind(checkpoint) != "checkpoint":
        raise DonkeyError(f"{checkpoint}: export needs a checkpoint file, not an export folder")
    batch = BatchRange(min_batch, opt_batch, max_batch)
    if fmt in ("trt", "all"):
        from donkey.export.tensorrt_build import gpu_identity, import_tensorrt

        import_tensorrt()
        gpu_identity()
    onnx_dir = output if fmt == "onnx" else output / "onnx"
    result = export_onnx(
        checkpoint,
        onnx_dir,
        fp16=fp16,
        opset=opset,
        log=lambda m: console.print(m, highlight=False),
    )
    out.print(
        f"ONNX: {onnx_dir} ({result.seconds['onnx']:.1f}s, opset {opset}, "
        f"{sum(p.stat().st_size for p in result.files.values()) / 1e6:.1f} MB)"
    )
    target, engine = onnx_dir, "ort"
    if fmt in ("trt", "all"):
        from donkey.export.tensorrt_build import EngineSettings, build_engines

        engine_dir = output if fmt == "trt" else output / "trt"
        seconds = build_engines(
            onnx_dir,
            engine_dir,
            EngineSettings(batch=batch, workspace_gb=workspace),
            log=lambda m: console.print(m, highlight=False),
        )
        out.print(f"TensorRT: {engine_dir} ({sum(seconds.values()):.1f}s)")
        target, engine = engine_dir, "trt"
    if check:
        batches = (
            tuple(b for b in (1, 3, 8) if batch.min <= b <= batch.max)
            if engine == "trt"
            else (1, 3, 8)
        )
        _check(checkpoint, onnx_dir, "ort", "cpu" if engine == "ort" else device, (1, 3, 8))
        if engine == "trt":
            _check(checkpoint, target, "trt", "cuda", batches)
    out.print(
        f"next: donkey animate SOURCE DRIVING -o out.gif --model {shlex.quote(str(target))} --engine {engine}"
    )


@handles_errors
def lint(folder: Path = typer.Argument(..., help="Folder of exported .onnx graphs.")) -> None:
    """TensorRT-compatibility lint: supported ops, GridSample/Resize modes, no
    Inverse/ScatterND/Loop/If, static non-batch dimensions. Exits non-zero on any violation."""
    report = lint_folder(folder)
    problems = [v for violations in report.values() for v in violations]
    for v in problems:
        tagged("violation", "red", str(v))
    if problems:
        raise typer.Exit(1)
    out.print(f"{len(report)} graphs clean: {', '.join(report)}")
