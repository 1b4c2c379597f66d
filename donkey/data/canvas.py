"""The geometry of fitting a picture to the model's square, and of undoing it.

`data/frames.fit_frame` fits every frame to the model's S x S square in steps: a large frame
is box-reduced by an integer factor, a very elongated one is shrunk before `pad` (so its
square stays bounded), then it is padded, centre-cropped or stretched to a square and resized
(Lanczos) to S. `fit_steps` repeats that arithmetic without the pixels; `fit_box` says where
the picture lies in the square; `unfit_frames` brings the model's S x S result back to the
picture's shape at any output size (`output_shape` picks it from `--output-size`;
`to_output_size` does both). `add_source_detail` then adds the full-size source's detail,
warped by the dense motion, where it agrees with the result (benchmarks/output-size.md).

Coordinates are continuous, in pixels, with 0 at the top-left edge of the first pixel (PIL's
`resize(box=...)` convention): pixel i spans [i, i + 1).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from donkey.core import vocab
from donkey.core.vocab import FIT_MODES
from donkey.data.frames import PAD_SIDE_MAX, REDUCE_ABOVE, WHITE
from donkey.model.errors import DonkeyError, brief

# `--output-size N`: the output's long side, in pixels.
OUTPUT_SIZE_MIN, OUTPUT_SIZE_MAX = vocab.OUTPUT_SIDE_RANGE
# `--output-size source`: the source's own size, its long side capped at this by default.
SOURCE_CAP = vocab.OUTPUT_SIDE_CAP
OUTPUT_SPECS = vocab.OUTPUT_SIZES

Rect = tuple[float, float, float, float]  # (top, left, height, width)


@dataclass(frozen=True)
class FitSteps:
    """What `fit_frame` does to a (height, width) picture for a size x size model.

    `reduce`: the box-reduce factor (1: none); after it the picture is `ceil(side / reduce)`
    pixels on each side. `shape`: the picture's (h, w) after the reduce and, for pad, the
    shrink of very elongated pictures; the whole picture fills these pixels. `side`: the
    square cut or padded from `shape` before the final Lanczos resize to `size`. `top, left`:
    pad: where `shape` sits in that square; crop: the square's corner in `shape`.
    """

    height: int
    width: int
    size: int
    fit: str
    reduce: int
    shape: tuple[int, int]
    side: int
    top: int
    left: int


def fit_steps(height: int, width: int, size: int, fit: str) -> FitSteps:
    """The steps of `data/frames.fit_frame` (and `shrink_for_padding`, `fit_square`) for a
    picture of (height, width), as integers; the same expressions, so the same rounding."""
    _check_dims(height, width)
    _check_dims(size, size, "size")
    if fit not in FIT_MODES:
        raise DonkeyError(f"fit must be one of {', '.join(FIT_MODES)}, got {brief(fit)}")
    h, w = height, width
    factor = min(h, w) // (3 * size)
    if factor >= 2 and h * w > REDUCE_ABOVE:
        h, w = -(-h // factor), -(-w // factor)  # PIL's reduce rounds up
    else:
        factor = 1
    if fit == "pad":
        most = max(PAD_SIDE_MAX, 3 * size)
        if h != w and max(h, w) > most:
            scale = most / max(h, w)
            h, w = max(1, round(h * scale)), max(1, round(w * scale))
    if h == w or fit == "stretch":
        return FitSteps(height, width, size, fit, factor, (h, w), max(h, w), 0, 0)
    if fit == "pad":
        side = max(h, w)
        return FitSteps(
            height, width, size, fit, factor, (h, w), side, (side - h) // 2, (side - w) // 2
        )
    side = min(h, w)
    return FitSteps(
        height, width, size, fit, factor, (h, w), side, (h - side) // 2, (w - side) // 2
    )


@dataclass(frozen=True)
class FitBox:
    """How a (height, width) source was fitted to the model's size x size square with `fit`.

    `in_square` (top, left, height, width; model pixels) and `in_picture` (the same, in the
    source's pixels) are one region seen from both sides:
      pad:     in_square = where the picture lies in the square (the rest is padding);
               in_picture = the whole picture.
      crop:    in_square = the whole square; in_picture = the part of the picture it shows.
      stretch: both whole (a square picture: both whole for every fit).
    The numbers are exact: integer products divided once, so an edge that falls on a pixel
    boundary is an exact integer.
    """

    height: int
    width: int
    size: int
    fit: str
    in_square: Rect
    in_picture: Rect

    @property
    def shown_hw(self) -> tuple[float, float]:
        """The height and width, in source pixels, of the part of the picture the model sees."""
        return self.in_picture[2], self.in_picture[3]


def fit_box(height: int, width: int, size: int, fit: str) -> FitBox:
    """Where a (height, width) source lies in the model's size x size square after `fit`."""
    steps = fit_steps(height, width, size, fit)
    whole_square: Rect = (0, 0, size, size)
    whole_picture: Rect = (0, 0, height, width)
    h, w = steps.shape
    if steps.fit == "stretch" or h == w:
        return FitBox(height, width, size, fit, whole_square, whole_picture)
    if steps.fit == "pad":
        # The square of `side` pixels is resized to `size`: x -> x * size / side.
        side = steps.side
        square = (
            steps.top * size / side,
            steps.left * size / side,
            h * size / side,
            w * size / side,
        )
        return FitBox(height, width, size, fit, square, whole_picture)
    # crop: the square shows rows [top, top + side) and columns [left, left + side) of the
    # reduced picture; reduced pixel i covers source pixels [i * reduce, (i + 1) * reduce),
    # the last one what is left (PIL's reduce), so an edge at the reduced picture's end is
    # the source's end.
    f = steps.reduce

    def source_edge(x: int, full: int, reduced: int) -> int:
        return full if x >= reduced else x * f

    top = source_edge(steps.top, height, h)
    bottom = source_edge(steps.top + steps.side, height, h)
    left = source_edge(steps.left, width, w)
    right = source_edge(steps.left + steps.side, width, w)
    return FitBox(height, width, size, fit, whole_square, (top, left, bottom - top, right - left))


def parse_output_size(spec: object) -> str | int:
    """'model', 'source' or a long side N in [16, 4096] (an int, or a string of digits): the
    vocabulary's rule (core/vocab.py, which `--help` parses with), as a one-line DonkeyError."""
    if isinstance(spec, bool) or not isinstance(spec, (str, numbers.Integral)):
        spec_text = brief(spec)
    else:
        try:
            return vocab.parse_output_size(spec if isinstance(spec, str) else int(spec))
        except ValueError:
            spec_text = brief(spec)
    raise DonkeyError(
        f"--output-size must be model, source or a size in "
        f"[{OUTPUT_SIZE_MIN}, {OUTPUT_SIZE_MAX}], got {spec_text}"
    )


def output_shape(
    height: int, width: int, spec: str | int, cap: int = SOURCE_CAP, *, size: int | None = None
) -> tuple[int, int]:
    """(H_out, W_out) of the result for a (height, width) source.

    spec "model": the model's (size, size) square, as before `--output-size` (needs `size`);
    "source": the source's own size, its long side capped at `cap` (aspect ratio kept);
    N (or "N"): long side N, aspect ratio kept. A short side never goes below 1 pixel.
    """
    _check_dims(height, width)
    value = parse_output_size(spec)
    if isinstance(cap, bool) or not isinstance(cap, numbers.Integral) or cap < 1:
        raise DonkeyError(f"cap must be a positive integer, got {brief(cap)}")
    if value == "model":
        if size is None:
            raise DonkeyError("output_shape: --output-size model needs the model's size")
        _check_dims(size, size, "size")
        return int(size), int(size)
    long_side = max(height, width)
    if value == "source":
        if long_side <= cap:
            return int(height), int(width)
        value = int(cap)
    return _long_side(int(height), int(width), int(value))


def _long_side(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(height, width) scaled so that the longer side is `long_side`; the shorter one rounded
    half up (integers only, so 400 x 328 at 800 is 800 x 656 exactly)."""
    if height >= width:
        return long_side, max(1, (2 * width * long_side + height) // (2 * height))
    return max(1, (2 * height * long_side + width) // (2 * width)), long_side


def _check_dims(height: object, width: object, name: str = "height and width") -> None:
    for v in (height, width):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise DonkeyError(f"{name} must be positive integers, got {brief((height, width))}")


# Regions at least this many model pixels across lose their rim at a padded side (_span).
RIM_FROM = 16


def _span(start: float, length: float, n: int) -> tuple[np.ndarray, float, float]:
    """The pixels [floor(start), ceil(start + length)) of an axis of n pixels that hold the
    region, as indices, and the region's edges relative to the first index.

    Where the region borders padding, the pixels there are replaced by the nearest one further
    in: the pixel the edge cuts (part padding) and the first whole one, where the Lanczos
    resize that made the square rang on the sharp padding edge (a dark or light line, some 8%
    of the step, a model pixel wide). So neither the padding colour nor that line reaches the
    result's border. A side without padding (the square's own edge) is kept whole, and so is
    the rim of a region under RIM_FROM pixels (a thin strip would lose too much of itself)."""
    end = start + length
    lo = max(0, min(n - 1, math.floor(start)))
    hi = max(lo + 1, min(n, math.ceil(end)))
    index = np.arange(lo, hi)
    rim = 1 if length >= RIM_FROM else 0
    inner_lo = math.ceil(start) + (rim if start > 0 else 0)
    inner_hi = math.floor(end) - (rim if end < n else 0)
    if inner_hi <= inner_lo:  # too narrow for a rim: only the cut pixels
        inner_lo, inner_hi = math.ceil(start), math.floor(end)
    if inner_hi > inner_lo:
        index = np.clip(index, inner_lo, inner_hi - 1)
    else:  # narrower than one pixel: the pixel holding its middle
        index[:] = max(0, min(n - 1, math.floor((start + end) / 2)))
    return index, start - lo, end - lo


def _resize(frame: np.ndarray, out_hw: tuple[int, int], box: tuple[float, ...]) -> np.ndarray:
    """One (h, w, C) uint8 frame -> (out_h, out_w, C), Lanczos over `box` (left, top, right,
    bottom). RGBA is resized premultiplied (Pillow does it for RGBA), so the colour of
    transparent pixels does not bleed into the visible edge."""
    h, w = frame.shape[:2]
    box = (
        min(max(box[0], 0.0), w),
        min(max(box[1], 0.0), h),
        min(max(box[2], 0.0), w),
        min(max(box[3], 0.0), h),
    )
    image = Image.fromarray(np.ascontiguousarray(frame))
    if (h, w) == tuple(out_hw) and box == (0, 0, w, h):
        return np.asarray(image).copy()
    return np.asarray(image.resize((out_hw[1], out_hw[0]), Image.Resampling.LANCZOS, box=box))


def unfit_frames(
    frames: np.ndarray,
    box: FitBox,
    out_hw: tuple[int, int],
    background: tuple[int, int, int] = WHITE,
    under: np.ndarray | None = None,
) -> np.ndarray:
    """The model's (T, S, S, C) uint8 result (C = 3, or 4 with alpha) -> (T, H_out, W_out, C)
    in the source's shape, frame by frame (Lanczos).

    pad: the padding is cut off and the picture region resized to out_hw. stretch: the square
    is resized to out_hw. crop: the square shows only part of the picture; it is resized to
    that part's place in an out_hw frame, and the rest (the model never saw it) is `under`
    (an (H_out, W_out, C) frame, e.g. the source resized) or `background` (RGB) / transparent
    (RGBA). For crop without bands, ask for an output of `box.shown_hw`'s shape instead and
    pass a stretch-like whole box: `unfit_frames(frames, fit_box(h, w, S, "stretch"), ...)`.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] not in (3, 4) or frames.dtype != np.uint8:
        raise DonkeyError(
            f"unfit_frames: expected (T, S, S, 3 or 4) uint8 frames, got {frames.shape} {frames.dtype}"
        )
    t, s, s2, c = frames.shape
    if s != box.size or s2 != box.size:
        raise DonkeyError(
            f"unfit_frames: frames are {s}x{s2}, the box is for {box.size}x{box.size}"
        )
    _check_dims(*out_hw, "out_hw")
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    out = np.empty((t, out_h, out_w, c), dtype=np.uint8)
    if box.fit != "crop" or box.in_picture == (0, 0, box.height, box.width):
        top, left, height, width = box.in_square
        rows, y0, y1 = _span(top, height, s)
        cols, x0, x1 = _span(left, width, s)
        whole = len(rows) == s and len(cols) == s and (rows == np.arange(s)).all()
        whole = whole and (cols == np.arange(s)).all()
        for i in range(t):
            region = frames[i] if whole else frames[i][np.ix_(rows, cols)]
            out[i] = _resize(region, (out_h, out_w), (x0, y0, x1, y1))
        return out
    # crop: the shown part of the picture, in output pixels, rounded to whole pixels; the
    # square's box is widened or narrowed to match, so nothing is stretched by the rounding.
    p_top, p_left, p_h, p_w = box.in_picture
    sy, sx = out_h / box.height, out_w / box.width
    oy0, oy1 = round(p_top * sy), round((p_top + p_h) * sy)
    ox0, ox1 = round(p_left * sx), round((p_left + p_w) * sx)
    oy1, ox1 = max(oy1, oy0 + 1), max(ox1, ox0 + 1)
    ky, kx = s / (p_h * sy), s / (p_w * sx)  # model pixels per output pixel
    src = (
        (ox0 - p_left * sx) * kx,
        (oy0 - p_top * sy) * ky,
        (ox1 - p_left * sx) * kx,
        (oy1 - p_top * sy) * ky,
    )
    if under is not None:
        under = np.asarray(under)
        if under.shape != (out_h, out_w, c) or under.dtype != np.uint8:
            raise DonkeyError(
                f"unfit_frames: under must be ({out_h}, {out_w}, {c}) uint8, got {under.shape}"
            )
        out[:] = under
    else:
        out[:] = np.asarray(background + (255,) if c == 4 else background, dtype=np.uint8)
        if c == 4:
            out[..., 3] = 0
    for i in range(t):
        out[i, oy0:oy1, ox0:ox1] = _resize(frames[i], (oy1 - oy0, ox1 - ox0), src)
    return out


