"""manifest.json beside exported graphs and engines: what was built, from what, with what.

The format is described in docs/architecture.md ("Artifact formats"). Reading is strict: a
missing or unknown key, a wrong type, another `version`, or graph tensors that do not match
the recorded model config are one-line errors naming the file. Reading does not look at the
files the manifest names; `donkey.artifacts.verify` does that.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from donkey.artifacts.settings import BatchRange
from donkey.core.engines import FOLDER_KINDS, folder_precisions
from donkey.core.version import __version__
from donkey.model.config import ModelConfig, config_to_dict, model_config_from_dict
from donkey.model.errors import DonkeyError
from donkey.model.files import atomic_output, sha256_file
from donkey.model.spec import GRAPH_NAMES, GraphSpec, graph_specs

MANIFEST_NAME = "manifest.json"
# 2: strict keys, per-graph precision only, TensorRT fields under "engine", hashes verified
# on load. Version-1 folders (written before exports were atomic) are refused: re-export.
# 3: adds "quantization" (null, or how int8 graphs were made) and the precision "int8".
# Version 2 is still read (it is version 3 without int8): exports made before need no redo.
MANIFEST_VERSION = 3
READ_VERSIONS = (2, 3)
FORMATS = FOLDER_KINDS  # the folder formats (artifacts/folders.py reads them by this name)
QUANT_FORMATS = ("qdq", "qoperator")
CALIBRATION_METHODS = ("minmax", "average", "entropy", "percentile")
# A manifest is a few KB; anything far larger is not one, and is not read into memory.
MAX_MANIFEST_BYTES = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(DonkeyError):
    pass


def tool_versions() -> dict[str, str]:
    versions = {"donkey": __version__, "python": platform.python_version()}
    for name in ("torch", "onnx", "onnxruntime", "onnxconverter_common", "tensorrt"):
        try:
            module = __import__(name)
            versions[name] = str(getattr(module, "__version__", "?"))
        except ImportError:
            continue
    return versions


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"


def spec_tensors(spec: GraphSpec) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    """A graph spec's inputs and outputs as the manifest records them."""

    def info(tensors):
        return tuple(TensorInfo(t.name, tuple(t.shape), t.dtype) for t in tensors)

    return info(spec.inputs), info(spec.outputs)


@dataclass(frozen=True)
class GraphEntry:
    file: str
    sha256: str
    precision: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    onnx_sha256: str | None = None  # engines: the hash of the ONNX graph they were built from

    @staticmethod
    def for_file(
        path: Path, spec: GraphSpec, precision: str, onnx_sha256: str | None = None
    ) -> GraphEntry:
        """The entry of a finished file: its name, its hash and the spec's tensors."""
        return GraphEntry(
            file=path.name,
            sha256=sha256_file(path),
            precision=precision,
            inputs=spec_tensors(spec)[0],
            outputs=spec_tensors(spec)[1],
            onnx_sha256=onnx_sha256,
        )


@dataclass(frozen=True)
class GpuIdentity:
    name: str
    compute_capability: str


@dataclass(frozen=True)
class EngineInfo:
    """What TensorRT engines are tied to (refused with "rebuild" on a mismatch)."""

    tensorrt_version: str
    gpu: GpuIdentity
    batch: BatchRange
    workspace_gb: float
    tf32: bool
    strongly_typed: bool


@dataclass(frozen=True)
class QuantizationInfo:
    """How the int8 graphs of a folder were made (ONNX Runtime static quantization)."""

    format: str  # "qdq" (QuantizeLinear/DequantizeLinear pairs) or "qoperator"
    activations: str  # "uint8"
    weights: str  # "int8"
    per_channel: bool
    reduce_range: bool  # 7-bit weights (no int16 overflow in AVX2's u8 x s8 multiply-adds)
    calibration_method: str  # "minmax", "average", "entropy" or "percentile"
    calibration_frames: int
    calibration_data: tuple[str, ...]  # what the frames came from, in words
    float_convs: dict[str, int]  # per int8 graph: convolutions left in float
    # What quantized convolutions output: "float" (one rounding each, OpenVINO's fast path) or
    # "uint8" (QLinearConv, ONNX Runtime's fast path). Folders written before it say uint8.
    outputs: str = "uint8"


