"""From `--model` and `--engine` to four ready backends.

`--model` names a checkpoint file, an ONNX export folder or a TensorRT engine folder (told
apart by the folder's manifest.json) and defaults to the bundled model. The engine defaults
to what the model is: torch for checkpoints, ort for ONNX folders, trt for engine folders;
int8 on the CPU defaults to OpenVINO where it is installed (`default_engine`).
Every choice is made once, in `resolve`: the resulting `ResolvedModel` (path, kind, engine,
device, manifest) is what `load_resolved` loads. A folder is verified (docs/architecture.md,
"Artifact formats") before any backend sees it.

This layer loads what exists. Turning a checkpoint into an ONNX folder or engines (the
build-once cache) is export's job; the application layer composes both (donkey/app/models.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from donkey.artifacts.manifest import Manifest
from donkey.artifacts.verify import verify_folder
from donkey.core import engines
from donkey.core.engines import CHECKPOINT, ONNX
from donkey.model.config import ModelConfig
from donkey.model.errors import DonkeyError

# Each engine module registers its loader when imported (runtime/backend.py).
from donkey.runtime import openvino_backend, ort_backend, torch_backend, trt_backend  # noqa: F401
from donkey.runtime.backend import Backend, LoadOptions, LoadRequest, load_graphs
from donkey.runtime.device import device_type, engine_device

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "default.safetensors"


@dataclass
class LoadedModel:
    config: ModelConfig
    graphs: dict[str, Backend]
    engine: str
    device: torch.device
    path: Path
    precision: dict[str, str] = field(default_factory=dict)  # graph name -> fp32 / fp16
    manifest: Manifest | None = None  # export folders only

    def open(self) -> None:
        """Opens every graph's backend now rather than at its first inference."""
        for backend in self.graphs.values():
            backend.open()

    def close(self) -> None:
        """Releases every backend's sessions, engines and device memory."""
        for backend in self.graphs.values():
            backend.close()

    def __enter__(self) -> LoadedModel:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class ResolvedModel:
    """What `--model`, `--engine`, `--device` and `--precision` came to, decided once (every
    refusal that needs nothing loaded is behind it): the model's path and kind, the engine,
    the device, and an export folder's manifest (read and validated; verified at loading)."""

    path: Path
    kind: str  # "checkpoint", "onnx" or "trt"
    engine: str
    device: torch.device
    precision: str
    manifest: Manifest | None = None

    def at(self, path: Path) -> ResolvedModel:
        """The same choices for the folder built from this model (the build-once cache)."""
        if path == self.path:
            return self
        manifest = Manifest.read(path)
        return replace(self, path=path, kind=manifest.format, manifest=manifest)


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
    return CHECKPOINT


def default_engine(
    kind: str, precision: str = "fp32", device: str = "auto", held: frozenset[str] = frozenset()
) -> str:
    """What the model is (torch for checkpoints, ort for ONNX folders, trt for engines); but
    int8 on the CPU (asked for, or `held` by an ONNX folder's graphs) goes to OpenVINO where
    it is installed (core/engines.py)."""
    int8 = precision == "int8" or (kind == ONNX and "int8" in held)
    return engines.default_engine(kind, int8, device_type(device))


def choose_engine(
    path: Path,
    kind: str,
    engine: str | None,
    precision: str,
    device: str,
    manifest: Manifest | None,
) -> str:
    """The engine for `--engine` (None: the default) after every refusal that needs nothing
    loaded."""
    held = frozenset(manifest.precision.values()) if manifest is not None else None
    if held is not None:
        check_folder_precision(path, held, precision)
    engine = engine or default_engine(kind, precision, device, held or frozenset())
    refusal = engines.engine_refusal(engine) or engines.precision_refusal(precision, engine)
    if refusal:
        raise DonkeyError(refusal)
    return engine


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


def resolve(
    model: str | Path | None = None,
    engine: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
) -> ResolvedModel:
    """The model's path and kind, the engine and the device, each decided here once; an
    export folder's manifest is read once for all of them."""
    path = resolve_model(model)
    manifest = Manifest.read(path) if path.is_dir() else None
    kind = manifest.format if manifest is not None else CHECKPOINT
    engine = choose_engine(path, kind, engine, precision, device, manifest)
    return ResolvedModel(path, kind, engine, engine_device(engine, device), precision, manifest)


def load_resolved(resolved: ResolvedModel, options: LoadOptions | None = None) -> LoadedModel:
    """One backend per graph (not opened) for a resolved model.

    Export folders are verified first: every file the manifest names lies inside the folder
    and matches its recorded sha256, else a one-line error names the file.
    """
    manifest = (
        verify_folder(resolved.path, resolved.manifest) if resolved.kind != CHECKPOINT else None
    )
    request = LoadRequest(
        resolved.path,
        resolved.kind,
        resolved.device,
        resolved.precision,
        options or LoadOptions(),
        manifest,
    )
    loaded = load_graphs(resolved.engine, request)
    return LoadedModel(
        config=loaded.config,
        graphs=loaded.graphs,
        engine=resolved.engine,
        device=resolved.device,
        path=resolved.path,
        precision=loaded.precision,
        manifest=manifest,
    )


def load_model(
    model: str | Path | None = None,
    engine: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    options: LoadOptions | None = None,
) -> LoadedModel:
    """Resolves the model, picks the engine, and builds one backend per graph (not opened):
    what exists only (a checkpoint runs on torch; donkey/app/models.py builds the rest)."""
    return load_resolved(resolve(model, engine, device, precision), options)