def to_output_size(
    frames: np.ndarray, box: FitBox, spec: str | int, cap: int = SOURCE_CAP
) -> np.ndarray:
    """The model's (T, S, S, C) result at `--output-size` `spec`, in one call.

    "model": the frames as they are (the square, as before). "source" or N: pad and stretch
    give the source's shape (unfit_frames); crop gives the part of the picture the model saw
    (a square, at that part's size in the source, capped), with no bands of what it did not.
    """
    value = parse_output_size(spec)
    if value == "model":
        return np.asarray(frames)
    if box.fit == "crop":
        shown_h, shown_w = (max(1, round(v)) for v in box.shown_hw)
        out_hw = output_shape(shown_h, shown_w, value, cap)
        whole = FitBox(
            shown_h, shown_w, box.size, "stretch", box.in_square, (0, 0, shown_h, shown_w)
        )
        return unfit_frames(frames, whole, out_hw)
    return unfit_frames(frames, box, output_shape(box.height, box.width, value, cap))


# add_source_detail: 8-bit levels of disagreement between the warped source (through a model
# size round trip) and the model's result at which the source's detail is left out entirely
# (chosen on other pairs than benchmarks/output-size.md reports: 12, 24, 48, 96 tried).
GUIDE_TAU = 48.0


def add_source_detail(
    base: np.ndarray,
    source: np.ndarray,
    grid: torch.Tensor,
    box: FitBox,
    tau: float = GUIDE_TAU,
    background: tuple[int, int, int] = WHITE,
) -> np.ndarray:
    """The result brought to size (`base`, (T, H, W, 3) uint8, e.g. from unfit_frames) plus
    the detail the model's size could not hold, taken from the source at that size.

    `source`: (H, W, 3) uint8, the picture the model square's region `box.in_square` shows,
    at the output size (the source resized to (H, W); for crop, the part shown). `grid`: the
    dense motion's sampling grids (T, h, w, 2) for these frames. Each output pixel samples the
    grid (bilinear), so the full-size source is warped as the model warped its small copy; its
    detail (itself minus its own round trip through the model's size) is added where that
    round trip agrees with `base` (weight 1 - |difference| / tau, clipped), so the model's
    result stands wherever the warp is wrong (occlusions, limbs it redrew).
    See benchmarks/output-size.md for what it gains and costs."""
    base = np.asarray(base)
    t, h, w, _ = base.shape
    if source.shape != (h, w, 3) or grid.ndim != 4 or grid.shape[0] != t:
        raise DonkeyError(
            f"add_source_detail: expected a ({h}, {w}, 3) source and ({t}, h, w, 2) grids, "
            f"got {source.shape} and {tuple(grid.shape)}"
        )
    top, left, height, width = box.in_square
    s = box.size
    # Output pixel centres in the model square, as grid_sample's (align_corners) coordinates.
    my = top + (torch.arange(h, dtype=torch.float32) + 0.5) * height / h
    mx = left + (torch.arange(w, dtype=torch.float32) + 0.5) * width / w
    ny, nx = (my - 0.5) * 2 / (s - 1) - 1, (mx - 0.5) * 2 / (s - 1) - 1
    query = torch.stack(torch.meshgrid(nx, ny, indexing="xy"), dim=-1)[None]  # (1, H, W, 2)
    gh, gw = int(grid.shape[1]), int(grid.shape[2])
    ident_y = torch.linspace(-1.0, 1.0, gh)
    ident_x = torch.linspace(-1.0, 1.0, gw)
    identity = torch.stack(torch.meshgrid(ident_x, ident_y, indexing="xy"), dim=-1)
    bg = torch.tensor(background, dtype=torch.float32).view(1, 3, 1, 1)
    picture = torch.from_numpy(np.ascontiguousarray(source)).permute(2, 0, 1)[None].float() - bg
    low_hw = (max(1, round(height)), max(1, round(width)))
    out = np.empty_like(base)
    for i in range(t):  # a frame at a time: float copies of a large frame add up
        displacement = (grid[i : i + 1].float().cpu() - identity).permute(0, 3, 1, 2)
        moved = F.grid_sample(
            displacement, query, mode="bilinear", padding_mode="border", align_corners=True
        ).permute(0, 2, 3, 1)
        target = query + moved  # where in the model square each output pixel comes from
        # Back to the output picture's pixels, then to its own grid_sample coordinates.
        ty = ((target[..., 1] + 1) * (s - 1) / 2 + 0.5 - top) * h / height - 0.5
        tx = ((target[..., 0] + 1) * (s - 1) / 2 + 0.5 - left) * w / width - 0.5
        where = torch.stack([tx * 2 / max(w - 1, 1) - 1, ty * 2 / max(h - 1, 1) - 1], dim=-1)
        warped = F.grid_sample(
            picture, where, mode="bilinear", padding_mode="zeros", align_corners=True
        )
        sharp = (warped + bg)[0].permute(1, 2, 0).clamp(0, 255).numpy()
        small = Image.fromarray(np.round(sharp).astype(np.uint8)).resize(
            (low_hw[1], low_hw[0]), Image.Resampling.LANCZOS
        )
        low = np.asarray(small.resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32)
        frame = base[i].astype(np.float32)
        weight = np.clip(1.0 - np.abs(low - frame).mean(axis=-1, keepdims=True) / tau, 0, 1)
        out[i] = np.clip(np.round(frame + weight * (sharp - low)), 0, 255).astype(np.uint8)
    return out