@dataclass(frozen=True)
class Manifest:
    format: str
    model_config: ModelConfig
    checkpoint: str | None
    checkpoint_sha256: str
    opset: int | None
    graphs: dict[str, GraphEntry]
    engine: EngineInfo | None = None
    quantization: QuantizationInfo | None = None
    tools: dict[str, str] = field(default_factory=tool_versions)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    version: int = MANIFEST_VERSION

    @property
    def precision(self) -> dict[str, str]:
        return {name: entry.precision for name, entry in self.graphs.items()}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_config"] = config_to_dict(self.model_config)
        return data

    def write(self, folder: Path) -> Path:
        """Writes folder/manifest.json atomically (validated first: what we write, we read)."""
        path = folder / MANIFEST_NAME
        text = json.dumps(self.to_dict(), indent=1)
        validate(json.loads(text), path)
        with atomic_output(path) as tmp:
            tmp.write_text(text)
        return path

    @staticmethod
    def read(folder: Path) -> Manifest:
        """folder/manifest.json, parsed and validated (the files it names are not opened)."""
        path = Path(folder) / MANIFEST_NAME
        if not path.is_file():
            # A training run folder is the likeliest mistake: point at its checkpoints.
            found = [n for n in ("ema.safetensors", "last.ckpt") if (Path(folder) / n).is_file()]
            hint = f"; a training run: give --model {Path(folder) / found[0]}" if found else ""
            raise ManifestError(
                f"{folder}: folder has no {MANIFEST_NAME} (not a `donkey export` folder{hint})"
            )
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_MANIFEST_BYTES + 1)
        except OSError as exc:
            raise ManifestError(f"{path}: unreadable manifest ({exc.strerror})") from None
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path}: not a manifest (larger than {MAX_MANIFEST_BYTES} bytes)")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            first = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
            raise ManifestError(f"{path}: unreadable manifest ({first})") from None
        return validate(data, path)


# ---- validation: plain JSON in, typed Manifest out -------------------------------------------


def _fail(path: Path, problem: str) -> ManifestError:
    return ManifestError(f"{path}: invalid manifest: {problem}")


def _keys(data: Any, required: set[str], where: str, path: Path) -> dict:
    if not isinstance(data, dict):
        raise _fail(path, f"{where} must be an object, got {type(data).__name__}")
    missing = sorted(required - set(data))
    if missing:
        raise _fail(path, f"{where} is missing {', '.join(missing)}")
    unknown = sorted(str(k) for k in set(data) - required)
    if unknown:
        raise _fail(path, f"{where} has unknown key {', '.join(unknown)}")
    return data


def _typed(value: Any, kind: type | tuple[type, ...], where: str, path: Path) -> Any:
    bad_bool = isinstance(value, bool) and kind in (int, float, (int, float))
    if not isinstance(value, kind) or bad_bool:
        raise _fail(path, f"{where} has the wrong type ({type(value).__name__})")
    return value


def _sha(value: Any, where: str, path: Path) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise _fail(path, f"{where} is not a sha256 hex digest")
    return value


def _tensors(data: Any, where: str, path: Path) -> tuple[TensorInfo, ...]:
    _typed(data, list, where, path)
    out = []
    for i, item in enumerate(data):
        item = _keys(item, {"name", "shape", "dtype"}, f"{where}[{i}]", path)
        shape = _typed(item["shape"], list, f"{where}[{i}].shape", path)
        out.append(
            TensorInfo(
                _typed(item["name"], str, f"{where}[{i}].name", path),
                tuple(shape),
                _typed(item["dtype"], str, f"{where}[{i}].dtype", path),
            )
        )
    return tuple(out)


