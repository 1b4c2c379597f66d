"""`donkey export` and `donkey lint`: the whole export of a checkpoint into one folder.

The output is checked, a temporary sibling folder opened, the export sequence (ONNX, then
TensorRT engines; `export.onnx_folder.write_export`, which the build-once cache runs too)
written into it, then `check`ed against PyTorch (per-graph parity, or the int8 quality gate),
and only then renamed to the output (docs/architecture.md, "Data flow: donkey export").
Imports of PyTorch and ONNX stay inside the functions, so the CLI loads this module cheaply.
"""

from __future__ import annotations

import shlex
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from donkey.model.errors import DonkeyError

if TYPE_CHECKING:
    from donkey.export.lint import Violation
    from donkey.export.onnx_folder import ExportPlan
    from donkey.runtime.parity import ParityRow

Log = Callable[[str], None]
Say = Callable[[str, str], None]  # a labelled note: label, message
ShowParity = Callable[[Sequence["ParityRow"], str], None]  # the rows, a title


def _quiet(*_: object) -> None:
    pass


def export_model(
    output: Path,
    model: str | None = None,
    fmt: str = "onnx",
    *,
    fp16: bool = False,
    int8: bool = False,
    calibration: Path | None = None,
    batch: tuple[int, int, int] = (1, 8, 64),
    opset: int | None = None,
    workspace: float = 4.0,
    check: bool = False,
    device: str = "auto",
    overwrite: bool = False,
    log: Log = _quiet,
    show: Log = _quiet,
    say: Say = _quiet,
    show_parity: ShowParity = _quiet,
) -> list[str]:
    """Exports `model` (a checkpoint; default: the bundled one) to `output`, written whole or
    not at all; returns the `next:` lines (the command that runs the export).

    `fmt`: onnx, trt (engines; ONNX kept in OUTPUT/onnx) or all (OUTPUT/onnx + OUTPUT/trt).
    `batch`: the engines' (min, opt, max) batch. `log` gets each graph's and engine's line,
    `show` each finished step and the quality lines, `say` int8 notes, `show_parity` each
    parity table before it is asserted."""
    from donkey.artifacts.folders import staged_folder
    from donkey.artifacts.settings import BatchRange, EngineSettings
    from donkey.export.onnx_folder import ExportPlan, write_export
    from donkey.export.onnx_trace import DEFAULT_OPSET

    if int8 and check and calibration is not None:
        _check_held_out_split(calibration)
    checkpoint = _checkpoint(model, output)
    engine_batch = BatchRange(*batch)
    if fmt in ("trt", "all"):
        from donkey.artifacts.gpu import gpu_identity, import_tensorrt

        import_tensorrt()
        gpu_identity()
    plan = ExportPlan(
        fp16=fp16,
        opset=opset or DEFAULT_OPSET,
        int8=int8,
        calibration=calibration,
        engines=EngineSettings(engine_batch, workspace) if fmt in ("trt", "all") else None,
        onnx_part=Path() if fmt == "onnx" else Path("onnx"),
        engine_part=Path() if fmt == "trt" else Path("trt"),
    )
    # Everything is written (and --check'ed) in a temporary sibling of OUTPUT, which becomes
    # OUTPUT only when all of it succeeded: a failed or killed export leaves no folder behind.
    with staged_folder(output, replace=overwrite) as stage:
        write_export(checkpoint, stage, plan, shown_as=output, log=log, say=say, done=show)
        if check:
            _check(checkpoint, stage, output, plan, device, show, show_parity)
    engines = plan.engines is not None
    return next_commands(output / (plan.engine_part if engines else plan.onnx_part), engines, int8)


def _checkpoint(model: str | None, output: Path) -> Path:
    """The checkpoint file to export, which must not lie inside the folder being replaced."""
    from donkey.runtime.loader import resolve_model

    checkpoint = resolve_model(model)
    if checkpoint.is_dir():
        raise DonkeyError(f"{checkpoint}: export needs a checkpoint file, not an export folder")
    if checkpoint.resolve().is_relative_to(output.resolve()):
        raise DonkeyError(
            f"{output}: holds the checkpoint being exported, and an export replaces the whole "
            "folder; choose another output folder"
        )
    return checkpoint


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


