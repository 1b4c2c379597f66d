"""Export folders are written whole or not at all: built in a temporary sibling, then renamed.

A killed export leaves only a hidden `.NAME.XXXX.tmp` sibling, never a folder that loads, and
two exports never mix in one folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from donkey.artifacts.manifest import FORMATS, MANIFEST_NAME, MAX_MANIFEST_BYTES
from donkey.model.errors import DonkeyError

_UMASK = os.umask(0)
os.umask(_UMASK)
# Layouts `donkey export` writes: the manifest at the top (onnx, trt) or in onnx/ (trt, all).
_MANIFEST_PLACES = (MANIFEST_NAME, f"onnx/{MANIFEST_NAME}")


def is_export_folder(folder: Path) -> bool:
    """True when folder holds what a `donkey export` (of any version) wrote."""
    for place in _MANIFEST_PLACES:
        path = folder / place
        try:
            if path.is_file() and path.stat().st_size <= MAX_MANIFEST_BYTES:
                data = json.loads(path.read_text())
                if isinstance(data, dict) and data.get("format") in FORMATS:
                    return True
        except (OSError, ValueError):
            continue
    return False


def _os_problem(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def prepare_output(target: Path, replace: bool = False) -> Path:
    """Checks that `target` can become an export folder, creating its parent; returns it.

    Refused with one line: a target that is a file, a parent path through a file or where we
    may not write, and a non-empty folder that holds no Donkey export (unless `replace`).
    """
    target = Path(target).absolute()
    for above in [target, *target.parents]:
        if above.exists() and not above.is_dir():
            raise DonkeyError(f"{above}: is a file, not a folder; choose another output folder")
        if above.is_dir():
            break
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DonkeyError(f"{target.parent}: cannot create folder ({_os_problem(exc)})") from None
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise DonkeyError(f"{target.parent}: cannot write here (permission denied)")
    if target.is_dir() and any(target.iterdir()) and not replace and not is_export_folder(target):
        raise DonkeyError(
            f"{target}: folder is not empty and holds no Donkey export; choose another "
            "output folder or pass --overwrite to replace it"
        )
    return target


@contextlib.contextmanager
def staged_folder(target: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yields an empty temporary folder beside `target`; on success it becomes `target`.

    An existing `target` (a previous export, an empty folder, or anything when `replace`) is
    swapped out and deleted only after the new folder is in place. On any exception the
    temporary folder is deleted and `target` is left as it was.
    """
    target = prepare_output(Path(target), replace)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise DonkeyError(f"{target.parent}: cannot write here ({_os_problem(exc)})") from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp leaves 0700
        prepare_output(target, replace)  # it may have changed while we wrote
        publish(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, target: Path) -> None:
    """Renames the finished folder `tmp` to `target`, replacing what is there."""
    if not target.exists():
        os.rename(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
