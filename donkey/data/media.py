"""Media readers: GIF, APNG, MP4 (and other ffmpeg video), PNG/JPG strips, frame folders, images.

Every read is held to a budget (frames x height x width, frames, pixels per frame) checked
from the file's headers before anything is decoded, and again while decoding, since headers
can lie. `read_video` and `read_image` decode frame by frame and fit each frame to the model
size at once, so their memory follows the model size, not the file's claims; `read_frames`
keeps native sizes (its memory is the budget's pixel count x 3 bytes at most).

Unreadable, truncated or over-budget input raises MediaError, whose message names the file
and the cause in one line. A truncated file is refused (never animated in part).
"""

from __future__ import annotations

import itertools
import mmap
import numbers
import os
import re
import struct
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from donkey.core.vocab import IMAGE_SUFFIXES, MEDIA_SUFFIXES, VIDEO_SUFFIXES  # noqa: F401
from donkey.data.budget import Budget, MediaError, _mega, parse_count  # noqa: F401 (re-exported)
from donkey.data.colours import as_rgb
from donkey.data.frames import (
    FIT_MODES,
    REDUCE_ABOVE,
    WHITE,
    fit_frame,
    to_rgb8,
)
from donkey.model.errors import DonkeyError, brief

DEFAULT_FPS = 10.0

# Reads are held to our own budget (checked from the headers first), which stays below
# Pillow's warning threshold unless a user raises it; then Pillow's warning would only repeat
# what the user asked for. Its hard limit (DecompressionBombError) still applies.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: float
    path: Path


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MediaError(path, "no such file")
    if not path.is_file():
        raise MediaError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file")


def _natural_key(path: Path) -> list:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", path.name)]


# ---------------------------------------------------------------- headers, read before decoding


@dataclass
class Header:
    width: int
    height: int
    frames: int  # frames the structure holds completely
    truncated: bool = False  # the file ends inside a frame


def _gif_header(path: Path, data: bytes | mmap.mmap) -> Header:
    """Walks the GIF block structure (no LZW decoding): screen size, frames, truncation.

    Pillow draws every frame on a canvas of the logical screen, grown to hold any frame
    that reaches past it, so that canvas is what one frame costs.
    """
    n = len(data)
    if n < 13:
        raise MediaError(path, "truncated or corrupt GIF (the header is cut off)")
    width, height, packed = struct.unpack_from("<HHB", data, 6)
    pos = 13
    if packed & 0x80:
        pos += 3 << ((packed & 7) + 1)
    frames = 0
    right, bottom = width, height

    def skip_sub_blocks(p: int) -> int:
        while p < n:
            size = data[p]
            p += 1 + size
            if size == 0:
                return p
        return -1  # ran out inside the sub-blocks

    while True:
        if pos >= n:
            # No trailer: lenient, as many writers forget it; every frame seen was complete.
            return Header(right, bottom, frames)
        kind = data[pos]
        if kind == 0x3B:
            return Header(right, bottom, frames)
        if kind == 0x21:
            pos = skip_sub_blocks(pos + 2)
            if pos < 0:
                return Header(right, bottom, frames, truncated=True)
            continue
        if kind != 0x2C:
            if frames:
                # Garbage after complete frames: Pillow stops here too.
                return Header(right, bottom, frames)
            raise MediaError(path, f"corrupt GIF (unknown block 0x{kind:02x} before any frame)")
        if pos + 10 > n:
            return Header(right, bottom, frames, truncated=True)
        left, top, w, h, fpacked = struct.unpack_from("<HHHHB", data, pos + 1)
        right, bottom = max(right, left + w), max(bottom, top + h)
        pos += 10
        if fpacked & 0x80:
            pos += 3 << ((fpacked & 7) + 1)
        pos = skip_sub_blocks(pos + 1)  # + LZW minimum code size
        if pos < 0:
            return Header(right, bottom, frames, truncated=True)
        frames += 1


