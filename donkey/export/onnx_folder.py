"""`donkey export`: checkpoint -> ONNX folder (fp32, fp16 or int8): four graphs and manifest.json;
and `write_export`, the one export sequence (ONNX, then TensorRT engines) that `donkey export`
and the build-once cache both run.

Every export is linted; a graph that breaks a TensorRT rule fails the export. The folder is
written whole or not at all (docs/architecture.md, "Export").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from donkey.artifacts.folders import staged_folder
from donkey.artifacts.manifest import GraphEntry, Manifest, QuantizationInfo
from donkey.artifacts.settings import EngineSettings
from donkey.data.calibration import ClipSet
from donkey.export.fp16 import FP32_GRAPHS, convert_to_fp16
from donkey.export.int8 import Int8Settings, int8_settings_for
from donkey.export.lint import Violation, lint_model
from donkey.export.onnx_trace import DEFAULT_OPSET, export_all, save_model, set_metadata
from donkey.model.checkpoint import build_networks, load_checkpoint
from donkey.model.errors import DonkeyError
from donkey.model.files import sha256_file
from donkey.model.spec import graph_specs

Log = Callable[[str], None]
Say = Callable[[str, str], None]  # a labelled note: label, message


@dataclass
class ExportResult:
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class LintFailure(DonkeyError):
    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        first = violations[0]
        more = f" (+{len(violations) - 1} more)" if len(violations) > 1 else ""
        super().__init__(f"exported graph breaks a TensorRT rule: {first}{more}")


def write_onnx_folder(
    checkpoint: Path,
    out_dir: Path,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    log: Log = lambda _: None,
    int8: Int8Settings | None = None,
    calibration: ClipSet | None = None,
) -> ExportResult:
    """Writes `<graph>.onnx` for the four graphs, then manifest.json, into a fresh out_dir.

    `int8`: quantize (export/int8.py), calibrated on `calibration` (default: synthetic
    creature clips). Not atomic by itself: callers write into a staged folder (`export_onnx`,
    `write_export`).
    """
    if fp16 and int8 is not None:
        raise DonkeyError("choose fp16 or int8, not both")
    started = time.perf_counter()
    ckpt = load_checkpoint(checkpoint)
    digest = sha256_file(checkpoint)
    networks = build_networks(ckpt)
    specs = graph_specs(ckpt.model_config)
    models = export_all(networks, out_dir, opset, digest)
    result = ExportResult(out_dir)
    entries = {}
    quantized: dict[str, onnx.ModelProto] = {}
    quantization: QuantizationInfo | None = None
    if int8 is not None:
        from donkey.data.calibration import clip_set
        from donkey.export.int8 import quantize_models

        for name, model in models.items():  # the TensorRT rules hold for the float graph
            violations = lint_model(model, name)
            if violations:
                raise LintFailure(violations)
        clips = calibration or clip_set(ckpt.model_config.image_size, None, "train")
        log(f"int8 calibration: {'; '.join(clips.sources)}")
        int8_result = quantize_models(models, networks, clips, int8, log)
        quantized, quantization = int8_result.models, int8_result.info
    for name, model in models.items():
        precision = "fp16" if fp16 and name not in FP32_GRAPHS else "fp32"
        note = ""
        if precision == "fp16":
            model, clamped = convert_to_fp16(model)
            set_metadata(model, {"donkey.precision": "fp16"})
            note = f", {clamped} weights below fp16 range moved to +-1e-7" if clamped else ""
        if quantization is not None and name in quantization.float_convs:
            precision, model = "int8", quantized[name]
            set_metadata(model, {"donkey.precision": "int8"})
        elif violations := lint_model(model, name):
            raise LintFailure(violations)
        path = save_model(model, out_dir / f"{name}.onnx")
        entries[name] = GraphEntry.for_file(path, specs[name], precision)
        result.files[name] = path
        linted = "" if precision == "int8" else ", lint clean"
        log(f"{name}: {precision}, {path.stat().st_size / 1e6:.1f} MB{linted}{note}")
    Manifest(
        format="onnx",
        model_config=ckpt.model_config,
        checkpoint=str(checkpoint),
        checkpoint_sha256=digest,
        opset=opset,
        graphs=entries,
        quantization=quantization,
    ).write(out_dir)
    result.seconds["onnx"] = time.perf_counter() - started
    return result


def export_onnx(
    checkpoint: Path,
    out_dir: Path,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    log: Log = lambda _: None,
    overwrite: bool = False,
    int8: Int8Settings | None = None,
    calibration: ClipSet | None = None,
) -> ExportResult:
    """An ONNX folder at out_dir, written atomically (see `staged_folder`)."""
    with staged_folder(out_dir, replace=overwrite) as tmp:
        result = write_onnx_folder(checkpoint, tmp, fp16, opset, log, int8, calibration)
    result.folder = Path(out_dir)
    result.files = {name: Path(out_dir) / p.name for name, p in result.files.items()}
    return result


@dataclass(frozen=True)
class ExportPlan:
    """What one export writes into its folder: the ONNX graphs of a checkpoint, then, with
    `engines`, TensorRT engines built from them. `onnx_part` and `engine_part` are where each
    goes inside the folder (`--format all`: onnx/ and trt/)."""

    fp16: bool = False
    opset: int = DEFAULT_OPSET
    int8: bool = False
    calibration: Path | None = None  # int8: videos to calibrate on (None: synthetic only)
    engines: EngineSettings | None = None
    onnx_part: Path = Path()
    engine_part: Path = Path()


def write_export(
    source: Path,
    folder: Path,
    plan: ExportPlan,
    shown_as: Path | None = None,
    log: Log = lambda _: None,
    say: Say = lambda label, message: None,
    done: Log = lambda _: None,
) -> Path:
    """The export sequence into `folder` (a staged one: callers rename it into place): a
    checkpoint `source` becomes ONNX graphs, then engines when the plan has them; an ONNX
    folder `source` only gets its engines. Returns the part written last.

    `log` gets each graph's line, `say` the int8 notes, `done` one line per finished step
    naming the folder as `shown_as` (what `folder` becomes)."""
    shown_as = folder if shown_as is None else shown_as
    onnx_dir = source
    if not source.is_dir():
        onnx_dir = folder / plan.onnx_part
        settings, clips = _int8_inputs(source, plan.calibration, say) if plan.int8 else (None, None)
        result = write_onnx_folder(
            source, onnx_dir, plan.fp16, plan.opset, log, int8=settings, calibration=clips
        )
        size = sum(p.stat().st_size for p in result.files.values()) / 1e6
        done(
            f"ONNX: {shown_as / plan.onnx_part} ({result.seconds['onnx']:.1f}s, opset "
            f"{plan.opset}, {size:.1f} MB)"
        )
    if plan.engines is None:
        return onnx_dir
    from donkey.export.tensorrt_build import build_engines

    seconds = build_engines(onnx_dir, folder / plan.engine_part, plan.engines, log=log)
    done(f"TensorRT: {shown_as / plan.engine_part} ({sum(seconds.values()):.1f}s)")
    return folder / plan.engine_part


def _int8_inputs(
    checkpoint: Path, calibration: Path | None, say: Say
) -> tuple[Int8Settings, ClipSet]:
    """The quantization recipe the checkpoint's training asks for, and the clips to calibrate
    on: the train split of `calibration`, or synthetic creatures only."""
    from donkey.data.calibration import clip_set

    ckpt = load_checkpoint(checkpoint)
    clips = clip_set(ckpt.model_config.image_size, calibration, "train")
    if calibration is None:
        say("note", "no --calibration folder: calibrating on synthetic frames only")
    for line in clips.skipped:
        say("skipped", line)
    return int8_settings_for(ckpt.train_config, str(checkpoint)), clips
