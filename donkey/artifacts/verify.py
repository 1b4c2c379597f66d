"""Before any backend opens a file named by a manifest: it lies inside the folder and its bytes
hash to what the manifest recorded. A folder that fails is refused, naming the file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from donkey.artifacts.manifest import MANIFEST_NAME, Manifest, ManifestError
from donkey.model.files import sha256_file

# Names our atomic writers use while a file or folder is unfinished (`.name.XXXX.tmp.onnx`,
# `.out.XXXX.tmp`), and the usual partial-download spellings.
_TEMPORARY = re.compile(r"(^|\.)tmp(\.|$)|\.part$|\.partial$|~$", re.IGNORECASE)
REEXPORT = "export the model again"


def is_temporary(name: str) -> bool:
    return bool(_TEMPORARY.search(name))


def member_path(folder: Path, name: str) -> Path:
    """folder/name for a plain file name whose real path is inside folder."""
    manifest = folder / MANIFEST_NAME
    if (
        not name
        or name in (".", "..")
        or any(c in name for c in "/\\\x00")
        or Path(name).is_absolute()
    ):
        raise ManifestError(
            f"{manifest}: names {name!r}, which is not a plain file name inside the folder"
        )
    path = folder / name
    if path.resolve().parent != folder.resolve():
        raise ManifestError(f"{path}: a link that leads outside the folder; refused")
    if not path.is_file():
        raise ManifestError(f"{path}: missing or not a regular file (named by {MANIFEST_NAME})")
    return path


def stray_temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if is_temporary(p.name))


def _hash_mismatch(path: Path) -> ManifestError:
    return ManifestError(
        f"{path}: sha256 differs from {MANIFEST_NAME} (changed, half-written or from another "
        f"export); {REEXPORT}"
    )


def verify_folder(folder: str | Path, manifest: Manifest | None = None) -> Manifest:
    """The folder's manifest, once every file it names is inside the folder and hashes right.

    A temporary file beside them means a write was cut short in this folder: refused too.
    `manifest`: the folder's manifest when the caller read it already (the model is resolved
    once, manifest included), so it is not read and parsed again.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"{folder}: not a folder")
    manifest_path = folder / MANIFEST_NAME
    if manifest_path.exists() and manifest_path.resolve().parent != folder.resolve():
        raise ManifestError(f"{manifest_path}: a link that leads outside the folder; refused")
    if manifest is None:
        manifest = Manifest.read(folder)
    strays = stray_temporaries(folder)
    if strays:
        raise ManifestError(
            f"{folder / strays[0]}: temporary file of an unfinished write; the folder is "
            f"half-written, {REEXPORT}"
        )
    for name, entry in manifest.graphs.items():
        path = member_path(folder, entry.file)
        if manifest.format == "onnx":
            check_onnx_identity(path, read_verified(path, entry.sha256), name, manifest)
        elif sha256_file(path) != entry.sha256:
            raise _hash_mismatch(path)
    return manifest


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def onnx_metadata(data: bytes) -> dict[str, str]:
    """An ONNX model's metadata_props (ModelProto field 14), read off the protobuf wire format
    by skipping the other top-level fields: the graph, nearly all of the bytes, is not parsed
    (a 270 MB model costs microseconds, not a second). ValueError if the bytes are not a
    well-formed message."""
    from onnx import StringStringEntryProto

    meta, pos = {}, 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            end = pos + length
            if end > len(data):
                raise ValueError("field runs past the end")
            if field == 14:
                entry = StringStringEntryProto()
                entry.ParseFromString(data[pos:end])
                meta[entry.key] = entry.value
            pos = end
        else:
            raise ValueError(f"wire type {wire}")
        if field == 0 or pos > len(data):
            raise ValueError("malformed field")
    return meta


def check_onnx_identity(path: Path, data: bytes, graph: str, manifest: Manifest) -> None:
    """The graph's own metadata (export/onnx_trace.py) names this graph and this checkpoint: a
    graph copied in from another export is refused even when the manifest was re-hashed."""
    from google.protobuf.message import DecodeError

    try:
        meta = onnx_metadata(data)
    except (ValueError, DecodeError):
        raise ManifestError(f"{path}: not an ONNX graph (malformed protobuf)") from None
    name, source = meta.get("donkey.graph"), meta.get("donkey.checkpoint_sha256")
    if name != graph or source != manifest.checkpoint_sha256:
        raise ManifestError(
            f"{path}: holds graph {name!r} of checkpoint {str(source)[:12]}, but "
            f"{MANIFEST_NAME} expects {graph!r} of {manifest.checkpoint_sha256[:12]} (a graph "
            f"from another export); {REEXPORT}"
        )


def read_verified(path: Path, sha256: str) -> bytes:
    """The bytes of `path`, refused unless they hash to `sha256`: what was checked is what runs,
    even when the file changed between loading the folder and opening the graph."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ManifestError(f"{path}: unreadable ({exc.strerror})") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise _hash_mismatch(Path(path))
    return data


def unknown_files(folder: Path, manifest: Manifest) -> list[str]:
    """Names in the folder that neither the manifest nor the folder format account for."""
    known = {MANIFEST_NAME} | {g.file for g in manifest.graphs.values()}
    return sorted(p.name for p in folder.iterdir() if p.name not in known)
