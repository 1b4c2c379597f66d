"""Pairing GIFs by motion (Donkey-Net paper, section 4.2): affine keypoint fits, frame
resampling in both directions, and the filters that keep a pair.

Units: keypoints in [-1, 1]; a residual is the mean over keypoints of the squared error of
the least-squares affine map A [x, y, 1]^T = y' from one frame's keypoints to another's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairingParams:
    max_repeated: float = 0.25  # keep when 1 - unique/length <= this (both directions)
    alpha: float = 0.8  # weight of the unique fraction in the score
    threshold: float = 0.14  # keep when mean residual - alpha * unique fraction <= this
    tie_tolerance: float = 1e-4  # residuals within tolerance + relative x best count as
    tie_relative: float = 0.25  # the same pose (looping GIFs repeat poses once per cycle)
    # Reject when A's frames and B's matched frames differ by less than this (mean absolute
    # difference, pixels in [0, 1]): the same GIF twice teaches no transfer. MGIF holds such
    # copies (0.001-0.005); recoloured variants of one animation (0.009 and up) are kept.
    min_difference: float = 0.008


def _design(points: np.ndarray) -> np.ndarray:
    """(..., K, 2) -> (..., K, 3): homogeneous coordinates."""
    ones = np.ones(points.shape[:-1] + (1,), dtype=np.float64)
    return np.concatenate([points.astype(np.float64), ones], axis=-1)


def fit_affine(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares affine map of keypoints x (K, 2) onto y (K, 2).

    Returns the (2, 3) matrix M with y ~ M [x; 1] and the residual (mean squared error per
    keypoint, summed over x and y).
    """
    d = _design(x)
    solution, *_ = np.linalg.lstsq(d, y.astype(np.float64), rcond=None)  # (3, 2)
    err = d @ solution - y
    return solution.T, float((err**2).sum(axis=-1).mean())


def residual_projectors(x: np.ndarray) -> np.ndarray:
    """(T, K, 2) -> (T, K, K): I - D (D^T D)^+ D^T for each frame's design matrix D."""
    d = _design(x)  # (T, K, 3)
    k = d.shape[1]
    hat = d @ np.linalg.pinv(d)  # (T, K, K): projection onto the affine span
    return np.eye(k)[None] - hat


def residual_matrix(
    x: np.ndarray, y: np.ndarray, projectors: np.ndarray | None = None
) -> np.ndarray:
    """(Tx, Ty) residuals of the best affine map from each frame of x onto each frame of y."""
    r = residual_projectors(x) if projectors is None else projectors
    yy = y.astype(np.float64)
    k = yy.shape[1]
    # ||R_i y_j||^2 summed over both coordinates, R symmetric idempotent: y_j^T R_i y_j
    return np.einsum("ikl,jkc,jlc->ij", r, yy, yy) / k


@dataclass
class Resampling:
    b_for_a: list[int]  # for each frame of A, B's frame in the same pose
    a_for_b: list[int]
    residual: float  # mean residual of the chosen frames, both directions
    unique: float  # the smaller unique-frame fraction of the two directions
    repeated: float  # 1 - unique
    score: float  # residual - alpha * unique


def match_frames(residuals: np.ndarray, tolerance: float, relative: float = 0.0) -> np.ndarray:
    """For each target frame t (columns), the source frame (row) with the smallest residual.

    Looping GIFs show the same pose once per cycle; among such near-ties the frame that
    continues the previous match in time (cyclically) wins, so a periodic or time-shifted
    copy maps one to one instead of onto the first cycle only.
    """
    n_src, n_dst = residuals.shape
    out = np.empty(n_dst, dtype=np.int64)
    previous = None
    for t in range(n_dst):
        column = residuals[:, t]
        best = column.min()
        candidates = np.flatnonzero(column <= best * (1 + relative) + tolerance)
        if previous is None or len(candidates) == 1:
            choice = (
                int(candidates[np.argmin(column[candidates])])
                if previous is None
                else int(candidates[0])
            )
        else:
            wanted = (previous + 1) % n_src
            distance = np.minimum((candidates - wanted) % n_src, (wanted - candidates) % n_src)
            choice = int(candidates[np.argmin(distance)])
        out[t] = choice
        previous = choice
    return out


