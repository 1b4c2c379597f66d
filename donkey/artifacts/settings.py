"""TensorRT build settings: the batch range of the optimisation profile and the builder limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from donkey.model.errors import DonkeyError


@dataclass(frozen=True)
class BatchRange:
    min: int = 1
    opt: int = 8
    max: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise DonkeyError(
                f"batch sizes need 1 <= min <= opt <= max, got {self.min}/{self.opt}/{self.max}"
            )


@dataclass
class EngineSettings:
    batch: BatchRange
    workspace_gb: float = 4.0
    timing_cache: Path | None = None
    allow_tf32: bool = False
