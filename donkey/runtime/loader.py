"""From `--model` and `--engine` to four ready backends.

`--model` names a checkpoint file, an ONNX export folder or a TensorRT engine folder (told
apart by the folder's manifest.json) and defaults to the bundled model. The engine defaults
to what the model is: torch for checkpoints, ort for ONNX folders, trt for engine folders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from donkey.model.config import ModelConfig
from donkey.model.errors import DonkeyError

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "default.safetensors"
ENGINES = ("torch", "ort", "trt")
_KIND_ENGINE = {"checkpoint": "torch", "onnx": "ort", "trt": "trt"}


@dataclass
class LoadedModel:
    config: ModelConfig
    graphs: dict  # graph name -> Backend
    engine: str
    device: torch.device
    path: Path
    info: dict = field(default_factory=dict)


def resolve_model(model: str | Path | None) -> Path:
    if model is None or str(model) == "":
        if not DEFAULT_MODEL.exists():
            raise DonkeyError(
                f"no bundled default model at {DEFAULT_MODEL}; pass --model CHECKPOINT"
            )
        return DEFAULT_MODEL
    path = Path(model)
    if not path.exists():
        raise DonkeyError(f"{path}: no such model (checkpoint, ONNX folder or engine folder)")
    return path


def read_manifest(folder: Path) -> dict:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise DonkeyError(f"{folder}: folder has no manifest.json (not a `donkey export` folder)")
    try:
        return json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DonkeyError(f"{manifest}: unreadable manifest ({exc})") from None


def model_kind(path: Path) -> str:
    """'checkpoint', 'onnx' or 'trt'."""
    if path.is_dir():
        fmt = read_manifest(path).get("format")
        if fmt not in ("onnx", "trt"):
            raise DonkeyError(f"{path}: manifest format {fmt!r} is neither onnx nor trt")
        return fmt
    return "checkpoint"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DonkeyError("--device cuda asked for, but PyTorch sees no CUDA GPU")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise DonkeyError(f"--device must be cpu, cuda or auto, got {device!r}")
    return torch.device(device)


def _load_torch(path: Path, kind: str, device: torch.device, precision: str, options: dict):
    from donkey.model.checkpoint import build_networks, load_checkpoint
    from donkey.model.graphs import build_graphs
    from donkey.runtime.torch_backend import TorchBackend

    if kind != "checkpoint":
        raise DonkeyError(f"{path}: --engine torch needs a checkpoint, not an {kind} folder")
    if precision == "fp16" and device.type != "cuda":
        raise DonkeyError("--precision fp16 with --engine torch needs --device cuda")
    checkpoint = load_checkpoint(path)
    networks = build_networks(checkpoint, device)
    graphs = {
        name: TorchBackend(module, spec, device, precision)
        for name, (module, spec) in build_graphs(networks).items()
    }
    info = {"precision": {name: precision for name in graphs}}
    return checkpoint.model_config, graphs, info


def _load_ort(path: Path, kind: str, device: torch.device, precision: str, options: dict):
    from donkey.runtime.ort_backend import load_ort_graphs

    return load_ort_graphs(path, kind, device, precision, options)


def _load_trt(path: Path, kind: str, device: torch.device, precision: str, options: dict):
    from donkey.runtime.trt_backend import load_trt_graphs

    return load_trt_graphs(path, kind, device, precision, options)


_LOADERS: dict[str, Callable] = {"torch": _load_torch, "ort": _load_ort, "trt": _load_trt}


def load_model(
    model: str | Path | None = None,
    engine: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    options: dict | None = None,
) -> LoadedModel:
    """Resolves the model, picks the engine, and builds one backend per graph (not activated)."""
    path = resolve_model(model)
    kind = model_kind(path)
    engine = engine or _KIND_ENGINE[kind]
    if engine not in _LOADERS:
        raise DonkeyError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if precision not in ("fp32", "fp16"):
        raise DonkeyError(f"precision must be fp32 or fp16, got {precision!r}")
    dev = resolve_device(device)
    config, graphs, info = _LOADERS[engine](path, kind, dev, precision, options or {})
    return LoadedModel(
        config=config, graphs=graphs, engine=engine, device=dev, path=path, info=info
    )
