"""Frame arrays: mode conversion to 8-bit RGB, fitting to a square, tensors.

Frames are numpy uint8 arrays (T, H, W, 3); tensors are float (T, 3, H, W) in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from donkey.core.vocab import FIT_MODES  # noqa: F401 (read here by the Python API)
from donkey.data.colours import parse_colour  # noqa: F401  (its old home; callers import it here)

WHITE = (255, 255, 255)
_BAND_PIXELS = 1 << 20
# The largest square `fit pad` builds at full resolution (50 MB of RGB) before resizing.
PAD_SIDE_MAX = 4096


def to_rgb8(image: Image.Image, background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """Any PIL mode (palette, gray, 16-bit, alpha, CMYK) -> (H, W, 3) uint8.

    Alpha is composited on `background`; 16-bit data keeps its top 8 bits.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        data = np.asarray(image)
        if image.mode == "F":
            gray = np.clip(data, 0.0, 1.0 if data.max() <= 1.0 else 255.0)
            scale = 255.0 if data.max() <= 1.0 else 1.0
            gray = (gray * scale).round().astype(np.uint8)
        else:
            top = 65535 if image.mode != "I" or data.max() > 255 else 255
            gray = np.round(data.astype(np.float64) * 255.0 / top).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    rgba = np.asarray(image.convert("RGBA"))
    bg = np.asarray(background, dtype=np.float32)
    out = np.empty(rgba.shape[:2] + (3,), dtype=np.uint8)
    # In bands of rows: float copies of a whole large frame would cost 16 bytes a pixel.
    rows = max(1, _BAND_PIXELS // max(rgba.shape[1], 1))
    for top in range(0, rgba.shape[0], rows):
        band = rgba[top : top + rows].astype(np.float32)
        alpha = band[..., 3:4] / 255.0
        mixed = band[..., :3] * alpha + bg * (1.0 - alpha)
        out[top : top + rows] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    return out


def fit_square(
    frames: np.ndarray, fit: str, background: tuple[int, int, int] = WHITE
) -> np.ndarray:
    """(T, H, W, 3) -> (T, S, S, 3): pad (centred, background colour), centre crop, or as is."""
    if fit not in FIT_MODES:
        raise ValueError(f"fit must be one of {', '.join(FIT_MODES)}, got {fit!r}")
    t, h, w, _ = frames.shape
    if h == w or fit == "stretch":
        return frames
    side = max(h, w) if fit == "pad" else min(h, w)
    if fit == "pad":
        out = np.empty((t, side, side, 3), dtype=np.uint8)
        out[:] = np.asarray(background, dtype=np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        out[:, top : top + h, left : left + w] = frames
        return out
    top, left = (h - side) // 2, (w - side) // 2
    return frames[:, top : top + side, left : left + side].copy()


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, size, size, 3) with antialiasing (Lanczos); no-op at the right size."""
    t, h, w, _ = frames.shape
    if h == size and w == size:
        return frames
    out = np.empty((t, size, size, 3), dtype=np.uint8)
    for i in range(t):
        out[i] = np.asarray(
            Image.fromarray(frames[i]).resize((size, size), Image.Resampling.LANCZOS)
        )
    return out


def shrink_for_padding(frames: np.ndarray, size: int) -> np.ndarray:
    """Frames whose padded square would exceed PAD_SIDE_MAX (and 3x `size`) are first resized,
    keeping their aspect ratio, so that it does not: a 1 x 60000 image would otherwise become a
    60000 x 60000 square (10 GB) before being resized to the model size."""
    _, h, w, _ = frames.shape
    most = max(PAD_SIDE_MAX, 3 * size)
    if h == w or max(h, w) <= most:
        return frames
    scale = most / max(h, w)
    shape = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack(
        [np.asarray(Image.fromarray(f).resize(shape, Image.Resampling.LANCZOS)) for f in frames]
    )


# Frames above this many pixels are box-averaged first; smaller ones are fitted exactly.
REDUCE_ABOVE = 4_000_000


def fit_frame(
    frame: np.ndarray, size: int, fit: str = "pad", background: tuple[int, int, int] = WHITE
) -> np.ndarray:
    """The one frame fitter: (H, W, 3) -> (size, size, 3), as every reader and the Python API
    fit frames. A large frame is first box-averaged by an integer factor (to >= 3x the model
    size), so padding and Lanczos work on a small copy; then squared (pad, crop or stretch) and
    resized."""
    h, w, _ = frame.shape
    factor = min(h, w) // (3 * size)
    if factor >= 2 and h * w > REDUCE_ABOVE:
        frame = np.asarray(Image.fromarray(frame).reduce(factor))
    frames = frame[None]
    if fit == "pad":
        frames = shrink_for_padding(frames, size)
    return resize_frames(fit_square(frames, fit, background), size)[0]


def prepare_frames(
    frames: np.ndarray, size: int, fit: str = "pad", background: tuple[int, int, int] = WHITE
) -> np.ndarray:
    """`fit_frame` on each of (T, H, W, 3); one frame at a time, so that at most one full-size
    square is held besides the input."""
    if fit not in FIT_MODES:
        raise ValueError(f"fit must be one of {', '.join(FIT_MODES)}, got {fit!r}")
    out = np.empty((frames.shape[0], size, size, 3), dtype=np.uint8)
    for i in range(frames.shape[0]):
        out[i] = fit_frame(frames[i], size, fit, background)
    return out


def frames_to_tensor(frames: np.ndarray) -> Tensor:
    """uint8 (T, H, W, 3) -> float32 (T, 3, H, W) in [0, 1]."""
    array = np.ascontiguousarray(frames)
    # ffmpeg's frames are read-only (torch.from_numpy warns on them); `image[None]` has a zero
    # stride, which makes PyTorch pick other convolution kernels than for the same frame in a
    # batch (results 1/255 apart): one layout for every caller.
    if not array.flags.writeable or 0 in array.strides:
        array = array.copy()
    return torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_frames(tensor: Tensor) -> np.ndarray:
    """float (T, 3, H, W) in [0, 1] -> uint8 (T, H, W, 3), rounded."""
    data = tensor.detach().float().clamp(0, 1).mul(255.0).round().byte()
    return data.permute(0, 2, 3, 1).cpu().numpy()
