"""TensorRT-compatibility lint of exported ONNX graphs (`donkey lint`, run by every export)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import helper

from donkey.artifacts.manifest import MANIFEST_NAME
from donkey.artifacts.verify import read_verified, unknown_files, verify_folder
from donkey.export.trt_rules import (
    FORBIDDEN_OPS,
    INTENDED_GRID_SAMPLE,
    INTENDED_RESIZE,
    MAX_GRID_SAMPLE_OPSET,
    TRT_RESIZE_COORDINATE_MODES,
    TRT_RESIZE_NEAREST_MODES,
    TRT_SUPPORTED_OPS,
)
from donkey.model.errors import DonkeyError


@dataclass(frozen=True)
class Violation:
    graph: str
    node: str
    op: str
    problem: str

    def __str__(self) -> str:
        return f"{self.graph}: node {self.node or '(graph)'} [{self.op}]: {self.problem}"


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value) -> object:
    return value.decode() if isinstance(value, bytes) else value


def _opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 0


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shape inference is a best effort here
        inferred = model
    ranks = {}
    for info in (
        list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    ):
        if info.type.tensor_type.HasField("shape"):
            ranks[info.name] = len(info.type.tensor_type.shape.dim)
    return ranks


def lint_model(model: onnx.ModelProto, graph: str = "model") -> list[Violation]:
    """Every TensorRT rule (docs/architecture.md, "ONNX graph rules") that can be read off the
    graph."""
    found: list[Violation] = []
    opset = _opset(model)
    ranks = _ranks(model)
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    for node in model.graph.node:
        op = node.op_type
        where = node.name or (node.output[0] if node.output else "")
        if node.domain not in ("", "ai.onnx"):
            found.append(
                Violation(
                    graph, where, op, f"custom-domain op '{node.domain}' is not parsed by TensorRT"
                )
            )
            continue
        if op in FORBIDDEN_OPS:
            found.append(Violation(graph, where, op, f"forbidden: {FORBIDDEN_OPS[op]}"))
            continue
        if op not in TRT_SUPPORTED_OPS:
            found.append(Violation(graph, where, op, "not supported by TensorRT's ONNX parser"))
            continue
        attrs = {k: _text(v) for k, v in _attrs(node).items()}
        if op == "GridSample":
            if opset > MAX_GRID_SAMPLE_OPSET:
                found.append(
                    Violation(
                        graph,
                        where,
                        op,
                        f"opset {opset} GridSample renames its modes; export with opset <= {MAX_GRID_SAMPLE_OPSET}",
                    )
                )
            got = {
                "mode": attrs.get("mode", "bilinear"),
                "padding_mode": attrs.get("padding_mode", "zeros"),
                "align_corners": attrs.get("align_corners", 0),
            }
            for key, want in INTENDED_GRID_SAMPLE.items():
                if got[key] != want:
                    found.append(
                        Violation(graph, where, op, f"{key}={got[key]!r}, expected {want!r}")
                    )
            rank = ranks.get(node.input[0])
            if rank is not None and rank != 4:
                found.append(
                    Violation(graph, where, op, f"input rank {rank}: TensorRT samples 4-D only")
                )
        elif op == "Resize":
            mode = attrs.get("mode", "nearest")
            coord = attrs.get("coordinate_transformation_mode", "half_pixel")
            nearest = attrs.get("nearest_mode", "round_prefer_floor")
            if coord not in TRT_RESIZE_COORDINATE_MODES:
                found.append(
                    Violation(
                        graph,
                        where,
                        op,
                        f"coordinate_transformation_mode {coord!r} unsupported by TensorRT",
                    )
                )
            if mode == "nearest" and nearest not in TRT_RESIZE_NEAREST_MODES:
                found.append(
                    Violation(graph, where, op, f"nearest_mode {nearest!r} unsupported by TensorRT")
                )
            got = {"mode": mode, "coordinate_transformation_mode": coord, "nearest_mode": nearest}
            for key, want in INTENDED_RESIZE.items():
                if got[key] != want:
                    found.append(
                        Violation(graph, where, op, f"{key}={got[key]!r}, intended {want!r}")
                    )
        elif (
            op in ("Conv", "ConvTranspose")
            and len(node.input) > 1
            and node.input[1] not in constants
        ):
            found.append(
                Violation(
                    graph, where, op, "weights are not an initializer (TensorRT needs constant W)"
                )
            )
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if axis == 0:
                continue
            if not dim.HasField("dim_value") or dim.dim_value <= 0:
                label = dim.dim_param or "?"
                found.append(
                    Violation(
                        graph,
                        value.name,
                        "io",
                        f"axis {axis} is dynamic ({label}); only the batch axis may be",
                    )
                )
    return found


def lint_folder(folder: str | Path) -> dict[str, list[Violation]]:
    """Lints the graphs of an ONNX export folder; {file name: violations}.

    The folder itself must be sound first (one-line DonkeyError naming the file otherwise):
    verified as every loader verifies it (donkey/artifacts/verify.py), and holding no file
    the manifest does not name (a stray `.tmp.onnx` is a write cut short; any other file
    may be from another export).
    """
    folder = Path(folder)
    if not folder.is_dir():
        problem = "not a folder" if folder.exists() else "no such folder"
        raise DonkeyError(f"{folder}: {problem}")
    if not (folder / MANIFEST_NAME).exists() and (folder / "onnx" / MANIFEST_NAME).is_file():
        raise DonkeyError(
            f"{folder}: has no {MANIFEST_NAME}; its ONNX graphs are in {folder / 'onnx'}"
        )
    manifest = verify_folder(folder)
    if manifest.format != "onnx":
        raise DonkeyError(
            f"{folder}: a TensorRT engine folder; lint the ONNX folder it was built from"
        )
    unknown = unknown_files(folder, manifest)
    if unknown:
        raise DonkeyError(
            f"{folder / unknown[0]}: not named by {MANIFEST_NAME} (left by another export "
            "or a write cut short?); remove it or export again"
        )
    if manifest.quantization is not None:
        return {}  # int8 graphs are for CPUs: TensorRT does not build them
    report = {}
    for name, entry in manifest.graphs.items():
        path = folder / entry.file
        try:
            model = onnx.load_from_string(read_verified(path, entry.sha256))
        except DonkeyError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken file is a finding, named
            raise DonkeyError(
                f"{path}: cannot read ONNX ({str(exc).splitlines()[0][:120]})"
            ) from None
        report[entry.file] = lint_model(model, name)
    return report
