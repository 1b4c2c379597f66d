"""Media readers: GIF, APNG, MP4 (and other ffmpeg video), PNG/JPG strips, frame folders, images.

Every reader returns 8-bit RGB frames (T, H, W, 3) at their native size. Unreadable input
raises MediaError, whose message names the file and the cause in one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from donkey.data.frames import WHITE, prepare_frames, to_rgb8
from donkey.model.errors import DonkeyError

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}
IMAGE_SUFFIXES = {".gif", ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES
DEFAULT_FPS = 10.0


class MediaError(DonkeyError):
    """A file that cannot be read or written as media."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{path}: {cause}")


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
    if path.is_file() and path.stat().st_size == 0:
        raise MediaError(path, "empty file")


def _natural_key(path: Path) -> list:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", path.name)]


def _read_pil(
    path: Path, background: tuple[int, int, int], strip: bool
) -> tuple[np.ndarray, float]:
    try:
        with Image.open(path) as image:
            n_frames = getattr(image, "n_frames", 1)
            duration = image.info.get("duration") or 0
            if n_frames > 1:
                frames = [to_rgb8(frame, background) for frame in ImageSequence.Iterator(image)]
            else:
                image.load()
                frames = [to_rgb8(image, background)]
    except (UnidentifiedImageError, OSError, EOFError, SyntaxError, ValueError) as exc:
        cause = _reason(exc)
        if isinstance(exc, UnidentifiedImageError):
            cause = "not an image or video this tool can read (corrupt or unknown format)"
        elif "truncated" in cause.lower() or isinstance(exc, EOFError):
            cause = f"truncated or corrupt file ({cause})"
        raise MediaError(path, cause) from None
    if not frames:
        raise MediaError(path, "contains no frames")
    if len({f.shape for f in frames}) > 1:
        raise MediaError(path, "frames have different sizes")
    array = np.stack(frames)
    fps = 1000.0 / duration if duration else DEFAULT_FPS
    if strip and array.shape[0] == 1:
        array = split_strip(array[0])
    return array, fps


def split_strip(image: np.ndarray) -> np.ndarray:
    """(H, n*H, 3) strip of square frames side by side -> (n, H, H, 3); other shapes: 1 frame."""
    h, w, _ = image.shape
    if w <= h or w % h:
        return image[None]
    n = w // h
    return image.reshape(h, n, h, 3).transpose(1, 0, 2, 3).copy()


def _read_ffmpeg(path: Path) -> tuple[np.ndarray, float]:
    import imageio_ffmpeg

    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(buf, dtype=np.uint8).reshape(h, w, 3) for buf in reader]
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as exc:
        raise MediaError(path, f"cannot decode video ({_reason(exc)})") from None
    if not frames:
        raise MediaError(path, "video contains no frames")
    return np.stack(frames), float(meta.get("fps") or DEFAULT_FPS)


def _read_folder(path: Path, background: tuple[int, int, int]) -> tuple[np.ndarray, float]:
    files = sorted(
        (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
        key=_natural_key,
    )
    if not files:
        raise MediaError(path, "folder holds no image frames")
    frames = [_read_pil(f, background, strip=False)[0][0] for f in files]
    if len({f.shape for f in frames}) > 1:
        raise MediaError(path, "frames in the folder have different sizes")
    return np.stack(frames), DEFAULT_FPS


def read_frames(
    path: str | Path, background: tuple[int, int, int] = WHITE, strip: bool = True
) -> Clip:
    """Reads every frame at native size as 8-bit RGB.

    A still PNG/JPG whose width is a multiple (>= 2) of its height is a strip of square
    frames when `strip` is true.
    """
    path = Path(path)
    if path.is_dir():
        frames, fps = _read_folder(path, background)
        return Clip(frames, fps, path)
    _check_file(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        frames, fps = _read_ffmpeg(path)
    else:
        frames, fps = _read_pil(path, background, strip)
    return Clip(frames, fps, path)


def read_video(
    path: str | Path, size: int, fit: str = "pad", background: tuple[int, int, int] = WHITE
) -> Clip:
    """A driving video at the model size: (T, size, size, 3) uint8."""
    clip = read_frames(path, background, strip=True)
    clip.frames = prepare_frames(clip.frames, size, fit, background)
    return clip


def read_image(
    path: str | Path, size: int, fit: str = "pad", background: tuple[int, int, int] = WHITE
) -> np.ndarray:
    """A source image at the model size: (size, size, 3) uint8 (first frame of an animation)."""
    clip = read_frames(path, background, strip=False)
    return prepare_frames(clip.frames[:1], size, fit, background)[0]
