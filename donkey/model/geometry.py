"""Pure geometry: coordinate grids, heatmaps <-> keypoints, gaussians, 2x2 algebra, warping.

Coordinates are in [-1, 1], x first, matching grid_sample with align_corners=True. Everything
here is written without Python loops over keypoints or batch and without torch.linalg, so the
exported ONNX graphs stay free of Inverse/Loop nodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def make_coordinate_grid(height: int, width: int, like: Tensor) -> Tensor:
    """(H, W, 2) grid of (x, y) pixel-centre coordinates spanning [-1, 1]."""
    x = torch.linspace(-1.0, 1.0, width, dtype=like.dtype, device=like.device)
    y = torch.linspace(-1.0, 1.0, height, dtype=like.dtype, device=like.device)
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return torch.stack([xx, yy], dim=-1)


def inverse_2x2(m: Tensor) -> Tensor:
    """Closed-form inverse of (..., 2, 2) matrices."""
    a, b = m[..., 0, 0], m[..., 0, 1]
    c, d = m[..., 1, 0], m[..., 1, 1]
    det = a * d - b * c
    row0 = torch.stack([d, -b], dim=-1)
    row1 = torch.stack([-c, a], dim=-1)
    return torch.stack([row0, row1], dim=-2) / det[..., None, None]


def smallest_singular_2x2(m: Tensor) -> Tensor:
    """Smallest singular value of (..., 2, 2) matrices, closed form.

    Computed as |det| / largest singular value: the textbook sqrt((s1 - s2) / 2) cancels
    catastrophically in float32 for thin keypoint covariances and then breaks the clip.
    """
    a, b = m[..., 0, 0], m[..., 0, 1]
    c, d = m[..., 1, 0], m[..., 1, 1]
    s1 = a * a + b * b + c * c + d * d
    s2 = torch.sqrt((a * a + b * b - c * c - d * d) ** 2 + 4 * (a * c + b * d) ** 2)
    largest = torch.sqrt((s1 + s2) / 2)
    return torch.abs(a * d - b * c) / torch.clamp(largest, min=1e-20)


def heatmap_to_keypoints(heatmap: Tensor, clip_variance: float) -> tuple[Tensor, Tensor]:
    """Keypoints from normalised heatmaps.

    heatmap: (B, K, H, W), each map summing to ~1.
    Returns mean (B, K, 2) and covariance (B, K, 2, 2); the covariance is rescaled so its
    smallest singular value is at least `clip_variance`.
    """
    h, w = int(heatmap.shape[2]), int(heatmap.shape[3])  # static: a constant grid in ONNX
    grid = make_coordinate_grid(h, w, heatmap)  # (H, W, 2)
    p = heatmap.unsqueeze(-1)  # (B, K, H, W, 1)
    mean = (p * grid).sum(dim=(2, 3))  # (B, K, 2)
    centred = grid - mean[:, :, None, None, :]  # (B, K, H, W, 2)
    outer = centred.unsqueeze(-1) * centred.unsqueeze(-2)  # (B, K, H, W, 2, 2)
    var = (outer * p.unsqueeze(-1)).sum(dim=(2, 3))  # (B, K, 2, 2)
    sv = smallest_singular_2x2(var)[..., None, None]  # (B, K, 1, 1)
    scale = torch.clamp(sv, min=clip_variance) / torch.clamp(sv, min=1e-12)
    return mean, var * scale


def keypoints_to_gaussians(mean: Tensor, var: Tensor, height: int, width: int) -> Tensor:
    """Unnormalised gaussians, peak 1: exp(-1/2 (p - mu)^T Sigma^-1 (p - mu)).

    mean: (B, K, 2), var: (B, K, 2, 2) -> (B, K, H, W).
    """
    grid = make_coordinate_grid(height, width, mean)  # (H, W, 2)
    diff = grid - mean[:, :, None, None, :]  # (B, K, H, W, 2)
    inv = inverse_2x2(var)  # (B, K, 2, 2)
    ia, ib = inv[..., 0, 0, None, None], inv[..., 0, 1, None, None]
    ic, idd = inv[..., 1, 0, None, None], inv[..., 1, 1, None, None]
    dx, dy = diff[..., 0], diff[..., 1]
    # Expanded quadratic form: avoids a (B, K, H, W, 2, 2) matmul.
    quad = dx * (ia * dx + ib * dy) + dy * (ic * dx + idd * dy)  # (B, K, H, W)
    return torch.exp(-0.5 * quad)


def spatial_softmax(logits: Tensor, temperature: float) -> Tensor:
    """Softmax over H*W of (B, K, H, W) logits, plus 1e-7 as in Monkey-Net."""
    b, k = logits.shape[:2]
    h, w = int(logits.shape[2]), int(logits.shape[3])
    flat = F.softmax(logits.flatten(2) / temperature, dim=-1)
    return flat.view(b, k, h, w) + 1e-7


def warp(image: Tensor, grid: Tensor) -> Tensor:
    """Backward warp: image (B, C, H, W) sampled at grid (B, h, w, 2) -> (B, C, h, w)."""
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def resize_grid(grid: Tensor, size: int) -> Tensor:
    """Resizes a (B, h, w, 2) sampling grid to (B, size, size, 2).

    The displacement from identity is resized (nearest, as Monkey-Net resizes the grid) and
    the identity of the target size added back: resizing the grid itself would turn an
    identity warp into a blocky, half-pixel-shifted one at every other resolution.
    """
    src = int(grid.shape[1])
    if src == size:
        return grid
    displacement = grid - make_coordinate_grid(src, src, grid)
    # A constant scale factor keeps the exported Resize free of shape arithmetic.
    resized = F.interpolate(
        displacement.permute(0, 3, 1, 2), scale_factor=size / src, mode="nearest"
    ).permute(0, 2, 3, 1)
    return resized + make_coordinate_grid(size, size, grid)


def resize_image(image: Tensor, scale: float) -> Tensor:
    """Nearest rescale of (B, C, H, W) by a constant factor (Monkey-Net's input downscale)."""
    if scale == 1:
        return image
    return F.interpolate(image, scale_factor=scale, mode="nearest")
