"""Which ffmpeg video files are read and written with, checked before any work.

imageio-ffmpeg (a dependency) runs the binary named by $IMAGEIO_FFMPEG_EXE if set, else the
one its wheel bundles, else an `ffmpeg` on PATH. It does not test the variable's binary, so a
wrong IMAGEIO_FFMPEG_EXE, or a platform without a bundled binary and no ffmpeg installed, only
failed when the first frame was written: after the whole clip had been rendered.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from donkey.model.errors import DonkeyError

HOW_TO_GET = (
    "pip install imageio-ffmpeg (its wheels bundle ffmpeg), or install ffmpeg "
    "(apt-get install ffmpeg, brew install ffmpeg) and put it on PATH"
)


def find_ffmpeg(purpose: str) -> str:
    """The ffmpeg executable, run once (`-version`) to be sure; DonkeyError naming ffmpeg,
    what needed it (`purpose`, e.g. "writing out.mp4") and how to get one otherwise."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise DonkeyError(
            f"{purpose} needs ffmpeg through imageio-ffmpeg, which is not installed: {HOW_TO_GET}"
        ) from None
    variable = os.environ.get("IMAGEIO_FFMPEG_EXE")
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        raise DonkeyError(f"{purpose} needs ffmpeg, and none was found: {HOW_TO_GET}") from None
    where = f"IMAGEIO_FFMPEG_EXE={variable}" if variable else exe
    found = shutil.which(exe)
    if found is None:
        raise DonkeyError(
            f"{purpose} needs ffmpeg, but {where} is not an executable file: fix or unset "
            f"IMAGEIO_FFMPEG_EXE, or {HOW_TO_GET}"
        )
    try:
        subprocess.run([found, "-version"], capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DonkeyError(
            f"{purpose} needs ffmpeg, but {where} does not run ({type(exc).__name__}): {HOW_TO_GET}"
        ) from None
    return found
