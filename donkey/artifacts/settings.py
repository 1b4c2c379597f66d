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

    @classmethod
    def covering(cls, batch_size: int) -> BatchRange:
        """The default range, widened to `batch_size`: what a run at that batch size (and at
        batch 1, for the source image and the last partial batch) needs."""
        default = cls()
        return cls(default.min, default.opt, max(default.max, batch_size))

    def refuses(self, batch_size: int) -> str | None:
        """Why engines of this range cannot animate at `batch_size`, or None."""
        if self.min > 1:
            return (
                f"its engines start at batch {self.min}, and animating needs batch 1 (the "
                f"source image, a last partial batch); export again with --min-batch 1"
            )
        if batch_size > self.max:
            return (
                f"its engines take batches of at most {self.max} (--max-batch); use "
                f"--batch-size {self.max} or less, or export again with --max-batch {batch_size}"
            )
        return None


@dataclass
class EngineSettings:
    batch: BatchRange
    workspace_gb: float = 4.0
    timing_cache: Path | None = None
    allow_tf32: bool = False
