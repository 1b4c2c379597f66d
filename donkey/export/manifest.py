"""manifest.json beside exported graphs and engines: what was built, from what, with what."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from donkey import __version__
from donkey.model.config import config_to_dict
from donkey.model.files import atomic_output, sha256_file
from donkey.model.spec import GraphSpec

MANIFEST = "manifest.json"


def tool_versions() -> dict[str, str]:
    versions = {"donkey": __version__, "python": platform.python_version()}
    for name in ("torch", "onnx", "onnxruntime", "onnxconverter_common", "tensorrt"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except ImportError:
            continue
    return versions


def io_specs(spec: GraphSpec) -> dict[str, list[dict[str, Any]]]:
    return {
        "inputs": [asdict(t) for t in spec.inputs],
        "outputs": [asdict(t) for t in spec.outputs],
    }


def graph_entry(path: Path, spec: GraphSpec, precision: str, **extra: Any) -> dict[str, Any]:
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "precision": precision,
        **io_specs(spec),
        **extra,
    }


def write_manifest(
    folder: Path,
    fmt: str,
    model_config,
    graphs: dict[str, dict],
    checkpoint: Path | None,
    checkpoint_sha256: str,
    **fields: Any,
) -> Path:
    payload = {
        "format": fmt,
        "version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model_config": config_to_dict(model_config),
        "checkpoint": str(checkpoint) if checkpoint else None,
        "checkpoint_sha256": checkpoint_sha256,
        "precision": {name: entry["precision"] for name, entry in graphs.items()},
        "graphs": graphs,
        "tools": tool_versions(),
        **fields,
    }
    path = folder / MANIFEST
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1))
    return path
