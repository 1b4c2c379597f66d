"""Sample grids: one row per sample, one column per named image (source, driving, result...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from donkey.data.frames import tensor_to_frames
from donkey.data.writers import write_image


def image_grid(columns: dict[str, Tensor], rows: int = 4) -> np.ndarray:
    """Each value (N, 3, H, W) in [0, 1] -> (rows * H, len(columns) * W, 3) uint8."""
    tiles = [tensor_to_frames(t[:rows].detach().float().cpu()) for t in columns.values()]
    n = min(t.shape[0] for t in tiles)
    rows_img = [np.concatenate([t[i] for t in tiles], axis=1) for i in range(n)]
    return np.concatenate(rows_img, axis=0)


def save_sample_grid(path: Path, columns: dict[str, Tensor], rows: int = 4) -> Path:
    with torch.no_grad():
        return write_image(path, image_grid(columns, rows))
