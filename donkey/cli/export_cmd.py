"""`donkey export` and `donkey lint`: ONNX graphs, TensorRT engines, and their checks."""

from __future__ import annotations

import math
import shlex
import warnings
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


def _check(
    checkpoint: Path,
    folder: Path,
    engine: str,
    device: str,
    batches: tuple[int, ...],
    label: str,
) -> None:
    from donkey.data.sample_clip import rendered_clip
    from donkey.runtime.loader import load_model
    from donkey.runtime.parity import assert_parity, clip_parity, graph_parity

    reference = load_model(checkpoint, "torch", device)
    other = load_model(folder, engine, device)
    rows = graph_parity(reference, other, batches)
    source, driving = rendered_clip(reference.config.image_size)
    rows += clip_parity(reference, other, source, driving)
    _print_parity(rows, f"parity: {engine} ({label}) vs torch fp32 on {reference.device}")
    assert_parity(rows)


def _int8_inputs(checkpoint: Path, calibration: Path | None):
    from donkey.data.calibration import clip_set
    from donkey.export.int8 import int8_settings_for
    from donkey.model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    clips = clip_set(ckpt.model_config.image_size, calibration, "train")
    if calibration is None:
        tagged("note", "yellow", "no --calibration folder: calibrating on synthetic frames only")
    for line in clips.skipped:
        tagged("skipped", "yellow", line)
    return int8_settings_for(ckpt.train_config, str(checkpoint)), clips


def _check_held_out_split(calibration: Path) -> None:
    """Before the export: --check scores int8 on the folder's held-out split, which a small
    folder may not have (it is about 10% of the files, by file-name hash)."""
    from donkey.data.calibration import VAL_FRACTION
    from donkey.data.datasets import list_videos, select_split

    if not select_split(list_videos(calibration), "val", VAL_FRACTION):
        raise DonkeyError(
            f"{calibration}: --check scores int8 on this folder's held-out split (about "
            f"{VAL_FRACTION:.0%} of its files, by name), which holds no videos here; give a "
            "folder with more videos, or export without --check"
        )


