"""Build-once caches: ONNX exports of checkpoints, and TensorRT engines of ONNX folders.

Keys: the checkpoint's sha256 (+ opset, precision) for ONNX; for engines the ONNX hashes,
TensorRT version, GPU (name and compute capability), precision and batch range. An entry is
built by `donkey export`'s own sequence (`onnx_folder.write_export`) in a temporary sibling
and renamed into place whole, so a folder under its key is complete; the runtime still
verifies it like any export folder before loading it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from donkey.artifacts.folders import make_stage
from donkey.artifacts.manifest import MANIFEST_NAME
from donkey.artifacts.settings import EngineSettings
from donkey.artifacts.verify import verify_folder
from donkey.model.files import atomic_output, sha256_file

# Part of every key: bump when what an entry holds changes (2: manifest version 2).
CACHE_LAYOUT = 2


def cache_root() -> Path:
    base = os.environ.get("DONKEY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "donkey"
    )
    return Path(base)


def _key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _build_into(target: Path, build, on_build: Callable[[], None] | None = None) -> Path:
    """Runs build(tmp_dir) and moves the finished folder into place (atomic for readers).
    `on_build` is called first when there is something to build."""
    if (target / MANIFEST_NAME).is_file():
        return target
    if on_build is not None:
        on_build()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_stage(target)
    try:
        build(tmp)
        if (target / MANIFEST_NAME).is_file():  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
            return target
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def discard_entry(folder: Path) -> bool:
    """Removes `folder` if it is an entry of the cache (never anything outside it)."""
    root = cache_root().resolve()
    folder = Path(folder).resolve()
    if folder.parent.parent != root or not folder.is_dir():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def checkpoint_digest(path: Path) -> str:
    """sha256 of a checkpoint, remembered by (path, inode, size, mtime, ctime).

    Hashing a paper-size checkpoint (266 MB) costs ~0.35 s on every `--engine ort|trt` call
    otherwise. ctime cannot be set by tools that preserve mtime (cp -p, tar), and any write or
    rename changes it, so a stale entry cannot be hit by a changed file.
    """
    path = Path(path).resolve()
    info = path.stat()
    stamp = [info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
    memo_file = cache_root() / "checkpoint-hashes.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(str(path))
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return entry["sha256"]
    digest = sha256_file(path)
    memo[str(path)] = {"stamp": stamp, "sha256": digest}
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(memo_file) as tmp:
            tmp.write_text(json.dumps(memo))
    except OSError:
        pass  # a read-only cache only costs the hash next time
    return digest


def cached_onnx(
    checkpoint: Path,
    fp16: bool = False,
    opset: int | None = None,
    int8: bool = False,
    on_build: Callable[[], None] | None = None,
) -> Path:
    """`int8`: quantized with the recipe the checkpoint asks for, calibrated on synthetic
    creatures only (the cache has no data folder; `donkey export --int8 --calibration DIR`
    for real frames)."""
    from donkey.export.int8 import QAT_SETTINGS, Int8Settings
    from donkey.export.onnx_folder import ExportPlan, write_export
    from donkey.export.onnx_trace import DEFAULT_OPSET

    opset = opset or DEFAULT_OPSET
    digest = checkpoint_digest(checkpoint)
    parts = {"sha256": digest, "fp16": fp16, "opset": opset, "v": CACHE_LAYOUT}
    if int8:  # the checkpoint (its digest) picks one of the two recipes: key on both
        parts["int8"] = repr((Int8Settings(), QAT_SETTINGS))
    plan = ExportPlan(fp16=fp16, opset=opset, int8=int8)
    return _build_into(
        cache_root() / "onnx" / _key(parts),
        lambda tmp: write_export(checkpoint, tmp, plan),
        on_build,
    )


def engine_key(onnx_dir: Path, trt_version: str, device: str, batch: tuple[int, int, int]) -> str:
    """`device`: the GPU's `device_key` (name and compute capability)."""
    manifest = verify_folder(onnx_dir)
    return _key(
        {
            "onnx": {n: g.sha256 for n, g in manifest.graphs.items()},
            "precision": manifest.precision,
            "trt": trt_version,
            "gpu": device,
            "batch": list(batch),
            "v": CACHE_LAYOUT,
        }
    )


def cached_engines(
    onnx_dir: Path, settings: EngineSettings, on_build: Callable[[], None] | None = None
) -> Path:
    """Engines for an ONNX folder, built once per (ONNX, TensorRT, GPU, precision, batches)."""
    from donkey.artifacts.gpu import device_key, gpu_identity, import_tensorrt
    from donkey.export.onnx_folder import ExportPlan, write_export
    from donkey.export.tensorrt_build import timing_cache_file

    trt = import_tensorrt()
    gpu = gpu_identity()
    batch = (settings.batch.min, settings.batch.opt, settings.batch.max)
    key = engine_key(onnx_dir, trt.__version__, device_key(gpu), batch)
    settings.timing_cache = timing_cache_file(cache_root() / "trt", trt.__version__, gpu)
    plan = ExportPlan(engines=settings)
    return _build_into(
        cache_root() / "trt" / key, lambda tmp: write_export(onnx_dir, tmp, plan), on_build
    )
