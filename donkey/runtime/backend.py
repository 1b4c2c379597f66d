"""The Backend protocol (named tensors in, named tensors out, one exported graph per backend)
and the registry through which each engine module offers its loader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from donkey.artifacts.manifest import Manifest
from donkey.model.config import ModelConfig
from donkey.model.errors import DonkeyError
from donkey.model.spec import GraphSpec


@runtime_checkable
class Backend(Protocol):
    spec: GraphSpec

    def activate(self) -> None:
        """Allocates sessions/engines/device memory. Construction does no device work."""

    def infer(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Runs the graph; inputs and outputs keyed by the spec's tensor names."""


class BaseBackend:
    """Checks inputs against the spec and activates on first use (Polygraphy-style runner)."""

    engine: ClassVar[str] = "base"

    def __init__(self, spec: GraphSpec) -> None:
        self.spec = spec
        self._active = False

    def activate(self) -> None:
        if not self._active:
            self._activate()
            self._active = True

    def infer(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        self.spec.check_inputs(inputs)
        self.activate()
        return self._infer(inputs)

    def _activate(self) -> None:
        raise NotImplementedError

    def _infer(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError


@dataclass(frozen=True)
class LoadOptions:
    """Engine options; each engine reads the ones that concern it."""

    threads: int | None = None  # ort: intra-op threads (None: ONNX Runtime's default)
    ort_providers: tuple[str, ...] | None = None  # ort: e.g. ("cuda", "cpu"); None: by device
    cuda_graphs: bool = False  # trt: capture and replay CUDA graphs per batch size
    # torch bf16 / ort int8 on a CPU without the instructions that make them fast
    # (runtime/cpu_features.py): run anyway instead of refusing.
    allow_slow_precision: bool = False


@dataclass(frozen=True)
class LoadRequest:
    """What a loader gets: a checkpoint (manifest None) or a verified export folder."""

    path: Path
    kind: str  # "checkpoint", "onnx" or "trt"
    device: torch.device
    precision: str
    options: LoadOptions
    manifest: Manifest | None = None


@dataclass
class LoadedGraphs:
    config: ModelConfig
    graphs: dict[str, Backend]
    precision: dict[str, str] = field(default_factory=dict)


def onnx_manifest(request: LoadRequest, engine: str) -> Manifest:
    """The manifest of the ONNX folder an ONNX-reading engine was given, or a one-line refusal
    (a checkpoint or an engine folder)."""
    manifest = request.manifest
    if manifest is None or manifest.format != "onnx":
        what = "engines" if manifest is not None else "a checkpoint"
        raise DonkeyError(
            f"{request.path}: --engine {engine} runs an ONNX folder, not {what}; "
            "`donkey export` one (the donkey command does this for a checkpoint)"
        )
    return manifest


EngineLoader = Callable[[LoadRequest], LoadedGraphs]
_LOADERS: dict[str, EngineLoader] = {}


def register_engine(name: str) -> Callable[[EngineLoader], EngineLoader]:
    """Decorator: `@register_engine("ort")` on the function that builds that engine's backends."""

    def decorate(loader: EngineLoader) -> EngineLoader:
        _LOADERS[name] = loader
        return loader

    return decorate


def engine_loader(name: str) -> EngineLoader:
    if name not in _LOADERS:
        raise DonkeyError(f"--engine must be one of {', '.join(sorted(_LOADERS))}, got {name!r}")
    return _LOADERS[name]