def _graph(
    name: str, data: Any, fmt: str, spec: GraphSpec, path: Path, precisions: tuple[str, ...]
) -> GraphEntry:
    where = f"graphs.{name}"
    data = _keys(
        data, {"file", "sha256", "precision", "inputs", "outputs", "onnx_sha256"}, where, path
    )
    precision = data["precision"]
    if precision not in precisions or not isinstance(precision, str):
        raise _fail(path, f"{where}.precision must be {' or '.join(precisions)}, got {precision!r}")
    onnx_sha = data["onnx_sha256"]
    if fmt == "trt":
        onnx_sha = _sha(onnx_sha, f"{where}.onnx_sha256", path)
    elif onnx_sha is not None:
        raise _fail(path, f"{where}.onnx_sha256 belongs to engine folders only")
    entry = GraphEntry(
        file=_typed(data["file"], str, f"{where}.file", path),
        sha256=_sha(data["sha256"], f"{where}.sha256", path),
        precision=precision,
        inputs=_tensors(data["inputs"], f"{where}.inputs", path),
        outputs=_tensors(data["outputs"], f"{where}.outputs", path),
        onnx_sha256=onnx_sha,
    )
    expected = spec_tensors(spec)
    if (entry.inputs, entry.outputs) != expected:
        raise _fail(path, f"{where} tensors do not match its model_config")
    return entry


def _engine(data: Any, path: Path) -> EngineInfo:
    keys = {"tensorrt_version", "gpu", "batch", "workspace_gb", "tf32", "strongly_typed"}
    data = _keys(data, keys, "engine", path)
    gpu = _keys(data["gpu"], {"name", "compute_capability"}, "engine.gpu", path)
    batch = _keys(data["batch"], {"min", "opt", "max"}, "engine.batch", path)
    try:
        batch_range = BatchRange(
            *(_typed(batch[k], int, f"engine.batch.{k}", path) for k in ("min", "opt", "max"))
        )
    except ManifestError:
        raise
    except DonkeyError as exc:
        raise _fail(path, f"engine.batch: {exc}") from None
    return EngineInfo(
        tensorrt_version=_typed(data["tensorrt_version"], str, "engine.tensorrt_version", path),
        gpu=GpuIdentity(
            _typed(gpu["name"], str, "engine.gpu.name", path),
            _typed(gpu["compute_capability"], str, "engine.gpu.compute_capability", path),
        ),
        batch=batch_range,
        workspace_gb=float(_typed(data["workspace_gb"], (int, float), "engine.workspace_gb", path)),
        tf32=_typed(data["tf32"], bool, "engine.tf32", path),
        strongly_typed=_typed(data["strongly_typed"], bool, "engine.strongly_typed", path),
    )


def _quantization(data: Any, graphs: dict[str, GraphEntry], path: Path) -> QuantizationInfo:
    keys = {f.name for f in dataclasses.fields(QuantizationInfo)}
    if isinstance(data, dict) and "outputs" not in data:  # written before the field existed
        data = {**data, "outputs": "uint8"}
    data = _keys(data, keys, "quantization", path)
    where = "quantization"
    if data["outputs"] not in ("uint8", "float"):
        raise _fail(path, f"{where}.outputs must be uint8 or float, got {data['outputs']!r}")
    if data["format"] not in QUANT_FORMATS:
        raise _fail(path, f"{where}.format must be qdq or qoperator, got {data['format']!r}")
    if data["activations"] not in ("uint8", "int8") or data["weights"] not in ("uint8", "int8"):
        raise _fail(path, f"{where}.activations and .weights must be uint8 or int8")
    if data["calibration_method"] not in CALIBRATION_METHODS:
        raise _fail(
            path, f"{where}.calibration_method must be one of {', '.join(CALIBRATION_METHODS)}"
        )
    frames = _typed(data["calibration_frames"], int, f"{where}.calibration_frames", path)
    if frames < 1:
        raise _fail(path, f"{where}.calibration_frames must be at least 1")
    sources = _typed(data["calibration_data"], list, f"{where}.calibration_data", path)
    if not all(isinstance(v, str) for v in sources):
        raise _fail(path, f"{where}.calibration_data must be a list of strings")
    kept = _typed(data["float_convs"], dict, f"{where}.float_convs", path)
    int8 = sorted(name for name, g in graphs.items() if g.precision == "int8")
    if sorted(kept) != int8:
        raise _fail(path, f"{where}.float_convs must name exactly the int8 graphs")
    for name, count in kept.items():
        if _typed(count, int, f"{where}.float_convs.{name}", path) < 0:
            raise _fail(path, f"{where}.float_convs.{name} must not be negative")
    return QuantizationInfo(
        format=data["format"],
        activations=data["activations"],
        weights=data["weights"],
        per_channel=_typed(data["per_channel"], bool, f"{where}.per_channel", path),
        reduce_range=_typed(data["reduce_range"], bool, f"{where}.reduce_range", path),
        calibration_method=data["calibration_method"],
        calibration_frames=frames,
        calibration_data=tuple(sources),
        float_convs=dict(kept),
        outputs=data["outputs"],
    )


