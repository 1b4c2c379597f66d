"""The read budget: the most one read of a media file may decode, and the error a file that
cannot be read raises. Standard library only, so the commands build a budget from their options
before anything heavy is imported."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from donkey.model.errors import DonkeyError


class MediaError(DonkeyError):
    """A file that cannot be read or written as media."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{path}: {cause}")


@dataclass(frozen=True)
class Budget:
    """The most one read may decode, counted at the file's native size.

    The defaults keep any single read under about 1 GB of memory (a frame of 50 megapixels
    passes through a few full-size copies while it is converted) and bound its decoding time.
    """

    max_pixels: int = 1_000_000_000  # frames x height x width of the whole file
    max_frames: int = 10_000
    max_frame_pixels: int = 50_000_000  # height x width of one frame

    ENV = {
        "max_pixels": "DONKEY_MAX_PIXELS",
        "max_frames": "DONKEY_MAX_FRAMES",
        "max_frame_pixels": "DONKEY_MAX_FRAME_PIXELS",
    }

    @classmethod
    def from_env(cls) -> Budget:
        """The defaults, raised or lowered by DONKEY_MAX_PIXELS / _FRAMES / _FRAME_PIXELS."""
        values = {}
        for field_name, var in cls.ENV.items():
            text = os.environ.get(var)
            if text is None or not text.strip():
                continue
            values[field_name] = parse_count(text, var)
        return cls(**values)

    def check(self, path: Path, frames: int, width: int, height: int) -> None:
        """Raises MediaError when `frames` frames of width x height exceed the budget."""
        if width < 1 or height < 1:
            raise MediaError(path, f"declares an empty {width}x{height} frame size")
        per_frame = width * height
        if per_frame > self.max_frame_pixels:
            raise MediaError(
                path,
                f"frames of {width}x{height} ({_mega(per_frame)}) exceed the "
                f"{_mega(self.max_frame_pixels)} per-frame read budget "
                f"(raise it with {self.ENV['max_frame_pixels']} or --max-frame-pixels of animate and eval)",
            )
        if frames > self.max_frames:
            raise MediaError(
                path,
                f"{frames} frames exceed the {self.max_frames}-frame read budget "
                f"(raise it with {self.ENV['max_frames']} or --max-frames of animate and eval)",
            )
        if frames * per_frame > self.max_pixels:
            raise MediaError(
                path,
                f"{frames} frames of {width}x{height} ({_mega(frames * per_frame)}) exceed the "
                f"{_mega(self.max_pixels)} read budget "
                f"(raise it with {self.ENV['max_pixels']} or --max-pixels of animate and eval)",
            )


def parse_count(text: str, name: str) -> int:
    """A positive integer such as '2000000000', '2e9', '2_000_000_000'."""
    try:
        value = float(text.replace("_", "").strip())
    except ValueError:
        raise DonkeyError(f"{name} must be a positive number, got {text!r}") from None
    if not (value >= 1 and value < 2**62):
        raise DonkeyError(f"{name} must be a positive number, got {text!r}")
    return int(value)


def _mega(pixels: int) -> str:
    if pixels < 10**5:  # a lowered budget: "0.0 megapixels" would say nothing
        return f"{pixels} pixels"
    return f"{pixels / 1e6:.1f} megapixels" if pixels < 10**9 else f"{pixels / 1e9:.2f} gigapixels"