def _check(
    checkpoint: Path,
    stage: Path,
    output: Path,
    plan: ExportPlan,
    device: str,
    show: Log,
    show_parity: ShowParity,
) -> None:
    """`--check` on the staged folder: the ONNX graphs on ONNX Runtime (the int8 quality gate
    for int8 graphs), then the engines on TensorRT at those of batch 1, 3, 8 their profile
    takes. Labels name the folders as they will be, not the staged ones."""
    onnx_label = str(output / plan.onnx_part)
    if plan.int8:
        _int8_gate(checkpoint, stage / plan.onnx_part, plan.calibration, onnx_label, show)
    else:
        ort_device = "cpu" if plan.engines is None else device
        folder = stage / plan.onnx_part
        _parity(checkpoint, folder, "ort", ort_device, (1, 3, 8), onnx_label, show_parity)
    if plan.engines is not None:
        batch = plan.engines.batch
        batches = tuple(b for b in (1, 3, 8) if batch.min <= b <= batch.max)
        label = str(output / plan.engine_part)
        _parity(checkpoint, stage / plan.engine_part, "trt", "cuda", batches, label, show_parity)


def _parity(
    checkpoint: Path,
    folder: Path,
    engine: str,
    device: str,
    batches: tuple[int, ...],
    label: str,
    show_parity: ShowParity,
) -> None:
    """Per-graph parity at `batches` and a whole rendered clip, shown, then asserted."""
    from donkey.data.sample_clip import rendered_clip
    from donkey.runtime.loader import load_model
    from donkey.runtime.parity import assert_parity, clip_parity, graph_parity

    reference = load_model(checkpoint, "torch", device)
    other = load_model(folder, engine, device)
    rows = graph_parity(reference, other, batches)
    source, driving = rendered_clip(reference.config.image_size)
    rows += clip_parity(reference, other, source, driving)
    show_parity(rows, f"parity: {engine} ({label}) vs torch fp32 on {reference.device}")
    assert_parity(rows)


def _int8_gate(checkpoint: Path, folder: Path, data: Path | None, label: str, show: Log) -> None:
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
    show(f"quality: int8 ({label}) vs torch fp32 on {'; '.join(clips.sources)}")
    show(f"quality: {report.line()} (gate: >= {PSNR_MIN_DB:g} dB, <= {KP_MAX_ABS:g})")
    assert_quality(report, f"int8 export {label}", PSNR_MIN_DB, KP_MAX_ABS)


def next_commands(folder: Path, engines: bool, int8: bool) -> list[str]:
    """The `next:` lines: how to animate with the export just written."""
    engine = "trt" if engines else "ort"
    if int8:  # ONNX Runtime runs these graphs at about fp32 speed on CPUs without VNNI
        from donkey.core.engines import installed

        engine = "openvino --device cpu" if installed("openvino") else "ort"
    lines = [
        f"next: donkey animate SOURCE DRIVING -o out.gif --model {shlex.quote(str(folder))} "
        f"--engine {engine}"
    ]
    if int8 and engine == "ort":
        lines.append(
            "next: pip install openvino   # runs int8 folders faster on CPUs (--engine openvino)"
        )
    return lines


def lint_export(folder: Path) -> tuple[list[Violation], str]:
    """TensorRT-compatibility lint of an ONNX export folder, after its folder checks: the
    violations, and the line to print when there are none."""
    from donkey.export.lint import lint_folder

    report = lint_folder(folder)
    if not report:
        return [], (
            f"{folder}: an int8 export for CPUs; manifest, hashes and files verified. The "
            "TensorRT lint does not apply (its float graphs were linted before quantization)."
        )
    problems = [v for violations in report.values() for v in violations]
    return problems, f"{len(report)} graphs clean: {', '.join(report)}"
