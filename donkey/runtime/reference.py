"""Relative motion from a chosen driving frame: the reference picker, temporal smoothing of
keypoint tracks, and relative keypoints with a motion scale.

Relative motion applies the driving's movement since one of its frames to the source
(runtime/motion.py measures it from frame 0). When the source is posed unlike that frame (a
clip that starts mid-gallop, a standing drawing) the movement is measured from the wrong
pose. `pick_reference` finds the driving frame whose keypoint layout is most like the
source's; `relative_motion` measures from it. Measurements: benchmarks/reference-frame.md.

Pure functions over keypoint tensors: mean (..., K, 2) in [-1, 1], var (..., K, 2, 2).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from donkey.model.errors import DonkeyError, brief
from donkey.model.geometry import inverse_2x2
from donkey.runtime.motion import cholesky_2x2, movement_scale

_EPS = 1e-8  # the smallest layout scale divided by (all keypoints on one spot)
SMOOTH_RADIUS = 3.0  # gaussian taps reach this many sigmas either side
_TINY_WEIGHT = 1e-9  # taps lighter than this (relative to the centre's 1) are left out


def _normalise_layout(mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
    """Keypoints without position and scale: mean (N, K, 2), var (N, K, 2, 2) ->
    (centred mean / scale (N, K, 2), Cholesky factor of var / scale (N, K, 2, 2)), where the
    scale is the RMS distance of the keypoints to their centroid."""
    centred = mean - mean.mean(-2, keepdim=True)  # (N, K, 2)
    scale = centred.pow(2).sum(-1).mean(-1).sqrt().clamp(min=_EPS)  # (N,)
    return centred / scale[:, None, None], cholesky_2x2(var) / scale[:, None, None, None]


def layout_distance(
    src_mean: Tensor,
    src_var: Tensor,
    drv_mean: Tensor,
    drv_var: Tensor,
    use_covariance: bool = True,
) -> Tensor:
    """How unlike the source's keypoint layout each driving frame's is: (T,), >= 0.

    Both layouts lose their position (centroid) and scale (RMS distance to the centroid);
    the distance is the mean over keypoints of the squared difference of the normalised
    positions, plus, with `use_covariance`, of the normalised covariances' Cholesky factors
    (squared Frobenius). The Cholesky factor is a length like the positions (a standard
    deviation), so both terms are in the same unit and add without a weight; it is also the
    factor relative motion maps (A = L_t L_ref^-1). Rotation is kept: a tilted body is a
    different pose.

    src_*: (1, K, ...); drv_*: (T, K, ...).
    """
    src_pos, src_chol = _normalise_layout(src_mean, src_var)  # (1, K, 2), (1, K, 2, 2)
    drv_pos, drv_chol = _normalise_layout(drv_mean, drv_var)  # (T, K, 2), (T, K, 2, 2)
    distance = (drv_pos - src_pos).pow(2).sum(-1).mean(-1)  # (T,)
    if use_covariance:
        distance = distance + (drv_chol - src_chol).pow(2).sum((-1, -2)).mean(-1)
    return distance


def pick_reference(
    src_mean: Tensor,
    src_var: Tensor,
    drv_mean: Tensor,
    drv_var: Tensor,
    use_covariance: bool = True,
) -> int:
    """The driving frame whose keypoint layout is most like the source's (argmin of
    `layout_distance`; the first such frame on a tie)."""
    return int(torch.argmin(layout_distance(src_mean, src_var, drv_mean, drv_var, use_covariance)))


def _gaussian_taps(sigma: float) -> list[tuple[int, float]]:
    """(offset, weight) of a gaussian of std `sigma` frames, offsets within SMOOTH_RADIUS sigma
    (weights that would underflow left out: a tiny sigma keeps only the centre)."""
    radius = max(1, math.ceil(SMOOTH_RADIUS * sigma))
    taps = [(o, math.exp(-0.5 * (o / sigma) ** 2)) for o in range(-radius, radius + 1)]
    return [(o, w) for o, w in taps if w >= _TINY_WEIGHT]


def _smooth(x: Tensor, taps: list[tuple[int, float]], linear: bool) -> Tensor:
    """Gaussian smoothing along dim 0 of x (T, ...), over the frames that exist.

    Each frame becomes x_t + a_t, where a_t is fitted to the differences x_(t+o) - x_t with
    the weights w_o: their weighted mean (`linear` False), or the intercept of a weighted
    straight line through them (`linear` True). Inside the track both are the same gaussian
    average (the offsets are symmetric); at the ends, where only one side exists, the mean
    is pulled toward the inside by a steady drift, the line is not. Positive weights (the
    mean) keep covariances positive definite. A constant track gives exact zeros in every
    difference, so it comes back bit for bit."""
    length = x.shape[0]
    shape = (-1,) + (1,) * (x.dim() - 1)  # per-frame sums broadcast over (...)
    y0, y1 = torch.zeros_like(x), torch.zeros_like(x)  # sum w d, sum w o d
    s0, s1, s2 = (torch.zeros(length, dtype=x.dtype, device=x.device) for _ in range(3))
    for offset, weight in taps:
        lo, hi = max(0, -offset), min(length, length - offset)  # t with t + offset in [0, T)
        if lo >= hi:
            continue
        diff = x[lo + offset : hi + offset] - x[lo:hi]
        y0[lo:hi] += weight * diff
        y1[lo:hi] += (weight * offset) * diff
        s0[lo:hi] += weight
        s1[lo:hi] += weight * offset
        s2[lo:hi] += weight * offset * offset
    if not linear:
        return x + y0 / s0.view(shape)
    det = s0 * s2 - s1 * s1  # > 0: every frame has a weighted neighbour (T >= 2)
    return x + (s2.view(shape) * y0 - s1.view(shape) * y1) / det.view(shape)


def smooth_track(mean: Tensor, var: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """Zero-phase gaussian smoothing of a keypoint track along time: mean (T, K, 2), var
    (T, K, 2, 2), `sigma` in frames -> the same shapes. sigma 0 returns the inputs.

    The filter is symmetric and applied to the whole track (no lag). Inside the track both
    are a gaussian average; at its ends the means follow a weighted straight line (a drift
    stays put) and the covariances a gaussian average over the frames that exist, which
    keeps them symmetric positive definite (positive weights, elementwise).
    """
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, numbers.Real)
        or not math.isfinite(sigma)
        or sigma < 0.0
    ):
        raise DonkeyError(f"smoothing sigma must be a number >= 0 (frames), got {brief(sigma)}")
    taps = _gaussian_taps(float(sigma)) if sigma > 0.0 else []
    if len(taps) < 2 or mean.shape[0] < 2:
        return mean, var
    return _smooth(mean, taps, linear=True), _smooth(var, taps, linear=False)


def relative_motion(
    src_mean: Tensor,
    src_var: Tensor,
    drv_mean: Tensor,
    drv_var: Tensor,
    reference: int,
    motion_scale: float = 1.0,
    adapt_scale: bool = False,
) -> tuple[Tensor, Tensor]:
    """Relative keypoints measured from driving frame `reference`, movement scaled by f =
    `motion_scale`: mean (T, K, 2), var (T, K, 2, 2).

    mu = mu_src + s f (mu_drv_t - mu_drv_ref); A = L_t L_ref^-1, A_f = I + f (A - I),
    Sigma = A_f Sigma_src A_f^T (a congruence: positive semidefinite for any f). Frames
    before the reference move relative to it as those after do. f = 1 is the movement of
    the driving, f = 0 the source's own keypoints at every frame; s is
    `runtime.motion.movement_scale` against the reference frame when `adapt_scale`, else 1.
    Reference 0 and f = 1 give `runtime.motion.relative_keypoints` bit for bit (the same
    operations); frame `reference` gets the source's mean exactly and its covariance up to
    float rounding (L_ref L_ref^-1 is the identity within an ulp, as in relative_keypoints).

    src_*: (1, K, ...); drv_*: (T, K, ...).
    """
    length = drv_mean.shape[0]
    if isinstance(reference, bool) or not isinstance(reference, numbers.Integral):
        raise DonkeyError(f"reference frame must be an integer, got {brief(reference)}")
    reference = int(reference)
    if not 0 <= reference < length:
        raise DonkeyError(f"reference frame must be in [0, {length - 1}], got {reference}")
    if (
        isinstance(motion_scale, bool)
        or not isinstance(motion_scale, numbers.Real)
        or not math.isfinite(motion_scale)
        or motion_scale < 0.0
    ):
        raise DonkeyError(f"motion scale must be a number >= 0, got {brief(motion_scale)}")
    ref_mean = drv_mean[reference : reference + 1]  # (1, K, 2)
    ref_var = drv_var[reference : reference + 1]  # (1, K, 2, 2)
    scale = movement_scale(src_mean[0], ref_mean[0]) if adapt_scale else 1.0
    mean = src_mean + (scale * motion_scale) * (drv_mean - ref_mean)  # (T, K, 2)
    change = cholesky_2x2(drv_var) @ inverse_2x2(cholesky_2x2(ref_var))  # (T, K, 2, 2)
    if motion_scale != 1.0:  # at 1 keep A itself: I + (A - I) is A only up to rounding
        eye = torch.eye(2, dtype=change.dtype, device=change.device)
        change = eye + motion_scale * (change - eye)
    var = change @ src_var @ change.transpose(-1, -2)  # (T, K, 2, 2)
    return mean, var
