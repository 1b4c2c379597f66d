"""The pairs manifest (docs/architecture.md, "Pairs manifest"): JSON written by `donkey pairs`
and `donkey synth --pairs`."""

from __future__ import annotations

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


def load_manifest(path: str | Path) -> PairsManifest:
    """Reads and checks a manifest; a relative root is relative to the manifest's folder."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DonkeyError(f"{path}: no such pairs manifest") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DonkeyError(f"{path}: not a readable pairs manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise DonkeyError(f"{path}: not a version-{MANIFEST_VERSION} pairs manifest")
    root = Path(data.get("root", "."))
    if not root.is_absolute():
        root = path.parent / root
    pairs = []
    for i, item in enumerate(data.get("pairs", [])):
        try:
            pair = Pair(**item)
        except TypeError as exc:
            raise DonkeyError(f"{path}: pair {i} is malformed ({exc})") from None
        if not pair.b_for_a or not pair.a_for_b:
            raise DonkeyError(f"{path}: pair {i} ({pair.a}, {pair.b}) has empty frame mappings")
        pairs.append(pair)
    rejected = [Rejected(**r) for r in data.get("rejected", [])]
    return PairsManifest(root=root, pairs=pairs, params=data.get("params", {}), rejected=rejected)