def resample(
    ka: np.ndarray,
    kb: np.ndarray,
    params: PairingParams,
    proj_a: np.ndarray | None = None,
    proj_b: np.ndarray | None = None,
) -> Resampling:
    """Resamples B to A's poses and A to B's: ka (Ta, K, 2), kb (Tb, K, 2)."""
    b_to_a = residual_matrix(kb, ka, proj_b)  # (Tb, Ta): fit B_j onto A_t
    a_to_b = residual_matrix(ka, kb, proj_a)  # (Ta, Tb)
    b_for_a = match_frames(b_to_a, params.tie_tolerance, params.tie_relative)
    a_for_b = match_frames(a_to_b, params.tie_tolerance, params.tie_relative)
    res_ab = b_to_a[b_for_a, np.arange(len(b_for_a))].mean()
    res_ba = a_to_b[a_for_b, np.arange(len(a_for_b))].mean()
    unique = min(
        len(set(b_for_a.tolist())) / len(b_for_a), len(set(a_for_b.tolist())) / len(a_for_b)
    )
    residual = float((res_ab + res_ba) / 2)
    return Resampling(
        b_for_a=[int(i) for i in b_for_a],
        a_for_b=[int(i) for i in a_for_b],
        residual=residual,
        unique=float(unique),
        repeated=float(1 - unique),
        score=float(residual - params.alpha * unique),
    )


def rejection_reason(r: Resampling, params: PairingParams) -> str | None:
    """None when the pair is kept, else which filter rejected it (with the numbers)."""
    if r.repeated > params.max_repeated + 1e-12:
        return f"repeated frames {r.repeated:.3f} > {params.max_repeated}"
    if r.score > params.threshold + 1e-12:
        return (
            f"score {r.score:.4f} (residual {r.residual:.4f} - {params.alpha} x unique "
            f"{r.unique:.3f}) > {params.threshold}"
        )
    return None


def matched_difference(frames_a: np.ndarray, frames_b: np.ndarray, b_for_a: list[int]) -> float:
    """Mean absolute difference (pixels in [0, 1]) of A's frames and B's frames matched to them.

    frames_a (Ta, H, W, 3) and frames_b (Tb, H, W, 3) are uint8 at the same size.
    """
    diff = np.abs(frames_a.astype(np.int16) - frames_b[np.asarray(b_for_a)].astype(np.int16))
    return float(diff.mean() / 255.0)


def motion_direction(keypoints: np.ndarray, min_shift: float = 0.02) -> str:
    """'left', 'right' or 'still' from keypoint motion.

    First the keypoint centroid's travel, as the median frame-to-frame step times the length
    (robust to the jump where a looping GIF wraps around); if it barely travels, the skew of
    the keypoints' horizontal velocity: a leg swings forward fast and steps back slowly.
    """
    centroid = keypoints[..., 0].mean(axis=1)  # (T,)
    steps = np.diff(centroid)
    if steps.size == 0:
        return "still"
    travel = float(np.median(steps)) * (len(centroid) - 1)
    if abs(travel) >= min_shift:
        return "right" if travel > 0 else "left"
    velocity = np.diff(keypoints[..., 0], axis=0)  # (T-1, K)
    centred = velocity - velocity.mean(axis=0, keepdims=True)
    skew = float((centred**3).mean())
    scale = float((centred**2).mean()) ** 1.5 + 1e-12
    if abs(skew / scale) < 0.1:
        return "still"
    return "right" if skew > 0 else "left"


def appearance_similarity(features: np.ndarray) -> np.ndarray:
    """(N, D) features -> (N, N) cosine similarity of mean-centred features.

    Centring matters: pooled ReLU features are all positive, and their plain cosine is above
    0.9 for almost any two images, which makes a threshold meaningless.
    """
    f = features.astype(np.float64)
    f = f - f.mean(axis=0, keepdims=True)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return f @ f.T
