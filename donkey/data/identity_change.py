"""Identity changes: one fixed warp and recolouring applied to every frame of a video.

A real video v and its changed copy I(v) move exactly alike frame by frame but differ in
shape and colour, which is what Donkey-Net's dual reconstruction needs from a pair
(docs/architecture.md, "Pairs manifest"; the pair's mappings are identities).

The change keeps the background: only the foreground is recoloured (from an alpha channel,
or from the pixels that differ from the background colour), the frame and the foreground
coverage are warped with one bilinear sampling grid, and the warped foreground is composited
on the background colour, which also fills what the warp uncovers.

Geometry is in pixels, (x, y) = (column, row). The parameters of `IdentityChange` are relative
to the foreground (its centre and half extents over the whole clip), so one change fits
animals of any size; `apply_identity` measures them on the clip it is given and shrinks the
warp about the centre when it would push the animal out of the frame.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import overload

import numpy as np
import torch
from torch import Tensor

from donkey.model.errors import DonkeyError

# A strong but plausible change at strength 1, chosen on a contact sheet of MGIF videos.
DEFAULT_STRENGTH = 1.0

# Foreground from colour alone: a pixel is background below LO (0..255, the largest channel
# difference to the background colour), foreground above HI, with a linear edge in between.
FOREGROUND_LO = 4.0
FOREGROUND_HI = 16.0
# The warped foreground stays this many pixels inside the frame (unless it touched an edge).
FRAME_MARGIN = 2
CHUNK_FRAMES = 32  # frames sampled at once (bounds memory on long clips)

# Ranges at strength 1; each drawn value is multiplied by the strength.
_LOG_SIZE = 0.1  # log of the area's square root: the animal grows or shrinks a little
_LOG_ASPECT = (0.08, 0.2)  # |half the log of width over height|, with a random sign
_SHEAR = 0.25
_ROTATION = math.radians(10.0)
_BUMPS = 4
_BUMP_SHIFT = 0.2  # of the mean half extent
_BUMP_RADIAL = 0.45
_HUE = (math.radians(60.0), math.radians(180.0))  # |rotation about the gray axis|
_LOG_SATURATION = 0.6
_LOG_GAMMA = 0.45
_TINT = (0.3, 0.6)  # how far the darkest pixels move toward the tint colour

Seed = int | Sequence[int] | np.random.Generator


@dataclass(frozen=True)
class Bump:
    """A gaussian displacement of the sampling grid, placed on the foreground.

    centre (cx, cy) and sigma are in half extents of the foreground from its centre; shift
    (sx, sy) is in mean half extents; radial > 0 samples farther out (the part shrinks),
    radial < 0 closer in (it swells)."""

    cx: float
    cy: float
    sigma: float
    sx: float
    sy: float
    radial: float


@dataclass(frozen=True)
class IdentityChange:
    """The parameters of one identity change; all zero amplitudes is the identity.

    Geometry: log scales along x and y, shear (x += shear * y), rotation (radians), all about
    the foreground's centre, then the bumps. Colour (foreground only, RGB in [0, 1]): rotation
    of the hue about the gray axis (radians; 2/3 pi is a cyclic channel permutation),
    saturation times exp(log_saturation), gamma exp(log_gamma) (0 and 1 stay put), then the
    dark pixels pulled toward `tint` by up to `tint_amount` (black silhouettes get a colour).
    """

    strength: float
    log_scale_x: float
    log_scale_y: float
    shear: float
    rotation: float
    bumps: tuple[Bump, ...]
    hue: float
    log_saturation: float
    log_gamma: float
    tint: tuple[float, float, float]
    tint_amount: float

    @classmethod
    def random(cls, rng_or_seed: Seed, strength: float = DEFAULT_STRENGTH) -> IdentityChange:
        """A change drawn from a generator or seed; strength in [0, 1] scales every amplitude.

        The same draws are made whatever the strength, so one seed at two strengths gives the
        same change, weaker or stronger."""
        if isinstance(strength, bool) or not isinstance(strength, (int, float)):
            raise DonkeyError(f"strength must be a number in [0, 1], got {strength!r}")
        if not 0.0 <= strength <= 1.0:
            raise DonkeyError(f"strength must be in [0, 1], got {strength!r}")
        rng = (
            rng_or_seed
            if isinstance(rng_or_seed, np.random.Generator)
            else np.random.default_rng(rng_or_seed)
        )
        s = float(strength)

        def signed(low: float, high: float) -> float:
            return float(rng.choice((-1.0, 1.0)) * rng.uniform(low, high))

        # Mostly a change of proportions (fatter, taller), a little of size.
        log_size, log_aspect = float(rng.uniform(-_LOG_SIZE, _LOG_SIZE)), signed(*_LOG_ASPECT)
        log_sx, log_sy = log_size + log_aspect, log_size - log_aspect
        shear = float(rng.uniform(-_SHEAR, _SHEAR))
        rotation = float(rng.uniform(-_ROTATION, _ROTATION))
        bumps = []
        for _ in range(_BUMPS):
            cx, cy = rng.uniform(-0.8, 0.8, size=2)
            sigma = rng.uniform(0.3, 0.6)
            sx, sy = rng.uniform(-_BUMP_SHIFT, _BUMP_SHIFT, size=2)
            radial = rng.uniform(-_BUMP_RADIAL, _BUMP_RADIAL)
            bumps.append(
                Bump(
                    float(cx),
                    float(cy),
                    float(sigma),
                    s * float(sx),
                    s * float(sy),
                    s * float(radial),
                )
            )
        hue = signed(*_HUE)
        log_saturation = float(rng.uniform(-_LOG_SATURATION, _LOG_SATURATION))
        log_gamma = float(rng.uniform(-_LOG_GAMMA, _LOG_GAMMA))
        tint = colorsys.hsv_to_rgb(float(rng.uniform()), 0.8, 0.85)
        tint_amount = float(rng.uniform(*_TINT))
        return cls(
            strength=s,
            log_scale_x=s * log_sx,
            log_scale_y=s * log_sy,
            shear=s * shear,
            rotation=s * rotation,
            bumps=tuple(bumps),
            hue=s * hue,
            log_saturation=s * log_saturation,
            log_gamma=s * log_gamma,
            tint=tuple(float(c) for c in tint),
            tint_amount=s * tint_amount,
        )

    @property
    def is_identity(self) -> bool:
        amplitudes = [
            getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("strength", "bumps", "tint")
        ]
        amplitudes += [v for b in self.bumps for v in (b.sx, b.sy, b.radial)]
        return all(v == 0.0 for v in amplitudes)


# ---------------------------------------------------------------- foreground


def foreground_mask(
    frames: np.ndarray, background: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) float32 coverage in [0, 1], from the colour difference
    to the background (largest channel), with a soft edge between FOREGROUND_LO and _HI."""
    bg = np.asarray(background, dtype=np.int16)
    diff = np.abs(frames.astype(np.int16) - bg).max(axis=-1).astype(np.float32)  # (T, H, W)
    return np.clip((diff - FOREGROUND_LO) / (FOREGROUND_HI - FOREGROUND_LO), 0.0, 1.0)


