"""Export folders are written whole or not at all: built in a temporary sibling, then renamed.

A killed export leaves only a hidden `.NAME.PID-HOST.XXXXXXXX.tmp` sibling, never a folder that
loads, and two exports never mix in one folder. The sibling's name says which process wrote it
(PID on HOST), so the next write to the same target removes it once that process is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from donkey.artifacts.manifest import FORMATS, MANIFEST_NAME, MAX_MANIFEST_BYTES
from donkey.model.errors import DonkeyError

_UMASK = os.umask(0)
os.umask(_UMASK)
# Layouts `donkey export` writes: the manifest at the top (onnx, trt) or in onnx/ (trt, all).
_MANIFEST_PLACES = (MANIFEST_NAME, f"onnx/{MANIFEST_NAME}")
# What an export (of any version) may leave in its folder, at the top or in onnx/ and trt/:
# replacing a folder that holds only these loses nothing the user made.
_EXPORT_SUBFOLDERS = ("onnx", "trt")
_EXPORT_SUFFIXES = (".onnx", ".engine")
_TIMING_CACHE = re.compile(r"timing-.+\.cache")  # export.tensorrt_build.timing_cache_file


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


def foreign_entry(folder: Path) -> Path | None:
    """Something in `folder` no export writes (a user's file, a folder of theirs), or None."""
    for place, depth in [(folder, 0), *((folder / sub, 1) for sub in _EXPORT_SUBFOLDERS)]:
        if depth and not place.is_dir():
            continue
        for entry in place.iterdir():
            if depth == 0 and entry.name in _EXPORT_SUBFOLDERS:
                if entry.is_symlink() or not entry.is_dir():
                    return entry
                continue
            if entry.is_symlink() or not entry.is_file():
                return entry
            if entry.name == MANIFEST_NAME or _TIMING_CACHE.fullmatch(entry.name):
                continue
            if entry.suffix not in _EXPORT_SUFFIXES:
                return entry
    return None


def _host_tag() -> str:
    """8 hex digits naming this host and its process-ID namespace: a PID means the same process
    only where both agree (two containers may share a host name but not their PIDs)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode()).hexdigest()[:8]


def make_stage(target: Path, suffix: str = ".tmp") -> Path:
    """A new empty hidden folder beside `target`, named for this process: `.NAME.PID-HOST.XXXXXXXX.tmp`.

    Stale ones of the same target (`remove_stale_stages`) are removed first, so every writer
    that stages through here cleans up after the killed ones before it."""
    remove_stale_stages(target)
    prefix = f".{target.name}.{os.getpid()}-{_host_tag()}."
    return Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except (OverflowError, ValueError):  # no process can have such a number
        return False
    return True


def _stderr_line(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def remove_stale_stages(target: Path, note: Callable[[str], None] = _stderr_line) -> list[Path]:
    """Deletes the hidden siblings of `target` (see `make_stage`) whose writer, a process on this
    host, is no longer running; `note` gets one line per folder removed.

    Left alone: siblings of other targets, those of running processes or of another host or
    container, names without a writer (written by earlier versions), and a `.old` folder (the
    previous export, set aside while the new one is renamed in) when `target` is missing, since
    it may then be the only copy.
    """
    target = Path(target).absolute()
    pattern = re.compile(
        rf"^\.{re.escape(target.name)}\.(?P<pid>[0-9]{{1,12}})-(?P<host>[0-9a-f]{{8}})"
        rf"\.[a-z0-9_]{{8}}\.(?P<kind>tmp|old)$"
    )
    host = _host_tag()
    removed = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or match["host"] != host or _running(int(match["pid"])):
            continue
        if match["kind"] == "old" and not target.exists():
            continue
        if entry.is_symlink() or not entry.is_dir():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
            note(
                f"removed {entry}, left by an earlier write to {target.name} that did not "
                f"finish (process {match['pid']}, no longer running)"
            )
    return removed


def _os_problem(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def prepare_output(target: Path, replace: bool = False) -> Path:
    """Checks that `target` can become an export folder, creating its parent; returns it.

    Refused with one line: a target that is a file, a parent path through a file or where we
    may not write, and (unless `replace`) a non-empty folder that is not a Donkey export, or
    that holds anything beside one.
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
    if target.is_dir() and any(target.iterdir()) and not replace:
        if not is_export_folder(target):
            raise DonkeyError(
                f"{target}: folder is not empty and holds no Donkey export; choose another "
                "output folder or pass --overwrite to replace it"
            )
        foreign = foreign_entry(target)
        if foreign is not None:
            raise DonkeyError(
                f"{target}: holds a Donkey export and {foreign.relative_to(target)}, which no "
                "export wrote; choose another output folder or pass --overwrite to replace "
                "all of it"
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
        tmp = make_stage(target)
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
    old = make_stage(target, ".old")
    os.rmdir(old)
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
