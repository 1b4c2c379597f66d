"""`donkey export`: checkpoint -> ONNX folder (fp32 or fp16): four graphs and manifest.json.

Every export is linted; a graph that breaks a TensorRT rule fails the export. The folder is
written whole or not at all (docs/architecture.md, "Export").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from donkey.artifacts.folders import staged_folder
from donkey.artifacts.manifest import GraphEntry, Manifest
from donkey.export.fp16 import FP32_GRAPHS, convert_to_fp16
from donkey.export.lint import Violation, lint_model
from donkey.export.onnx_trace import DEFAULT_OPSET, export_all, save_model, set_metadata
from donkey.model.checkpoint import build_networks, load_checkpoint
from donkey.model.errors import DonkeyError
from donkey.model.files import sha256_file
from donkey.model.spec import graph_specs

Log = Callable[[str], None]


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
) -> ExportResult:
    """Writes `<graph>.onnx` for the four graphs, then manifest.json, into a fresh out_dir.

    Not atomic by itself: callers write into a staged folder (`export_onnx`, the cache).
    """
    started = time.perf_counter()
    ckpt = load_checkpoint(checkpoint)
    digest = sha256_file(checkpoint)
    networks = build_networks(ckpt)
    specs = graph_specs(ckpt.model_config)
    models = export_all(networks, out_dir, opset, digest)
    result = ExportResult(out_dir)
    entries = {}
    for name, model in models.items():
        precision = "fp16" if fp16 and name not in FP32_GRAPHS else "fp32"
        note = ""
        if precision == "fp16":
            model, clamped = convert_to_fp16(model)
            set_metadata(model, {"donkey.precision": "fp16"})
            note = f", {clamped} weights below fp16 range moved to +-1e-7" if clamped else ""
        violations = lint_model(model, name)
        if violations:
            raise LintFailure(violations)
        path = save_model(model, out_dir / f"{name}.onnx")
        entries[name] = GraphEntry.for_file(path, specs[name], precision)
        result.files[name] = path
        log(f"{name}: {precision}, {path.stat().st_size / 1e6:.1f} MB, lint clean{note}")
    Manifest(
        format="onnx",
        model_config=ckpt.model_config,
        checkpoint=str(checkpoint),
        checkpoint_sha256=digest,
        opset=opset,
        graphs=entries,
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
) -> ExportResult:
    """An ONNX folder at out_dir, written atomically (see `staged_folder`)."""
    with staged_folder(out_dir, replace=overwrite) as tmp:
        result = write_onnx_folder(checkpoint, tmp, fp16, opset, log)
    result.folder = Path(out_dir)
    result.files = {name: Path(out_dir) / p.name for name, p in result.files.items()}
    return result