@dataclass(frozen=True)
class _Extent:
    centre: tuple[float, float]  # (x, y) pixels: the coverage-weighted centroid over the clip
    half: tuple[float, float]  # half width and height: sqrt(3) x the weighted deviations
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (inclusive) of the union


def _extent(coverage: np.ndarray) -> _Extent:
    """Where the foreground is over the whole clip; coverage (T, H, W)."""
    _, h, w = coverage.shape
    mean = coverage.mean(0)  # (H, W)
    union = coverage.max(0) > 0.0  # (H, W): every pixel that will be drawn at all
    total = float(mean.sum())
    if total <= 0.0:
        return _Extent(((w - 1) / 2, (h - 1) / 2), (w / 4, h / 4), (0, 0, w - 1, h - 1))
    cx = float((mean.sum(0) * np.arange(w)).sum() / total)
    cy = float((mean.sum(1) * np.arange(h)).sum() / total)
    # From moments, not the bounding box: faint specks far from the animal barely count.
    # (A uniform box of half width a has deviation a / sqrt(3).)
    var_x = float((mean.sum(0) * (np.arange(w) - cx) ** 2).sum() / total)
    var_y = float((mean.sum(1) * (np.arange(h) - cy) ** 2).sum() / total)
    half = (max(math.sqrt(3 * var_x), 2.0), max(math.sqrt(3 * var_y), 2.0))
    cols, rows = np.flatnonzero(union.any(0)), np.flatnonzero(union.any(1))
    x0, x1, y0, y1 = int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])
    return _Extent((cx, cy), half, (x0, y0, x1, y1))


# ---------------------------------------------------------------- geometry