def _check_int8(checkpoint: Path, folder: Path, data: Path | None, label: str) -> None:
    """Quality gate: animated frames' PSNR and keypoint error against PyTorch fp32, on the
    calibration folder's held-out split (or synthetic clips the calibration did not see)."""
    from donkey.data.calibration import clip_set
    from donkey.runtime.backend import LoadOptions
    from donkey.runtime.loader import load_model
    from donkey.runtime.quality import KP_MAX_ABS, PSNR_MIN_DB, assert_quality, measure_quality

    reference = load_model(checkpoint, "torch", "cpu")
    with warnings.catch_warnings():  # the gate measures quality, not ONNX Runtime's int8 speed
        warnings.simplefilter("ignore", RuntimeWarning)
        other = load_model(folder, "ort", "cpu", options=LoadOptions(allow_slow_precision=True))
    clips = clip_set(reference.config.image_size, data, "val", seed=1)
    report = measure_quality(reference, other, clips)
    out.print(f"quality: int8 ({label}) vs torch fp32 on {'; '.join(clips.sources)}")
    out.print(f"quality: {report.line()} (gate: >= {PSNR_MIN_DB:g} dB, <= {KP_MAX_ABS:g})")
    assert_quality(report, f"int8 export {label}", PSNR_MIN_DB, KP_MAX_ABS)


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
    if int8 and check and calibration is not None:
        _check_held_out_split(calibration)
    start_torch()
    from donkey.artifacts.folders import staged_folder
    from donkey.artifacts.settings import BatchRange, EngineSettings
    from donkey.export.onnx_folder import write_onnx_folder
    from donkey.runtime.loader import resolve_model

    checkpoint = resolve_model(model)
    if checkpoint.is_dir():
        raise DonkeyError(f"{checkpoint}: export needs a checkpoint file, not an export folder")
    if checkpoint.resolve().is_relative_to(output.resolve()):
        raise DonkeyError(
            f"{output}: holds the checkpoint being exported, and an export replaces the whole "
            "folder; choose another output folder"
        )
    batch = BatchRange(min_batch, opt_batch, max_batch)
    if fmt in ("trt", "all"):
        from donkey.artifacts.gpu import gpu_identity, import_tensorrt

        import_tensorrt()
        gpu_identity()
    log = lambda m: console.print(m, highlight=False)  # noqa: E731
    onnx_part = Path() if fmt == "onnx" else Path("onnx")
    engine_part = Path() if fmt == "trt" else Path("trt")
    # Everything is written (and --check'ed) in a temporary sibling of OUTPUT, which becomes
    # OUTPUT only when all of it succeeded: a failed or killed export leaves no folder behind.
    with staged_folder(output, replace=overwrite) as stage:
        onnx_dir = stage / onnx_part
        settings, clips = _int8_inputs(checkpoint, calibration) if int8 else (None, None)
        result = write_onnx_folder(
            checkpoint, onnx_dir, fp16=fp16, opset=opset, log=log, int8=settings, calibration=clips
        )
        out.print(
            f"ONNX: {output / onnx_part} ({result.seconds['onnx']:.1f}s, opset {opset}, "
            f"{sum(p.stat().st_size for p in result.files.values()) / 1e6:.1f} MB)"
        )
        target, engine = onnx_part, "ort"
        if fmt in ("trt", "all"):
            from donkey.export.tensorrt_build import build_engines

            seconds = build_engines(
                onnx_dir,
                stage / engine_part,
                EngineSettings(batch=batch, workspace_gb=workspace),
                log=log,
            )
            out.print(f"TensorRT: {output / engine_part} ({sum(seconds.values()):.1f}s)")
            target, engine = engine_part, "trt"
        if check:
            batches = (
                tuple(b for b in (1, 3, 8) if batch.min <= b <= batch.max)
                if engine == "trt"
                else (1, 3, 8)
            )
            cpu = "cpu" if engine == "ort" else device
            if int8:
                _check_int8(checkpoint, onnx_dir, calibration, str(output / onnx_part))
            else:
                _check(checkpoint, onnx_dir, "ort", cpu, (1, 3, 8), str(output / onnx_part))
            if engine == "trt":
                _check(checkpoint, stage / target, "trt", "cuda", batches, str(output / target))
    final = output / target
    if int8:  # ONNX Runtime runs these graphs at about fp32 speed on CPUs without VNNI
        from donkey.runtime.loader import openvino_installed

        engine = "openvino --device cpu" if openvino_installed() else "ort"
    out.print(
        f"next: donkey animate SOURCE DRIVING -o out.gif --model {shlex.quote(str(final))} --engine {engine}"
    )
    if int8 and engine == "ort":
        out.print(
            "next: pip install openvino   # runs int8 folders faster on CPUs (--engine openvino)"
        )


@handles_errors
def lint(folder: Path = typer.Argument(..., help="ONNX export folder (`donkey export`).")) -> None:
    """TensorRT-compatibility lint: supported ops, GridSample/Resize modes, no
    Inverse/ScatterND/Loop/If, static non-batch dimensions. Exits non-zero on any violation.

    The folder is checked first: valid manifest.json, every graph inside the folder with its
    recorded sha256, no stray temporary or unknown file."""
    from donkey.export.lint import lint_folder

    report = lint_folder(folder)
    if not report:
        out.print(
            f"{folder}: an int8 export for CPUs; manifest, hashes and files verified. The "
            "TensorRT lint does not apply (its float graphs were linted before quantization)."
        )
        return
    problems = [v for violations in report.values() for v in violations]
    for v in problems:
        tagged("violation", "red", str(v))
    if problems:
        raise typer.Exit(1)
    out.print(f"{len(report)} graphs clean: {', '.join(report)}")
