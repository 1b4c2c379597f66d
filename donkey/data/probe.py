"""Frame counts read cheaply (headers, not pixels), to weigh work before it is done.

A count is only an estimate for balancing: a file that cannot be probed gives None, and the
real reader (`donkey.data.media`) reports what is wrong with it when its turn comes.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from donkey.data.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES


def frame_count(path: str | Path) -> int | None:
    """Frames a driving video will have when read (GIF/APNG/WebP frames, strip length, frame
    folder size, video duration x fps); None when the file cannot be probed."""
    path = Path(path)
    try:
        if path.is_dir():
            count = sum(
                1 for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            return count or None
        if not path.is_file():
            return None  # a FIFO or device would block here; the readers refuse it by name
        if path.suffix.lower() in VIDEO_SUFFIXES:
            return _video_frames(path)
        with Image.open(path) as image:
            # n_frames walks the frame headers and skips the compressed pixel data.
            frames = int(getattr(image, "n_frames", 1))
            width, height = image.size
        if frames == 1 and height > 0 and width > height and width % height == 0:
            return width // height  # a strip of square frames
        return frames
    except Exception:  # noqa: BLE001 - any unreadable file is only "weight unknown" here
        return None


def _video_frames(path: Path) -> int | None:
    import imageio_ffmpeg

    # The reader's first item is ffmpeg's header summary; closing it stops ffmpeg before
    # any frame is decoded.
    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
    finally:
        reader.close()
    duration, fps = float(meta.get("duration") or 0), float(meta.get("fps") or 0)
    if duration <= 0 or fps <= 0:
        return None
    return max(1, round(duration * fps))


def all_strips(folder: Path, most: int = 16) -> bool:
    """True when the folder's first `most` images are all strips (width a whole multiple of
    the height): a frame folder that may have been meant as a folder of driving strips."""
    try:
        images = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )[:most]
        if not images:
            return False
        for path in images:
            with Image.open(path) as image:
                width, height = image.size
            if not (height > 0 and width > height and width % height == 0):
                return False
        return True
    except Exception:  # noqa: BLE001 - unreadable frames are the reader's to report
        return False