def _png_header(path: Path, data: bytes | mmap.mmap) -> Header:
    """IHDR size, APNG frame count (acTL), and whether the chunks reach IEND."""
    n = len(data)
    if n < 33:
        raise MediaError(path, "truncated or corrupt PNG (the header is cut off)")
    if data[12:16] != b"IHDR":
        raise MediaError(path, "corrupt PNG (no IHDR header chunk)")
    width, height = struct.unpack_from(">II", data, 16)
    frames, pos = 1, 8
    while pos + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"acTL" and pos + 12 <= n:
            frames = max(1, struct.unpack_from(">I", data, pos + 8)[0])
        pos += 12 + length
        if kind == b"IEND":
            return Header(width, height, frames)
    # A still image cut off has no complete frame; an APNG's complete frames are not counted.
    return Header(width, height, 0 if frames == 1 else frames, truncated=True)


def _read_header(path: Path, handle: BinaryIO) -> Header | None:
    """The GIF or PNG header from the open file's bytes; None for other formats."""
    magic = handle.read(8)
    handle.seek(0)
    if not (magic.startswith(b"GIF8") or magic == b"\x89PNG\r\n\x1a\n"):
        return None
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _gif_header(path, data) if magic.startswith(b"GIF") else _png_header(path, data)


# ---------------------------------------------------------------- frame sources


class _Frames:
    """Native RGB frames of one file, decoded one at a time, with the budget enforced."""

    def __init__(self, path: Path, budget: Budget, first_only: bool) -> None:
        self.path, self.budget, self.first_only = path, budget, first_only
        self.fps = DEFAULT_FPS
        self.count = 0
        self.shrink_to: int | None = None  # large frames may be box-reduced to >= this side
        self.declared: int | None = None  # frames the file says it has (animated images)
        self.native: tuple[int, int] | None = None  # (height, width) of the first frame
        self.alpha: np.ndarray | None = None  # a source image's alpha (H, W) uint8, if any
        self._pixels = 0

    def _account(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        self.native = self.native or (h, w)
        self.count += 1
        self._pixels += h * w
        # A header that understated the file: stop as soon as the real content is over.
        if self.count > self.budget.max_frames or self._pixels > self.budget.max_pixels:
            self.budget.check(self.path, self.count, w, h)
            raise MediaError(
                self.path, f"decoded content exceeds the read budget ({_mega(self._pixels)})"
            )


def _pil_frames(
    path: Path, background: tuple[int, int, int], source: _Frames
) -> Iterator[np.ndarray]:
    # One open for the header checks and the decoding: the file is read once, and cannot be
    # swapped for another between the two.
    with open(path, "rb") as handle:
        yield from _pil_decode(path, handle, background, source)


def _pil_decode(
    path: Path, handle: BinaryIO, background: tuple[int, int, int], source: _Frames
) -> Iterator[np.ndarray]:
    budget = source.budget
    header = _read_header(path, handle)
    if header is not None:
        if header.frames == 0:
            cause = (
                "truncated: the file ends inside its first frame"
                if header.truncated
                else "contains no frames"
            )
            raise MediaError(path, cause)
        if header.truncated and not source.first_only:
            raise MediaError(
                path,
                f"truncated: the file ends inside frame {header.frames + 1} "
                f"({header.frames} complete frame{'s' if header.frames != 1 else ''} before it)",
            )
        budget.check(path, 1 if source.first_only else header.frames, header.width, header.height)
    try:
        with Image.open(handle) as image:
            n_frames = getattr(image, "n_frames", 1) if header is None else header.frames
            source.declared = n_frames
            if header is None:
                budget.check(path, 1 if source.first_only else n_frames, *image.size)
            duration = image.info.get("duration") or 0
            source.fps = 1000.0 / duration if duration else DEFAULT_FPS
            if source.first_only or n_frames <= 1:
                image.load()
                source.native = source.native or (image.height, image.width)
                shrunk = _shrink(image, source.shrink_to)
                if source.first_only:
                    source.alpha = _alpha_plane(shrunk)
                frame = to_rgb8(shrunk, background)
                source._account(frame)
                yield frame
                return
            for item in ImageSequence.Iterator(image):
                # Multi-page formats (TIFF) give each page its own size, known before decoding.
                budget.check(path, min(n_frames, budget.max_frames), *item.size)
                frame = to_rgb8(_shrink(item, source.shrink_to), background)
                source._account(frame)
                yield frame
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError(
            path, f"refused by Pillow's decompression-bomb guard ({_reason(exc)})"
        ) from None
    except (
        UnidentifiedImageError,
        OSError,
        EOFError,
        SyntaxError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        struct.error,
        MemoryError,
        ZeroDivisionError,
    ) as exc:
        # Pillow's decoders raise many types on hostile bytes; each is one bad file.
        cause = _reason(exc)
        if isinstance(exc, UnidentifiedImageError):
            cause = "not an image or video this tool can read (corrupt or unknown format)"
        elif isinstance(exc, MemoryError):
            cause = "out of memory while decoding"
        elif "truncated" in cause.lower() or isinstance(exc, EOFError):
            cause = f"truncated or corrupt file ({cause}; {source.count} frames read)"
        else:
            cause = f"corrupt file ({cause})"
        raise MediaError(path, cause) from None


def _ffmpeg_frames(path: Path, source: _Frames) -> Iterator[np.ndarray]:
    import imageio_ffmpeg

    reader = None
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        w, h = (int(v) for v in meta["size"])
        fps = float(meta.get("fps") or 0) or DEFAULT_FPS
        duration = float(meta.get("duration") or 0)
        # An estimate (fps x duration) from the container; decoding enforces the exact count.
        estimate = 1 if source.first_only else max(1, int(duration * fps))
        source.budget.check(path, min(estimate, source.budget.max_frames), w, h)
        if not source.first_only:
            source.budget.check(path, estimate, w, h)
        source.fps = fps
        for buf in reader:
            if len(buf) != w * h * 3:
                raise MediaError(
                    path, f"cannot decode video (frame {source.count + 1} is incomplete)"
                )
            frame = np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3)
            source._account(frame)
            yield frame
            if source.first_only:
                return
    except MediaError:
        raise
    except (
        OSError,
        RuntimeError,
        StopIteration,
        KeyError,
        ValueError,
        TypeError,
        AssertionError,
    ) as exc:
        raise MediaError(path, f"cannot decode video ({_reason(exc)})") from None
    finally:
        if reader is not None:
            reader.close()  # stops ffmpeg when we leave early


