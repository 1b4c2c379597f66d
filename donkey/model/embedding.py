"""Keypoint embeddings that the networks take as input (Monkey-Net's movement embedding)."""

from __future__ import annotations

import torch
from torch import Tensor

from donkey.model.geometry import keypoints_to_gaussians, make_coordinate_grid, warp


def gaussian_difference(
    src_mean: Tensor, src_var: Tensor, drv_mean: Tensor, drv_var: Tensor, size: int, norm: float
) -> Tensor:
    """(G(driving) - G(source)) / norm at size x size -> (B, K, size, size)."""
    drv = keypoints_to_gaussians(drv_mean, drv_var, size, size)
    src = keypoints_to_gaussians(src_mean, src_var, size, size)
    return (drv - src) / norm


def keypoint_offsets(src_mean: Tensor, drv_mean: Tensor) -> Tensor:
    """mu_src - mu_drv with a zero background slot first -> (B, K + 1, 2)."""
    offsets = src_mean - drv_mean
    return torch.cat([torch.zeros_like(offsets[:, :1]), offsets], dim=1)


def movement_embedding(
    source: Tensor,
    src_mean: Tensor,
    src_var: Tensor,
    drv_mean: Tensor,
    drv_var: Tensor,
    norm: float,
) -> Tensor:
    """Per background + keypoint slot: heatmap difference, offset maps, translated source.

    source: (B, C, h, w) already at the motion resolution.
    Returns (B, (K + 1) * (1 + 2 + C), h, w), slot-major so grouped convs see one slot each.
    """
    b = source.shape[0]
    c, h, w = (int(s) for s in source.shape[1:])  # static sizes: constant grids in ONNX
    heat = gaussian_difference(src_mean, src_var, drv_mean, drv_var, h, norm)  # (B, K, h, w)
    heat = torch.cat([torch.zeros_like(heat[:, :1]), heat], dim=1)  # (B, K+1, h, w)
    offsets = keypoint_offsets(src_mean, drv_mean)  # (B, K+1, 2)
    slots = int(offsets.shape[1])
    offset_maps = offsets[..., None, None].expand(b, slots, 2, h, w)  # (B, K+1, 2, h, w)
    grid = make_coordinate_grid(h, w, source)  # (h, w, 2)
    shifted = grid + offsets[:, :, None, None, :]  # (B, K+1, h, w, 2)
    repeated = source.unsqueeze(1).expand(b, slots, c, h, w).reshape(b * slots, c, h, w)
    translated = warp(repeated, shifted.reshape(b * slots, h, w, 2)).view(b, slots, c, h, w)
    embedding = torch.cat([heat.unsqueeze(2), offset_maps, translated], dim=2)
    return embedding.reshape(b, slots * (3 + c), h, w)