def _affine_inverse(change: IdentityChange) -> np.ndarray:
    """(2, 2) inverse of rotation @ shear @ scale: output offsets -> input offsets."""
    c, s = math.cos(change.rotation), math.sin(change.rotation)
    rotation = np.array([[c, -s], [s, c]])
    shear = np.array([[1.0, change.shear], [0.0, 1.0]])
    scale = np.diag([math.exp(change.log_scale_x), math.exp(change.log_scale_y)])
    # Positive scales, a shear and a rotation: the determinant is positive, nothing flips.
    return np.linalg.inv(rotation @ shear @ scale)


def _source_points(
    change: IdentityChange, extent: _Extent, points: np.ndarray, shrink: float = 1.0
) -> np.ndarray:
    """Where each output point samples the input; points (..., 2) pixels -> (..., 2) pixels.

    `shrink` < 1 scales the whole change down about the centre (the output is that much
    smaller), to keep the foreground in the frame."""
    centre = np.asarray(extent.centre)
    hx, hy = extent.half
    mean_half = (hx + hy) / 2
    p = centre + (points - centre) / shrink  # (..., 2)
    displacement = (p - centre) @ _affine_inverse(change).T  # (..., 2)
    for bump in change.bumps:
        offset = p - (centre + (bump.cx * hx, bump.cy * hy))  # (..., 2)
        sigma = bump.sigma * mean_half
        weight = np.exp(-(offset**2).sum(-1, keepdims=True) / (2 * sigma**2))  # (..., 1)
        shift = np.array([bump.sx, bump.sy]) * mean_half
        displacement += weight * (shift + bump.radial * offset)
    return centre + displacement


