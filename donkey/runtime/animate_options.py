"""What `donkey animate` makes of its inputs and outputs (fit, background, side by side),
shared by single-file and batch animation, and the side-by-side composition itself."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from donkey.data.frames import WHITE


@dataclass
class AnimateOptions:
    fit: str = "pad"
    background: tuple[int, int, int] = WHITE
    side_by_side: bool = False


def side_by_side(source: np.ndarray, driving: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(H, W, 3), (T, H, W, 3), (T, H, W, 3) -> (T, H, 3W, 3): source | driving | result."""
    src = np.broadcast_to(source, prediction.shape)
    return np.concatenate([src, driving, prediction], axis=2)
