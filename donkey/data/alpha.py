"""A transparent source's alpha: read and fitted like its colours, moved with the motion.

The model sees colours only (a transparent source is composited on a background colour by
`data/frames.to_rgb8`). Its alpha channel is fitted to the model's square exactly as the
colours are (`fit_alpha`: the steps of `data/canvas.fit_steps`, padding transparent), warped
frame by frame with the dense motion's sampling grid (`warp_alpha`), and joined to the
predicted colours (`join_alpha`), which also takes the background back out of the edge
pixels the source shared with it and, for a source whose colours stay clear of the
background's (`keyable`), keys out what the model painted in the background's colour.
"""

from __future__ import annotations

import numbers
import re
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from donkey.core.vocab import FIT_MODES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from donkey.data.budget import Budget, MediaError
from donkey.data.canvas import fit_steps
from donkey.data.frames import WHITE
from donkey.model.errors import DonkeyError, brief
from donkey.model.geometry import make_coordinate_grid, resize_grid

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# How warp_alpha brings the dense motion's grid (h x h) to the alpha's size: "nearest" as the
# generator does (model/geometry.resize_grid), or "bilinear" (the default: smooth edges, and
# IoU 0.8605 against 0.8593 for nearest in benchmarks/output-size.md).
GRID_UPSAMPLING = ("nearest", "bilinear")


def has_alpha(image: Image.Image) -> bool:
    """Whether the image has transparency: the modes `data/frames.to_rgb8` composites."""
    return image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)


def _first_file(folder: Path) -> Path:
    """A folder of frames: its first image, in the readers' natural order (f2 before f10)."""

    def key(path: Path) -> list:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]

    files = sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=key,
    )
    if not files:
        raise MediaError(folder, "folder holds no image frames")
    return files[0]


def read_alpha(
    path: str | Path, size: int, fit: str = "pad", budget: Budget | None = None
) -> np.ndarray | None:
    """The source's alpha, fitted to the model's square like its colours: (size, size)
    float32 in [0, 1]; padding is transparent (0). None when the source has no transparency
    (RGB, gray, palette without a transparent index, video) or is wholly opaque, so that its
    result stays RGB. The first frame of an animation, as the source readers take.

    The frame's size is checked against `budget` from the header, before decoding."""
    _check_size(size)
    if fit not in FIT_MODES:
        raise DonkeyError(f"fit must be one of {', '.join(FIT_MODES)}, got {brief(fit)}")
    path = Path(path)
    if path.is_dir():
        path = _first_file(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return None
    if not path.is_file():
        raise MediaError(path, "no such file" if not path.exists() else "not a regular file")
    budget = budget or Budget.from_env()
    try:
        with open(path, "rb") as handle, Image.open(handle) as image:
            budget.check(path, 1, *image.size)  # the header's size, nothing decoded yet
            if not has_alpha(image):
                return None
            image.load()
            budget.check(path, 1, *image.size)  # a GIF frame may grow its canvas
            if image.mode in ("RGBA", "LA"):
                channel = image.getchannel("A")
            else:
                channel = image.convert("RGBA").getchannel("A")
            alpha = np.asarray(channel)
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(path, f"refused by Pillow's decompression-bomb guard ({exc})") from None
    except UnidentifiedImageError:
        raise MediaError(
            path, "not an image or video this tool can read (corrupt or unknown format)"
        ) from None
    except (OSError, EOFError, SyntaxError, ValueError, struct.error, MemoryError) as exc:
        raise MediaError(path, f"corrupt file ({str(exc)[:160] or type(exc).__name__})") from None
    if alpha.min() == 255:
        return None
    return fit_alpha(alpha, size, fit)


def fit_alpha(alpha: np.ndarray, size: int, fit: str = "pad") -> np.ndarray:
    """(H, W) alpha (uint8 0..255, or float in [0, 1]) -> (size, size) float32 in [0, 1],
    through the steps `data/frames.fit_frame` takes for the colours (canvas.fit_steps):
    box-reduce, shrink, pad with 0 (transparent) / crop / stretch, Lanczos."""
    alpha = np.asarray(alpha)
    if alpha.ndim != 2:
        raise DonkeyError(f"fit_alpha: expected an (H, W) alpha, got shape {alpha.shape}")
    plane = alpha.astype(np.float32) / (255.0 if alpha.dtype == np.uint8 else 1.0)
    steps = fit_steps(plane.shape[0], plane.shape[1], size, fit)
    image = Image.fromarray(plane, mode="F")
    if steps.reduce > 1:
        image = image.reduce(steps.reduce)
    h, w = steps.shape
    if image.size != (w, h):  # pad's shrink of a very elongated picture
        image = image.resize((w, h), Image.Resampling.LANCZOS)
    plane = np.asarray(image)
    if h != w and fit == "pad":
        square = np.zeros((steps.side, steps.side), np.float32)
        square[steps.top : steps.top + h, steps.left : steps.left + w] = plane
        plane = square
    elif h != w and fit == "crop":
        plane = plane[steps.top : steps.top + steps.side, steps.left : steps.left + steps.side]
    image = Image.fromarray(np.ascontiguousarray(plane), mode="F")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)


