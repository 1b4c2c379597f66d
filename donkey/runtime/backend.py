"""The Backend protocol (named tensors in, named tensors out, one exported graph per backend),
the base class every backend shares (lifecycle, feed checks), and the registry through which
each engine module offers its loader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from donkey.artifacts.manifest import Manifest
from donkey.core.engines import (
    CHECKPOINT,
    ENGINES,
    ONNX,
    device_refusal,
    engine_refusal,
    precision_refusal,
)
from donkey.model.config import ModelConfig
from donkey.model.errors import DonkeyError
from donkey.model.spec import GraphSpec


@runtime_checkable
class Backend(Protocol):
    spec: GraphSpec

    def open(self) -> None:
        """Allocates sessions/engines/device memory. Construction does no device work."""

    def close(self) -> None:
        """Releases what `open` allocated; `open` (or `infer`) opens it again."""

    def infer(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Runs the graph; inputs and outputs keyed by the spec's tensor names."""


class BaseBackend:
    """Checks feeds against the spec and opens on first use (Polygraphy-style runner); a
    context manager that closes on leaving.

    Subclasses implement `_open`, `_close` and `_infer`; `_infer` sees only feeds that passed
    `check_feeds`.
    """

    engine: ClassVar[str] = "base"

    def __init__(self, spec: GraphSpec) -> None:
        self.spec = spec
        self._is_open = False

    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> None:
        if not self._is_open:
            self._open()
            self._is_open = True

    # The name callers used before backends could be closed.
    activate = open

    def close(self) -> None:
        if self._is_open:
            self._is_open = False
            self._close()

    def __enter__(self) -> BaseBackend:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def infer(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        self.check_feeds(inputs)
        self.open()
        return self._infer(inputs)

    def check_feeds(self, inputs: dict[str, Tensor]) -> None:
        """One-line DonkeyError naming the graph and the tensor: a missing input, one that is
        no torch tensor, a shape or dtype other than the spec's, or mixed batch sizes."""
        for t in self.spec.inputs:
            value = inputs.get(t.name)
            if value is not None and not isinstance(value, Tensor):
                raise DonkeyError(
                    f"graph {self.spec.name}: {t.name}: expected a torch tensor, got "
                    f"{type(value).__name__}"
                )
        self.spec.check_inputs(inputs)  # names, shapes, one batch size
        for t in self.spec.inputs:
            dtype = str(inputs[t.name].dtype).removeprefix("torch.")
            if dtype != t.dtype:
                raise DonkeyError(
                    f"graph {self.spec.name}: {t.name}: expected dtype {t.dtype}, got {dtype}"
                )

    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
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
    kind: str  # "checkpoint", "onnx" or "trt" (core/engines.py KINDS)
    device: torch.device
    precision: str
    options: LoadOptions
    manifest: Manifest | None = None

    @property
    def folder(self) -> Manifest:
        """The export folder's verified manifest (`load_graphs` checked there is one)."""
        if self.manifest is None:
            raise DonkeyError(f"{self.path}: not an export folder")
        return self.manifest


@dataclass
class LoadedGraphs:
    config: ModelConfig
    graphs: dict[str, Backend]
    precision: dict[str, str] = field(default_factory=dict)


EngineLoader = Callable[[LoadRequest], LoadedGraphs]
_LOADERS: dict[str, EngineLoader] = {}


def register_engine(name: str) -> Callable[[EngineLoader], EngineLoader]:
    """Decorator: `@register_engine("ort")` on the function that builds that engine's backends."""

    def decorate(loader: EngineLoader) -> EngineLoader:
        _LOADERS[name] = loader
        return loader

    return decorate


def engine_loader(name: str) -> EngineLoader:
    refusal = engine_refusal(name)
    if refusal:
        raise DonkeyError(refusal)
    if name not in _LOADERS:  # its module was not imported (runtime/loader.py imports them all)
        raise DonkeyError(f"--engine {name}: no loader is registered for it")
    return _LOADERS[name]


def load_graphs(engine: str, request: LoadRequest) -> LoadedGraphs:
    """The engine's backends for `request`, after the refusals its entry in the engine table
    decides (device, kind of model, precision); the loader adds its own."""
    loader = engine_loader(engine)
    refusal = device_refusal(engine, request.device.type) or _kind_refusal(engine, request)
    refusal = refusal or precision_refusal(request.precision, engine)
    refusal = refusal or _graph_precision_refusal(engine, request)
    if refusal:
        raise DonkeyError(refusal)
    return loader(request)


def _kind_refusal(engine: str, request: LoadRequest) -> str | None:
    runs, manifest, path = ENGINES[engine].runs, request.manifest, request.path
    found = manifest.format if manifest is not None else CHECKPOINT
    if found == runs:
        return None
    if runs == CHECKPOINT:
        return f"{path}: --engine {engine} needs a checkpoint, not an {found} folder"
    if runs == ONNX:
        what = "engines" if manifest is not None else "a checkpoint"
        return (
            f"{path}: --engine {engine} runs an ONNX folder, not {what}; "
            "`donkey export` one (the donkey command does this for a checkpoint)"
        )
    return (
        f"{path}: --engine {engine} runs an engine folder; build one with "
        "`donkey export --format trt`"
    )


def _graph_precision_refusal(engine: str, request: LoadRequest) -> str | None:
    """A folder whose graphs hold a precision the engine does not run: the engines that
    would run it are named."""
    if request.manifest is None:
        return None
    runs = ENGINES[engine].precisions
    held = set(request.manifest.precision.values())
    other = sorted(held - set(runs))
    if not other:
        return None
    instead = [
        name
        for name, spec in ENGINES.items()
        if spec.runs == request.kind and held <= set(spec.precisions)
    ]
    use = f" (use --engine {' or '.join(instead)})" if instead else ""
    return (
        f"{request.path}: --engine {engine} runs {' and '.join(runs)} folders, this one has "
        f"{', '.join(other)} graphs{use}"
    )