def _pixel_grid(h: int, w: int) -> np.ndarray:
    """(H, W, 2) pixel coordinates (x, y) of every output pixel."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([xs, ys], axis=-1)


def _normalised(points: np.ndarray, h: int, w: int) -> Tensor:
    """(H, W, 2) pixels -> grid_sample's [-1, 1] (align_corners=True: -1 and 1 are the
    centres of the first and last pixels)."""
    scale = np.array([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    return torch.from_numpy(points * scale - 1.0)


def _sample(images: np.ndarray, grid: Tensor) -> np.ndarray:
    """images (T, C, H, W) float64 sampled bilinearly at grid (H, W, 2); zeros outside."""
    out = []
    for start in range(0, images.shape[0], CHUNK_FRAMES):
        chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + CHUNK_FRAMES]))
        batch = grid.unsqueeze(0).expand(chunk.shape[0], -1, -1, -1)  # (t, H, W, 2)
        sampled = torch.nn.functional.grid_sample(
            chunk, batch, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        out.append(sampled.numpy())
    return np.concatenate(out)


def _fit(change: IdentityChange, extent: _Extent, union: np.ndarray) -> Tensor:
    """The (H, W, 2) normalised sampling grid, shrunk about the centre when the warped
    union of the foreground (H, W) would leave the frame: it stays FRAME_MARGIN pixels inside
    (or as close to the edge as the original came); an edge the original already reaches cuts
    the animal off as before, so it is not a limit.

    The warped union is measured on a canvas reaching half a frame past every side, so what
    the frame would cut off counts; shrinking by s scales that picture by s about the centre."""
    h, w = union.shape
    pad = max(h, w) // 2
    canvas = _pixel_grid(h + 2 * pad, w + 2 * pad) - pad  # (H + 2 pad, W + 2 pad, 2)
    x0, y0, x1, y1 = extent.box
    lo_x = -math.inf if x0 == 0 else min(x0, FRAME_MARGIN)
    lo_y = -math.inf if y0 == 0 else min(y0, FRAME_MARGIN)
    hi_x = math.inf if x1 == w - 1 else max(x1, w - 1 - FRAME_MARGIN)
    hi_y = math.inf if y1 == h - 1 else max(y1, h - 1 - FRAME_MARGIN)
    cx, cy = extent.centre
    shrink = 1.0
    for _ in range(4):  # measured in whole pixels: shrink a pixel more than needed, then check
        grid = _normalised(_source_points(change, extent, canvas, shrink), h, w)
        # Any coverage at all, so the pixels that bilinear sampling spreads an edge over count.
        warped = _sample(union[None, None], grid)[0, 0] > 1e-9  # (H + 2 pad, W + 2 pad)
        if not warped.any():
            break
        cols, rows = np.flatnonzero(warped.any(0)) - pad, np.flatnonzero(warped.any(1)) - pad
        sides = [  # (distance from the centre allowed, reached)
            (cx - lo_x, cx - float(cols[0])),
            (hi_x - cx, float(cols[-1]) - cx),
            (cy - lo_y, cy - float(rows[0])),
            (hi_y - cy, float(rows[-1]) - cy),
        ]
        over = [allowed / (reached + 1.0) for allowed, reached in sides if reached > allowed]
        if not over:
            break
        shrink *= max(min(over), 0.5)
    return _normalised(_source_points(change, extent, _pixel_grid(h, w), shrink), h, w)


# ---------------------------------------------------------------- colour


def _hue_rotation(angle: float) -> np.ndarray:
    """(3, 3) rotation of RGB about the gray axis (Rodrigues); 2/3 pi permutes channels."""
    k = np.full(3, 1.0 / math.sqrt(3.0))
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return (
        math.cos(angle) * np.eye(3)
        + math.sin(angle) * cross
        + (1.0 - math.cos(angle)) * np.outer(k, k)
    )


def recolour(rgb: np.ndarray, change: IdentityChange) -> np.ndarray:
    """rgb (..., 3) float64 in [0, 1] -> the changed colours (..., 3) in [0, 1]. Grays stay
    gray through the hue and saturation steps; white stays white throughout."""
    x = rgb @ _hue_rotation(change.hue).T
    mean = x.mean(-1, keepdims=True)  # (..., 1)
    x = np.clip(mean + math.exp(change.log_saturation) * (x - mean), 0.0, 1.0)
    x = x ** math.exp(change.log_gamma)
    darkness = (1.0 - x.mean(-1, keepdims=True)) ** 2  # (..., 1)
    x = x + change.tint_amount * darkness * (np.asarray(change.tint) - x)
    return np.clip(x, 0.0, 1.0)


# ---------------------------------------------------------------- the change


@overload
def apply_identity(
    frames: np.ndarray,
    change: IdentityChange,
    alpha: None = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray: ...


@overload
def apply_identity(
    frames: np.ndarray,
    change: IdentityChange,
    alpha: np.ndarray,
    background: tuple[int, int, int] = (255, 255, 255),
) -> tuple[np.ndarray, np.ndarray]: ...


def apply_identity(
    frames: np.ndarray,
    change: IdentityChange,
    alpha: np.ndarray | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The same warp and recolouring on every frame: (T, H, W, 3) uint8 -> (T, H, W, 3) uint8,
    and with `alpha` (T, H, W) uint8 also the changed alpha.

    Without alpha the foreground is what differs from `background` (`foreground_mask`); the
    output is the warped, recoloured foreground composited on `background`, so pixels within
    FOREGROUND_LO of the background colour become exactly the background. With alpha the
    output is composited on `background` too. A change with zero amplitudes (strength 0)
    returns copies of the input. Deterministic: the same input and change give the same bytes.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not frames.size:
        raise DonkeyError(f"frames must be (T, H, W, 3) uint8, got {frames.dtype} {frames.shape}")
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.shape != frames.shape[:3] or alpha.dtype != np.uint8:
            raise DonkeyError(
                f"alpha must be (T, H, W) = {frames.shape[:3]} uint8, got {alpha.dtype} "
                f"{alpha.shape}"
            )
    if len(background) != 3 or not all(
        isinstance(c, (int, np.integer)) and 0 <= c <= 255 for c in background
    ):
        raise DonkeyError(f"background must be three integers in [0, 255], got {background!r}")
    if change.is_identity:
        return frames.copy() if alpha is None else (frames.copy(), alpha.copy())

    coverage = (
        foreground_mask(frames, background).astype(np.float64) if alpha is None else alpha / 255.0
    )  # (T, H, W)
    extent = _extent(coverage)
    grid = _fit(change, extent, (coverage.max(0) > 0.0).astype(np.float64))  # (H, W, 2)

    bg = np.asarray(background, dtype=np.float64) / 255.0  # (3,)
    rgb = frames / 255.0  # (T, H, W, 3) float64
    m = coverage[..., None]  # (T, H, W, 1)
    changed = rgb + m * (recolour(rgb, change) - rgb)
    # Premultiplied over the background: warped zeros (uncovered pixels) are background.
    stack = np.concatenate([m * (changed - bg), m], axis=-1).transpose(0, 3, 1, 2)
    warped = _sample(stack, grid)  # (T, 4, H, W)
    out = bg + warped[:, :3].transpose(0, 2, 3, 1)  # (T, H, W, 3)
    out_frames = np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
    if alpha is None:
        return out_frames
    out_alpha = np.clip(np.round(warped[:, 3] * 255.0), 0, 255).astype(np.uint8)  # (T, H, W)
    return out_frames, out_alpha