def _folder_frames(
    path: Path, background: tuple[int, int, int], source: _Frames
) -> Iterator[np.ndarray]:
    files = sorted(
        (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=_natural_key,
    )
    if not files:
        raise MediaError(path, "folder holds no image frames")
    if source.first_only:
        files = files[:1]
    elif len(files) > source.budget.max_frames:
        source.budget.check(path, len(files), 1, 1)
    shape = None
    for f in files:
        _check_file(f)
        inner = _Frames(f, source.budget, first_only=True)
        inner.shrink_to = source.shrink_to
        frame = next(_pil_frames(f, background, inner))
        if shape is not None and frame.shape != shape:
            raise MediaError(path, "frames in the folder have different sizes")
        shape = frame.shape
        source._account(frame)
        yield frame


def _native_frames(
    path: Path, background: tuple[int, int, int], budget: Budget, first_only: bool
) -> tuple[_Frames, Iterator[np.ndarray]]:
    source = _Frames(path, budget, first_only)
    if path.is_dir():
        return source, _folder_frames(path, background, source)
    _check_file(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return source, _ffmpeg_frames(path, source)
    return source, _pil_frames(path, background, source)


def split_strip(image: np.ndarray) -> np.ndarray:
    """(H, n*H, 3) strip of square frames side by side -> (n, H, H, 3); other shapes: 1 frame."""
    h, w, _ = image.shape
    if w <= h or w % h:
        return image[None]
    n = w // h
    return image.reshape(h, n, h, 3).transpose(1, 0, 2, 3).copy()


def _stack(path: Path, frames: Iterator[np.ndarray], prepare: Callable | None) -> list[np.ndarray]:
    """Prepares each frame as it arrives (so only one native frame is alive at a time)."""
    out: list[np.ndarray] = []
    shape = None
    for frame in frames:
        if shape is not None and frame.shape != shape:
            raise MediaError(path, "frames have different sizes")
        shape = frame.shape
        out.append(frame if prepare is None else prepare(frame[None])[0])
    if not out:
        raise MediaError(path, "contains no frames")
    return out


_NO_REDUCE_MODES = ("I;16", "I;16B", "I;16L", "I", "F")


def _shrink(image: Image.Image, side: int | None) -> Image.Image:
    """A large frame box-averaged by an integer factor, keeping both sides >= `side`.

    Done on the decoded image before any numpy copy, so a 48-megapixel photo costs one
    full-size buffer, not four. Strips are left whole (their split needs the exact width).
    """
    w, h = image.size
    factor = min(w, h) // side if side else 0
    if factor < 2 or w * h <= REDUCE_ABOVE or (w > h and w % h == 0):
        return image
    if image.mode in _NO_REDUCE_MODES:
        return image
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        alpha = image.mode in ("PA", "RGBa", "La") or (
            image.mode == "P" and "transparency" in image.info
        )
        image = image.convert("RGBA" if alpha else "RGB")
    return image.reduce(factor)


def _fitter(size: int, fit: str, background: tuple[int, int, int]) -> Callable:
    """(T, H, W, 3) -> (T, size, size, 3) through the one frame fitter (data.frames.fit_frame)."""

    def prepare(frames: np.ndarray) -> np.ndarray:
        return np.stack([fit_frame(frame, size, fit, background) for frame in frames])

    return prepare


def _is_strip(frame: np.ndarray) -> bool:
    h, w = frame.shape[:2]
    return w > h and w % h == 0


def read_frames(
    path: str | Path,
    background: tuple[int, int, int] = WHITE,
    strip: bool = True,
    budget: Budget | None = None,
) -> Clip:
    """Reads every frame at native size as 8-bit RGB.

    A still PNG/JPG whose width is a multiple (>= 2) of its height is a strip of square
    frames when `strip` is true.
    """
    path = Path(path)
    source, frames = _native_frames(path, background, budget or Budget.from_env(), False)
    array = np.stack(_stack(path, frames, None))
    if strip and array.shape[0] == 1 and not path.is_dir():
        array = split_strip(array[0])
    return Clip(array, source.fps, path)


MAX_READ_SIZE = 1024  # `donkey eval --size`'s bound: models are at most 512


def _check_fit(fit: str, background: object) -> tuple[int, int, int]:
    """read_image/read_video's fit and background (the Python API passes them through)."""
    if fit not in FIT_MODES:
        raise DonkeyError(f"fit must be one of {', '.join(FIT_MODES)}, got {fit!r}")
    try:
        return as_rgb(background)
    except ValueError as exc:
        raise DonkeyError(f"background: {exc}") from None


def _check_size(size: int) -> None:
    if (
        isinstance(size, bool)
        or not isinstance(size, numbers.Integral)
        or not 1 <= size <= MAX_READ_SIZE
    ):
        raise DonkeyError(f"size must be an integer in [1, {MAX_READ_SIZE}], got {size!r}")


def read_video(
    path: str | Path,
    size: int,
    fit: str = "pad",
    background: tuple[int, int, int] = WHITE,
    budget: Budget | None = None,
) -> Clip:
    """A driving video at the model size: (T, size, size, 3) uint8, fitted frame by frame."""
    _check_path(path)
    _check_size(size)
    background = _check_fit(fit, background)
    path = Path(path)
    prepare = _fitter(size, fit, background)
    source, frames = _native_frames(path, background, budget or Budget.from_env(), False)
    source.shrink_to = 3 * size
    first = next(frames, None)
    if first is None:
        raise MediaError(path, "contains no frames")
    second = next(frames, None)
    if second is None:
        # One still image: a strip of square frames is split before fitting.
        still = split_strip(first) if _is_strip(first) and not path.is_dir() else first[None]
        if len(still) > source.budget.max_frames:
            source.budget.check(path, len(still), still.shape[2], still.shape[1])
        return Clip(prepare(still), source.fps, path)
    rest = _stack(path, itertools.chain([first, second], frames), prepare)
    return Clip(np.stack(rest), source.fps, path)


def _check_path(path: object) -> None:
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise DonkeyError(f"path: expected a file name, got {brief(path)}")


def read_image(
    path: str | Path,
    size: int,
    fit: str = "pad",
    background: tuple[int, int, int] = WHITE,
    budget: Budget | None = None,
) -> np.ndarray:
    """A source image at the model size: (size, size, 3) uint8 (first frame of an animation)."""
    return read_source(path, size, fit, background, budget).image


@dataclass
class SourceImage:
    """A source picture as the model sees it, and what the result needs of the original."""

    image: np.ndarray  # (S, S, 3) uint8: fitted to the model size, alpha on the background
    alpha: (
        np.ndarray | None
    )  # (S, S) float32 in [0, 1], fitted like `image` (padding 0); None: opaque
    height: int  # the picture's own size (its first frame's)
    width: int
    frames: int | None  # how many frames the file says it has (None: not said)
    # The picture itself (H', W', 3) uint8, alpha on the background: its detail goes into a
    # result larger than the model's size. Very large pictures come box-reduced (H' <= H).
    picture: np.ndarray | None = None


def _alpha_plane(image: Image.Image) -> np.ndarray | None:
    """The alpha channel (H, W) uint8 of a picture with transparency; None when it has none
    or every pixel is opaque."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return None
    alpha = np.asarray(image.convert("RGBA"))[..., 3]
    return None if alpha.min() == 255 else alpha.copy()


def read_source(
    path: str | Path,
    size: int,
    fit: str = "pad",
    background: tuple[int, int, int] = WHITE,
    budget: Budget | None = None,
) -> SourceImage:
    """`read_image`, with the picture's alpha fitted the same way (padding transparent), its
    own size, and how many frames the file says it has (an animated GIF/APNG/WebP given as a
    source: only its first is used). The file is opened once."""
    _check_path(path)
    _check_size(size)
    background = _check_fit(fit, background)
    path = Path(path)
    source, frames = _native_frames(path, background, budget or Budget.from_env(), True)
    source.shrink_to = 3 * size
    first = next(frames, None)
    if first is None:
        raise MediaError(path, "contains no frames")
    frames.close()  # the file is closed now, not when the generator is collected
    height, width = source.native or first.shape[:2]
    return _source_image(
        first, source.alpha, size, fit, background, source.declared, (height, width)
    )


def source_from_array(
    array: np.ndarray,
    size: int,
    fit: str = "pad",
    background: tuple[int, int, int] = WHITE,
) -> SourceImage:
    """`read_source` for a picture already in memory: (H, W, 3) RGB or (H, W, 4) RGBA uint8
    (the Python API)."""
    _check_size(size)
    background = _check_fit(fit, background)
    alpha = None
    if array.shape[-1] == 4:
        image = Image.fromarray(np.ascontiguousarray(array), mode="RGBA")
        alpha = _alpha_plane(image)
        array = to_rgb8(image, background)
    return _source_image(array, alpha, size, fit, background, 1, array.shape[:2])


def _source_image(
    picture: np.ndarray,
    alpha: np.ndarray | None,
    size: int,
    fit: str,
    background: tuple[int, int, int],
    frames: int | None,
    own: tuple[int, int],
) -> SourceImage:
    """The picture and its alpha (uint8 or None) fitted to the model size; the alpha goes as a
    gray picture through the same fitter, so padding is transparent (black) and it lines up
    with the colours exactly."""
    fitted = None
    if alpha is not None:
        plane = np.repeat(alpha[..., None], 3, axis=2)
        fitted = _fitter(size, fit, (0, 0, 0))(plane[None])[0, ..., 0].astype(np.float32) / 255.0
    image = _fitter(size, fit, background)(picture[None])[0]
    return SourceImage(image, fitted, own[0], own[1], frames, picture)
