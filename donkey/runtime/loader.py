"""From `--model` and `--engine` to four ready backends.

`--model` names a checkpoint file, an ONNX export folder or a TensorRT engine folder (told
apart by the folder's manifest.json) and defaults to the bundled model. The engine defaults
to what the model is: torch for checkpoints, ort for ONNX folders, trt for engine folders;
int8 on the CPU defaults to OpenVINO where it is installed (`default_engine`).
A folder is verified (docs/architecture.md, "Artifact formats") before any backend sees it.

This layer loads what exists. Turning a checkpoint into an ONNX folder or engines (the
build-once cache) is export's job; the CLI composes both (donkey/cli/models.py).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import torch

from donkey.artifacts.manifest import Manifest
from donkey.artifacts.verify import verify_folder
from donkey.model.config import ModelConfig
from donkey.model.errors import DonkeyError

# Each engine module registers its loader when imported (runtime/backend.py).
from donkey.runtime import openvino_backend, ort_backend, torch_backend, trt_backend  # noqa: F401
from donkey.runtime.backend import Backend, LoadOptions, LoadRequest, engine_loader
from donkey.runtime.variants import ENGINE_PRECISIONS

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "default.safetensors"
ENGINES = ("torch", "ort", "trt", "openvino")
# bf16: torch autocast (CPU or CUDA); int8: ONNX Runtime or OpenVINO on a quantized ONNX folder.
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
_PRECISION_ENGINES = {"bf16": ("torch",), "int8": ("ort", "openvino")}
_KIND_ENGINE = {"checkpoint": "torch", "onnx": "ort", "trt": "trt"}


@dataclass
class LoadedModel:
    config: ModelConfig
    graphs: dict[str, Backend]
    engine: str
    device: torch.device
    path: Path
    precision: dict[str, str] = field(default_factory=dict)  # graph name -> fp32 / fp16
    manifest: Manifest | None = None  # export folders only


def resolve_model(model: str | Path | None) -> Path:
    if model is not None and str(model).strip() == "":
        # `--model "$MODEL"` with MODEL unset: running the bundled model instead would hide it.
        raise DonkeyError("--model is empty: give a checkpoint or export folder, or leave it out")
    if model is None:
        if not DEFAULT_MODEL.exists():
            raise DonkeyError(
                f"no bundled default model at {DEFAULT_MODEL}; pass --model CHECKPOINT"
            )
        return DEFAULT_MODEL
    path = Path(model)
    if not path.exists():
        raise DonkeyError(f"{path}: no such model (checkpoint, ONNX folder or engine folder)")
    return path


def model_kind(path: Path) -> str:
    """'checkpoint', 'onnx' or 'trt' (a folder's manifest is read and validated, not verified)."""
    if path.is_dir():
        return Manifest.read(path).format
    return "checkpoint"


def default_engine(
    kind: str, precision: str = "fp32", device: str = "auto", held: frozenset[str] = frozenset()
) -> str:
    """What the model is (torch for checkpoints, ort for ONNX folders, trt for engines); but
    int8 on the CPU (asked for, or `held` by an ONNX folder's graphs) goes to OpenVINO where
    it is installed: ONNX Runtime runs the export's int8 graphs at about fp32 speed on CPUs
    without VNNI (benchmarks/README.md)."""
    int8 = precision == "int8" or (kind == "onnx" and "int8" in held)
    if int8 and kind in ("checkpoint", "onnx"):
        on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
        return "openvino" if on_cpu and openvino_installed() else "ort"
    return _KIND_ENGINE[kind]


def choose_engine(path: Path, kind: str, engine: str | None, precision: str, device: str) -> str:
    """The engine for `--engine` (None: the default) after every refusal that needs nothing
    loaded; an export folder's manifest is read once for all of them."""
    held = frozenset(Manifest.read(path).precision.values()) if kind != "checkpoint" else None
    if held is not None:
        check_folder_precision(path, held, precision)
    engine = check_engine(engine or default_engine(kind, precision, device, held or frozenset()))
    check_precision_name(precision, engine)
    return engine


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise DonkeyError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def check_precision_name(precision: str, engine: str) -> str:
    """One of PRECISIONS, and one this engine runs."""
    if precision not in PRECISIONS:
        raise DonkeyError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    engines = _PRECISION_ENGINES.get(precision)
    if engines is not None and engine not in engines:
        raise DonkeyError(
            f"--precision {precision} runs on --engine {' or '.join(engines)}, not {engine}"
        )
    runs = ENGINE_PRECISIONS.get(engine, PRECISIONS)
    if precision not in runs:  # before anything is exported for it
        raise DonkeyError(f"--engine {engine} runs {', '.join(runs)}, not --precision {precision}")
    return precision


def check_folder_precision(path: Path, precisions: frozenset[str], precision: str) -> None:
    """An export folder's graphs are what they are: a precision other than fp32 (the default)
    that the folder does not hold is refused rather than silently not applied."""
    if precision == "fp32":
        return
    held = sorted(precisions - {"fp32"}) or ["fp32"]
    if precision not in held:
        made_for = (
            "" if precision == "bf16" else f", or an export made for it (export --{precision})"
        )
        raise DonkeyError(
            f"{path}: an {'/'.join(held)} export, so --precision {precision} cannot apply; "
            f"give a checkpoint{made_for}"
        )


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DonkeyError("--device cuda asked for, but PyTorch sees no CUDA GPU")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise DonkeyError(f"--device must be cpu, cuda or auto, got {device!r}")
    return torch.device(device)


def load_model(
    model: str | Path | None = None,
    engine: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    options: LoadOptions | None = None,
) -> LoadedModel:
    """Resolves the model, picks the engine, and builds one backend per graph (not activated).

    Export folders are verified first: every file the manifest names lies inside the folder
    and matches its recorded sha256, else a one-line error names the file.
    """
    path = resolve_model(model)
    kind = model_kind(path)
    engine = choose_engine(path, kind, engine, precision, device)
    if engine == "openvino" and device == "auto":
        device = "cpu"  # OpenVINO runs on the CPU only
    dev = resolve_device(device)
    manifest = verify_folder(path) if kind != "checkpoint" else None
    request = LoadRequest(path, kind, dev, precision, options or LoadOptions(), manifest)
    loaded = engine_loader(engine)(request)
    return LoadedModel(
        config=loaded.config,
        graphs=loaded.graphs,
        engine=engine,
        device=dev,
        path=path,
        precision=loaded.precision,
        manifest=manifest,
    )
