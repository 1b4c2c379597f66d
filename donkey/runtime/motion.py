"""Keypoint motion modes: absolute, or relative to the first driving frame (with scale adaption)."""

from __future__ import annotations

import torch
from torch import Tensor

from donkey.core.vocab import MOTION_MODES  # noqa: F401 (the modes this module computes)
from donkey.model.geometry import inverse_2x2


def hull_area(points: Tensor) -> float:
    """Area of the convex hull of (K, 2) points (monotone chain + shoelace)."""
    pts = sorted({(float(x), float(y)) for x, y in points.tolist()})
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    upper: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    area = 0.0
    for (x1, y1), (x2, y2) in zip(hull, hull[1:] + hull[:1]):
        area += x1 * y2 - x2 * y1
    return abs(area) / 2.0


def movement_scale(src_mean: Tensor, drv_first_mean: Tensor) -> float:
    """sqrt(hull area of source keypoints / hull area of the first driving frame's)."""
    drv_area = hull_area(drv_first_mean)
    if drv_area <= 1e-12:
        return 1.0
    return (hull_area(src_mean) / drv_area) ** 0.5


def cholesky_2x2(m: Tensor, eps: float = 1e-12) -> Tensor:
    """Lower-triangular L with L L^T = m for symmetric positive (semi)definite (..., 2, 2)."""
    a, b, d = m[..., 0, 0], m[..., 1, 0], m[..., 1, 1]
    l11 = torch.sqrt(torch.clamp(a, min=eps))
    l21 = b / l11
    l22 = torch.sqrt(torch.clamp(d - l21 * l21, min=eps))
    zero = torch.zeros_like(l11)
    return torch.stack([torch.stack([l11, zero], -1), torch.stack([l21, l22], -1)], -2)


def relative_keypoints(
    src_mean: Tensor,
    src_var: Tensor,
    drv_mean: Tensor,
    drv_var: Tensor,
    drv_first_mean: Tensor,
    drv_first_var: Tensor,
    adapt_scale: bool = False,
) -> tuple[Tensor, Tensor]:
    """mu = mu_src + s * (mu_drv_t - mu_drv_0); Sigma = A Sigma_src A^T, A = L_t L_0^-1.

    A is the linear map that turns the first driving frame's keypoint shape (Cholesky factor
    L_0) into frame t's (L_t). Applied to the source's covariance as a congruence it keeps
    it positive definite; Monkey-Net's Sigma_t Sigma_0^-1 Sigma_src is not, in general, and
    an indefinite covariance turns the gaussians into inf/NaN.

    src_*: (1, K, ...); drv_*: (T, K, ...); drv_first_*: (1, K, ...).
    """
    scale = movement_scale(src_mean[0], drv_first_mean[0]) if adapt_scale else 1.0
    mean = src_mean + scale * (drv_mean - drv_first_mean)
    change = cholesky_2x2(drv_var) @ inverse_2x2(cholesky_2x2(drv_first_var))  # (T, K, 2, 2)
    var = change @ src_var @ change.transpose(-1, -2)
    return mean, var
