"""The pairs manifest (docs/architecture.md, "Pairs manifest"): JSON written by `donkey pairs`
and `donkey synth --pairs`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from donkey.model.errors import DonkeyError
from donkey.model.files import atomic_output

MANIFEST_VERSION = 1


@dataclass
class Pair:
    a: str
    b: str
    b_for_a: list[int]  # for each frame of A, the frame of B in the same pose
    a_for_b: list[int]  # for each frame of B, the frame of A in the same pose
    residual: float = 0.0
    unique: float = 1.0
    score: float = 0.0


@dataclass
class Rejected:
    a: str
    b: str
    reason: str


@dataclass
class PairsManifest:
    root: Path
    pairs: list[Pair]
    params: dict[str, Any] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    source: Path | None = None  # the file it was read from, for error messages

    def path_of(self, name: str) -> Path:
        return self.root / name


def save_manifest(path: str | Path, manifest: PairsManifest) -> Path:
    """Writes the manifest atomically; `root` is stored as given (absolute or relative)."""
    path = Path(path)
    payload = {
        "version": MANIFEST_VERSION,
        "root": str(manifest.root),
        "params": manifest.params,
        "pairs": [asdict(p) for p in manifest.pairs],
        "rejected": [asdict(r) for r in manifest.rejected],
    }
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1))
    return path


MAX_TEXT_BYTES = 64 << 20
MAX_FRAME_INDEX = 1_000_000


def read_text_file(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A small UTF-8 text file, or a one-line DonkeyError (missing, folder, huge, binary)."""
    path = Path(path)
    try:
        if not path.exists():
            raise DonkeyError(f"{path}: no such {what}")
        if path.is_dir():
            raise DonkeyError(f"{path}: is a folder, not a {what}")
        if path.stat().st_size > max_bytes:
            raise DonkeyError(f"{path}: larger than {max_bytes >> 20} MB, not a {what}")
        raw = path.read_bytes()
    except OSError as exc:
        raise DonkeyError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if b"\0" in raw:
        raise DonkeyError(f"{path}: binary file, not a {what}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DonkeyError(f"{path}: not UTF-8 text (byte {exc.start}), not a {what}") from None


def _entry(cls: type, item: dict, where: str):
    """A manifest entry from its mapping; keys are shown with repr (they may hold newlines)."""
    names = {f.name for f in dataclasses.fields(cls)}
    required = {
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    unknown = sorted(map(repr, set(item) - names))
    missing = sorted(required - set(item))
    if unknown or missing:
        problem = (
            f"unknown keys {', '.join(unknown)}" if unknown else f"missing {', '.join(missing)}"
        )
        raise DonkeyError(f"{where} is malformed ({problem})")
    return cls(**item)


def inside_root(root: Path, name: object) -> str | None:
    """Why `name` is not a plain relative name inside `root` (after symlinks), or None."""
    if not isinstance(name, str) or not name.strip():
        return f"{name!r} is not a file name"
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        return f"{name!r} leaves the manifest root"
    try:
        resolved, base = (root / relative).resolve(), root.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops
        return f"{name!r} cannot be resolved ({exc})"
    if base not in resolved.parents:
        return f"{name!r} resolves outside the manifest root {root}"
    return None


def _frame_list(value: object) -> str | None:
    if not isinstance(value, list) or not value:
        return "must be a non-empty list of frame indices"
    for j, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < MAX_FRAME_INDEX:
            return f"[{j}] = {v!r} is not a frame index"
    return None


def check_pair_lengths(pair: Pair, len_a: int, len_b: int, source: Path | None = None) -> None:
    """The mappings fit the videos as read: one entry per frame, every index in range."""
    where = f"{source}: pair ({pair.a}, {pair.b})" if source else f"pair ({pair.a}, {pair.b})"
    if len(pair.b_for_a) != len_a or len(pair.a_for_b) != len_b:
        raise DonkeyError(
            f"{where}: mappings of length {len(pair.b_for_a)}/{len(pair.a_for_b)} do not "
            f"match videos of {len_a}/{len_b} frames"
        )
    if max(pair.b_for_a) >= len_b or max(pair.a_for_b) >= len_a:
        raise DonkeyError(
            f"{where}: frame index out of range (b_for_a up to {max(pair.b_for_a)} for "
            f"{len_b} frames of b, a_for_b up to {max(pair.a_for_b)} for {len_a} frames of a)"
        )


def load_manifest(path: str | Path) -> PairsManifest:
    """Reads and checks a manifest; a relative root is relative to the manifest's folder.

    Every name must stay inside the root (no absolute paths, no '..', no symlink out), every
    mapping must be a list of frame indices; any other entry is a one-line error naming it.
    """
    path = Path(path)
    text = read_text_file(path, "pairs manifest")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DonkeyError(f"{path}: not a readable pairs manifest ({exc})") from None
    except RecursionError:
        raise DonkeyError(f"{path}: not a readable pairs manifest (nested too deeply)") from None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise DonkeyError(f"{path}: not a version-{MANIFEST_VERSION} pairs manifest")
    raw_root = data.get("root", ".")
    if not isinstance(raw_root, str):
        raise DonkeyError(f"{path}: 'root' must be a folder name, got {raw_root!r}")
    root = Path(raw_root)
    if not root.is_absolute():
        root = path.parent / root
    items, rejected_items = data.get("pairs", []), data.get("rejected", [])
    params = data.get("params", {})
    if not isinstance(items, list) or not isinstance(rejected_items, list):
        raise DonkeyError(f"{path}: 'pairs' and 'rejected' must be lists")
    if not isinstance(params, dict):
        raise DonkeyError(f"{path}: 'params' must be a mapping")
    pairs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise DonkeyError(f"{path}: pair {i} is not a mapping")
        pair = _entry(Pair, item, f"{path}: pair {i}")
        for name in (pair.a, pair.b):
            problem = inside_root(root, name)
            if problem:
                raise DonkeyError(f"{path}: pair {i}: {problem}")
        for field_name in ("b_for_a", "a_for_b"):
            problem = _frame_list(getattr(pair, field_name))
            if problem:
                raise DonkeyError(f"{path}: pair {i} ({pair.a}, {pair.b}): {field_name} {problem}")
        for field_name in ("residual", "unique", "score"):
            value = getattr(pair, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise DonkeyError(f"{path}: pair {i}: {field_name} must be a number, got {value!r}")
        pairs.append(pair)
    rejected = []
    for i, item in enumerate(rejected_items):
        entry = _entry(Rejected, item, f"{path}: rejected entry {i}")
        if not all(isinstance(v, str) for v in (entry.a, entry.b, entry.reason)):
            raise DonkeyError(f"{path}: rejected entry {i} must hold a, b and reason as text")
        rejected.append(entry)
    return PairsManifest(root=root, pairs=pairs, params=params, rejected=rejected, source=path)