def validate(data: Any, path: Path) -> Manifest:
    """The typed manifest of parsed JSON `data` read from `path` (named in every error)."""
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(data, dict) and "version" in data and version not in READ_VERSIONS:
        raise ManifestError(
            f"{path}: manifest version {version!r}, this donkey reads versions "
            f"{' and '.join(map(str, READ_VERSIONS))}; export the model again"
        )
    keys = {
        "format",
        "version",
        "created",
        "model_config",
        "checkpoint",
        "checkpoint_sha256",
        "opset",
        "graphs",
        "engine",
        "tools",
    }
    if version == MANIFEST_VERSION:
        keys.add("quantization")
    data = _keys(data, keys, "manifest", path)
    fmt = data["format"]
    if fmt not in FOLDER_KINDS:
        raise _fail(path, f"format {fmt!r} is neither onnx nor trt")
    try:
        config = model_config_from_dict(data["model_config"])
        specs = graph_specs(config)
    except DonkeyError as exc:
        raise _fail(path, f"model_config: {exc}") from None
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        raise _fail(path, f"model_config: {type(exc).__name__}") from None
    graphs_data = _typed(data["graphs"], dict, "graphs", path)
    if sorted(graphs_data) != sorted(GRAPH_NAMES):
        raise _fail(path, f"graphs must be exactly {', '.join(GRAPH_NAMES)}")
    # What the engines that load this kind of folder run (core/engines.py); version 2 predates
    # int8.
    precisions = folder_precisions(fmt)
    if version == 2:
        precisions = tuple(p for p in precisions if p != "int8")
    graphs = {
        name: _graph(name, graphs_data[name], fmt, specs[name], path, precisions)
        for name in GRAPH_NAMES
    }
    files = [g.file for g in graphs.values()]
    if len(set(files)) != len(files):
        raise _fail(path, "two graphs name the same file")
    engine = None
    if fmt == "trt":
        engine = _engine(data["engine"], path)
    elif data["engine"] is not None:
        raise _fail(path, "engine belongs to engine folders only")
    quantization = None
    if data.get("quantization") is not None:
        quantization = _quantization(data["quantization"], graphs, path)
    elif any(g.precision == "int8" for g in graphs.values()):
        raise _fail(path, "int8 graphs need a quantization record")
    checkpoint = data["checkpoint"]
    if checkpoint is not None:
        _typed(checkpoint, str, "checkpoint", path)
    opset = data["opset"]
    if opset is not None:
        _typed(opset, int, "opset", path)
    tools = _typed(data["tools"], dict, "tools", path)
    if not all(isinstance(v, str) for v in tools.values()):
        raise _fail(path, "tools must map names to version strings")
    return Manifest(
        format=fmt,
        model_config=config,
        checkpoint=checkpoint,
        checkpoint_sha256=_sha(data["checkpoint_sha256"], "checkpoint_sha256", path),
        opset=opset,
        graphs=graphs,
        engine=engine,
        quantization=quantization,
        tools=dict(tools),
        created=_typed(data["created"], str, "created", path),
        version=MANIFEST_VERSION,
    )