def upsample_grid(grid: Tensor, side: int, mode: str = "nearest") -> Tensor:
    """A (B, h, w, 2) sampling grid -> (B, side, side, 2). "nearest": as the generator
    (geometry.resize_grid: the displacement resized nearest, needs side a multiple of h);
    "bilinear": the displacement resized bilinearly (corners aligned, as the coordinates)."""
    if mode not in GRID_UPSAMPLING:
        raise DonkeyError(
            f"grid upsampling must be one of {', '.join(GRID_UPSAMPLING)}, got {brief(mode)}"
        )
    if int(grid.shape[1]) == side and int(grid.shape[2]) == side:
        return grid
    if mode == "nearest":
        return resize_grid(grid, side)
    displacement = grid - make_coordinate_grid(grid.shape[1], grid.shape[2], grid)
    resized = F.interpolate(
        displacement.permute(0, 3, 1, 2), size=(side, side), mode="bilinear", align_corners=True
    ).permute(0, 2, 3, 1)
    return resized + make_coordinate_grid(side, side, grid)


def warp_alpha(alpha: np.ndarray | Tensor, grid: Tensor, upsample: str = "bilinear") -> Tensor:
    """The source's alpha, (S, S) or (1, 1, S, S) in [0, 1], moved with the dense motion's
    grid (B, h, w, 2) (coordinates in [-1, 1], x first) -> (B, S, S) float32 on the grid's
    device. Bilinear sampling, zeros outside (transparent), align_corners=True, as
    model/geometry.warp moves the source in the generator. The grid is upsampled to S first
    (`upsample`, see upsample_grid); S may be above the model's size (a full-size alpha)."""
    if not isinstance(grid, Tensor) or grid.ndim != 4 or grid.shape[-1] != 2:
        raise DonkeyError(f"warp_alpha: expected a (B, h, w, 2) grid tensor, got {brief(grid)}")
    plane = torch.as_tensor(np.asarray(alpha) if not isinstance(alpha, Tensor) else alpha)
    plane = plane.to(device=grid.device, dtype=torch.float32)
    if plane.ndim == 2:
        plane = plane[None, None]
    if plane.ndim != 4 or plane.shape[:2] != (1, 1) or plane.shape[2] != plane.shape[3]:
        raise DonkeyError(
            f"warp_alpha: expected an (S, S) or (1, 1, S, S) alpha, got {tuple(plane.shape)}"
        )
    side = int(plane.shape[-1])
    batch = int(grid.shape[0])
    full = upsample_grid(grid.float(), side, upsample)
    warped = F.grid_sample(
        plane.expand(batch, -1, -1, -1),
        full,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )
    return warped[:, 0].clamp_(0.0, 1.0)


# Keying (join_alpha's `key`): a predicted colour this close to the background (largest
# channel difference, 8-bit levels) is background, alpha 0; from KEY_FAR on it keeps its alpha.
KEY_NEAR, KEY_FAR = 12.0, 40.0


def keyable(
    source: np.ndarray, alpha: np.ndarray, background: tuple[int, int, int] = WHITE
) -> bool:
    """Whether join_alpha may key out the background for this source: (S, S, 3) uint8 colours
    as the model saw them (composited on `background`) and their (S, S) alpha. True when
    under 1% of its opaque pixels (alpha >= 0.99) lie within 2 x KEY_FAR of the background
    colour: then a predicted pixel of the background's colour is background, not creature."""
    opaque = np.asarray(alpha) >= 0.99
    if not opaque.any():
        return False
    distance = np.abs(source[opaque].astype(np.float32) - np.asarray(background, np.float32))
    return float((distance.max(axis=-1) < 2 * KEY_FAR).mean()) < 0.01


def join_alpha(
    frames: np.ndarray,
    alpha: np.ndarray,
    background: tuple[int, int, int] = WHITE,
    key: bool = False,
) -> np.ndarray:
    """Predicted colours (T, H, W, 3) uint8 and alpha (T, H, W) in [0, 1] -> (T, H, W, 4).

    The source was composited on `background` before the model saw it, so an edge pixel's
    colour is part background: c = (C - (1 - a) * background) / a takes it back out (no light
    fringe around a sprite shown on a dark page). Pixels under 1/255 alpha keep C.

    `key` (see `keyable`): where the model painted the background's colour (it fills in
    behind moved limbs with it) while the warped alpha says opaque, the alpha goes to 0,
    smoothly between KEY_FAR and KEY_NEAR levels from the background colour."""
    frames = np.asarray(frames)
    alpha = np.asarray(alpha, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3 or alpha.shape != frames.shape[:3]:
        raise DonkeyError(
            f"join_alpha: expected (T, H, W, 3) frames and (T, H, W) alpha, got "
            f"{frames.shape} and {alpha.shape}"
        )
    if not isinstance(background, tuple) or len(background) != 3:
        raise DonkeyError(
            f"join_alpha: background must be an (r, g, b) tuple, got {brief(background)}"
        )
    out = np.empty(frames.shape[:3] + (4,), dtype=np.uint8)
    bg = np.asarray(background, dtype=np.float32)
    for i in range(frames.shape[0]):  # a frame at a time: float copies cost 16 bytes a pixel
        colour = frames[i].astype(np.float32)
        a = alpha[i][..., None]
        if key:
            distance = np.abs(colour - bg).max(axis=-1, keepdims=True)
            a = a * np.clip((distance - KEY_NEAR) / (KEY_FAR - KEY_NEAR), 0.0, 1.0)
        clean = (colour - (1.0 - a) * bg) / np.maximum(a, 1.0 / 255.0)
        colour = np.where(a >= 1.0 / 255.0, clean, colour)
        out[i, ..., :3] = np.clip(np.round(colour), 0, 255).astype(np.uint8)
        out[i, ..., 3] = np.clip(np.round(a[..., 0] * 255.0), 0, 255).astype(np.uint8)
    return out


def _check_size(size: object) -> None:
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise DonkeyError(f"size must be a positive integer, got {brief(size)}")
