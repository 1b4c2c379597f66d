"""Checks `donkey animate` makes before loading a model: things that would otherwise fail, or
silently give a useless result, only after the whole clip was rendered.

Standard library and Pillow only (imported where used): a refusal here costs no PyTorch import.
Warnings go through `warn(message)`; the command line prints them as `warning:` lines."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from donkey.core.vocab import FFMPEG_SUFFIXES, OUTPUT_SUFFIXES
from donkey.model.errors import DonkeyError

Warn = Callable[[str], None]


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one existing file (links and relative spellings included)."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def is_frame_folder(path: Path) -> bool:
    """A folder of still frames is one driving video; a folder of videos is a batch."""
    try:
        files = [p for p in path.iterdir() if p.is_file()]
    except OSError as exc:
        raise DonkeyError(f"{path}: cannot list the folder ({exc.strerror or exc})") from None
    has_videos = any(p.suffix.lower() in FFMPEG_SUFFIXES | {".gif"} for p in files)
    return bool(files) and not has_videos


def check_paths(source: Path, driving: Path, output: Path | None) -> None:
    """Missing inputs and an output format no writer has, refused before PyTorch loads (the
    readers and writers say the same later)."""
    for path in (source, driving):
        if not path.exists():
            raise DonkeyError(f"{path}: no such file")
    for path, role in ((source, "source"), (driving, "driving")):
        # The output is written to a temporary file and renamed over its path: naming an input
        # there replaced that input with the result.
        if output is not None and same_file(output, path):
            raise DonkeyError(f"{output}: is the {role} input; give the output another name")
    if output is not None and output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DonkeyError(
            f"{output}: unsupported output format '{output.suffix.lower() or '(none)'}' "
            "(use .gif, .mp4 or .png)"
        )


def check_ffmpeg_for(paths: list[Path], write: Path | None = None) -> None:
    """ffmpeg must run when `write` is a video, or when an input file is one."""
    from donkey.data.ffmpeg import find_ffmpeg

    if write is not None and write.suffix.lower() == ".mp4":  # the one video output format
        find_ffmpeg(f"writing {write}")
    for path in paths:
        if path.is_file() and path.suffix.lower() in FFMPEG_SUFFIXES:
            find_ffmpeg(f"reading {path}")
            return


def check_writable(path: Path) -> None:
    """Creates and removes a hidden file where `path` (a file or folder to be written) will go,
    in its nearest existing folder: os.access says yes to root on read-only or pseudo file
    systems (/proc), and the write would fail only after the rendering."""
    folder = path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return  # check_folder_location names a path that runs through a file
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".donkey-write-check-"):
            pass
    except OSError as exc:
        raise DonkeyError(f"{path}: cannot write there ({folder}: {exc.strerror or exc})") from None


def _source_frames(path: Path) -> int | None:
    """Frames of an animated image (GIF, APNG, WebP) from its headers; None if unknown."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:  # noqa: BLE001 - the real reader reports what is wrong with the file
        return None


def warn_swapped(
    source: Path,
    driving: Path,
    warn: Warn,
    driving_frames: int | None = None,
    source_frames: int | None = None,
) -> int | None:
    """A warning when the inputs look swapped (a still driving and an animated source), or
    when the driving clip has a single frame: the result would be one still frame.

    `driving_frames`, `source_frames`: the counts when the files were read already (the
    driving's decoded frames, the source's declared ones); else read from their headers.
    Returns the count (None if unknown): the progress bar's total."""
    from donkey.data.probe import all_strips, frame_count

    if not driving.exists() or not source.is_file():
        return None  # the readers name the missing file
    if driving_frames is None:
        driving_frames = frame_count(driving)
    if driving.is_dir() and all_strips(driving):
        warn(
            f"{driving}: every image in it looks like a PNG strip (width a multiple of the "
            "height), but a folder of images is one driving video, one image per frame. To "
            "animate each strip on its own, list them in a --pair-list CSV (batch mode)",
        )
    if source_frames is None:
        source_frames = _source_frames(source)
    if driving_frames == 1 and source_frames and source_frames > 1:
        warn(
            f"{driving} has 1 frame and {source} has {source_frames}: the inputs look swapped. "
            "The source image comes first, the driving video second: "
            f"donkey animate {driving} {source} -o OUTPUT",
        )
    elif driving_frames == 1:
        warn(
            f"{driving} has only 1 frame, so the result is one still frame: the second input "
            "should be a driving video (GIF, MP4, PNG strip or a folder of frames)",
        )
    elif source_frames and source_frames > 1:
        warn(
            f"{source} is an animation ({source_frames} frames); only its first frame is the "
            "source image",
        )
    return driving_frames


def _some(paths: list[Path], detail: dict[Path, str] | None = None, shown: int = 3) -> str:
    """'a.gif, b.gif, c.gif and 4 more': a summary line names a few files, never all of them."""
    names = [p.name + (f": {detail[p]}" if detail else "") for p in paths[:shown]]
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(names) + more


def warn_swapped_batch(
    pairs: list[tuple[Path, Path]],
    sources: Path,
    drivings: Path,
    pair_list: Path | None,
    warn: Warn,
) -> dict[Path, int | None]:
    """`warn_swapped` for a batch: each file checked once, one summary line per kind of problem
    (however many files have it), naming a few of them.

    Returns every driving's frame count read from its headers (None if unknown)."""
    from donkey.data.probe import frame_count

    counts = {d: frame_count(d) for d in dict.fromkeys(d for _, d in pairs)}
    source_frames = {s: _source_frames(s) for s in dict.fromkeys(s for s, _ in pairs)}
    still = [d for d, n in counts.items() if n == 1]
    animated = [s for s, n in source_frames.items() if n and n > 1]
    if pairs and all(counts[d] == 1 and (source_frames[s] or 0) > 1 for s, d in pairs):
        meant = (
            f"list the source image first in each line of {pair_list}"
            if pair_list is not None
            else f"donkey animate {drivings} {sources} -o OUTPUT"
        )
        warn(
            f"every driving clip has 1 frame ({_some(still)}) and every source is an animation "
            f"({_some(animated)}): the inputs look swapped. The source images come first, the "
            f"driving videos second: {meant}",
        )
        return counts
    if still:
        warn(
            f"{len(still)} of {len(counts)} driving clips have only 1 frame, so their results "
            f"are still frames: {_some(still)}; a driving should be a video (GIF, MP4, PNG "
            "strip or a folder of frames)",
        )
    if animated:
        frames = {s: f"{source_frames[s]} frames" for s in animated}
        warn(
            f"{len(animated)} of {len(source_frames)} sources are animations "
            f"({_some(animated, frames)}); only their first frame is the source image",
        )
    return counts
