"""The Backend protocol: named tensors in, named tensors out, one exported graph per backend."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from torch import Tensor

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
