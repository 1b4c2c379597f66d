"""TensorRT engine building with the `tensorrt` Python API (imported lazily).

One optimisation profile from the batch range, a workspace limit, a timing cache file reused
across builds, a strongly typed network (fp16 is decided in the ONNX graph), TF32 off for
fp32 parity. Engines and their manifest are written atomically.

Engines and timing caches are keyed by TensorRT version, GPU name and compute capability
(`device_key`): TensorRT's developer guide says that, without a hardware-compatibility level,
an engine is compatible only with the type of device it was built on, and its tactics were
timed there. Two GPUs of one compute capability (A100 and A30 are both 8.0) get engines of
their own.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from donkey.artifacts.gpu import INSTALL_HINT, device_key, gpu_identity, import_tensorrt  # noqa: F401
from donkey.artifacts.manifest import EngineInfo, GpuIdentity, GraphEntry, Manifest
from donkey.artifacts.settings import BatchRange, EngineSettings
from donkey.artifacts.verify import verify_folder
from donkey.model.errors import DonkeyError
from donkey.model.files import atomic_output
from donkey.model.spec import GraphSpec, graph_specs

Log = Callable[[str], None]


def timing_cache_file(folder: Path, trt_version: str, gpu: dict) -> Path:
    """One timing cache per TensorRT version and GPU model, like the engines."""
    key = f"trt{trt_version}-{gpu.get('name')}-sm{gpu.get('compute_capability')}"
    return folder / f"timing-{re.sub(r'[^A-Za-z0-9.-]+', '_', key)}.cache"


def tensorrt_major(trt: ModuleType) -> int:
    return int(str(trt.__version__).split(".")[0])


def network_flags(trt: ModuleType) -> int:
    """Strongly typed network flags. TensorRT 11 networks are always strongly typed (its
    STRONGLY_TYPED flag is deprecated and ignored, EXPLICIT_BATCH is gone); TensorRT 10 needs
    the STRONGLY_TYPED bit (value 1 there, 0 in 11) to follow the graph's types as written."""
    if tensorrt_major(trt) >= 11:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def profile_shapes(spec: GraphSpec, batch: BatchRange) -> dict[str, tuple[tuple[int, ...], ...]]:
    """(min, opt, max) shape of every input: the batch range on axis 0, spec sizes elsewhere."""
    shapes = {}
    for t in spec.inputs:
        rest = tuple(int(s) for s in t.shape[1:])
        shapes[t.name] = ((batch.min, *rest), (batch.opt, *rest), (batch.max, *rest))
    return shapes


def build_engine(
    trt: ModuleType, onnx_path: Path, engine_path: Path, spec: GraphSpec, settings: EngineSettings
) -> Path:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
        raise DonkeyError(f"{onnx_path}: TensorRT could not parse it ({errors[:300]})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(
        trt.MemoryPoolType.WORKSPACE, int(settings.workspace_gb * (1 << 30))
    )
    if not settings.allow_tf32 and "TF32" in trt.BuilderFlag.__members__:
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    shapes = profile_shapes(spec, settings.batch)
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    if config.add_optimization_profile(profile) < 0:
        ranges = ", ".join(f"{n} {lo} .. {hi}" for n, (lo, _, hi) in shapes.items())
        raise DonkeyError(f"{onnx_path}: TensorRT rejected the optimisation profile ({ranges})")
    if settings.timing_cache is not None:
        _attach_timing_cache(config, settings.timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DonkeyError(f"{onnx_path}: TensorRT failed to build an engine (see the log above)")
    with atomic_output(engine_path) as tmp:
        tmp.write_bytes(bytes(serialized))
    cache = config.get_timing_cache() if settings.timing_cache is not None else None
    if cache is not None:  # None when no cache could be attached
        with atomic_output(settings.timing_cache) as tmp:
            tmp.write_bytes(bytes(cache.serialize()))
    return engine_path


def _attach_timing_cache(config, path: Path) -> None:
    """Reuses the cache file when TensorRT accepts it; `set_timing_cache` returns False for a
    cache from another device (ignore_mismatch=False), and such a cache is replaced by a new
    one, written back after the build."""
    blob = path.read_bytes() if path.is_file() else b""
    if blob:
        cache = config.create_timing_cache(blob)
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return
        warnings.warn(
            f"{path}: timing cache not accepted by this TensorRT/GPU (another device or "
            f"version, or damaged); building a new one",
            RuntimeWarning,
            stacklevel=3,
        )
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        warnings.warn(
            f"{path}: TensorRT could not start a timing cache; building without one",
            RuntimeWarning,
            stacklevel=3,
        )


def build_engines(
    onnx_dir: Path, out_dir: Path, settings: EngineSettings, log: Log = lambda _: None
) -> dict[str, float]:
    """Engines for every graph of an ONNX export folder, plus the engine manifest."""
    trt = import_tensorrt()
    gpu = gpu_identity()
    manifest = verify_folder(onnx_dir)
    if manifest.quantization is not None:
        raise DonkeyError(
            f"{onnx_dir}: int8 graphs are for ONNX Runtime on CPUs; build TensorRT engines from "
            "an fp32 or fp16 export"
        )
    config = manifest.model_config
    specs = graph_specs(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    if settings.timing_cache is None:
        settings.timing_cache = timing_cache_file(out_dir, trt.__version__, gpu)
    entries, seconds = {}, {}
    for name, info in manifest.graphs.items():
        started = time.perf_counter()
        onnx_path = onnx_dir / info.file
        engine = build_engine(trt, onnx_path, out_dir / f"{name}.engine", specs[name], settings)
        seconds[name] = time.perf_counter() - started
        entries[name] = GraphEntry.for_file(engine, specs[name], info.precision, info.sha256)
        log(f"{name}: engine {engine.stat().st_size / 1e6:.1f} MB in {seconds[name]:.1f}s")
    Manifest(
        format="trt",
        model_config=config,
        checkpoint=manifest.checkpoint,
        checkpoint_sha256=manifest.checkpoint_sha256,
        opset=manifest.opset,
        graphs=entries,
        engine=EngineInfo(
            tensorrt_version=str(trt.__version__),
            gpu=GpuIdentity(gpu["name"], gpu["compute_capability"]),
            batch=settings.batch,
            workspace_gb=float(settings.workspace_gb),
            tf32=settings.allow_tf32,
            strongly_typed=True,  # see network_flags
        ),
    ).write(out_dir)
    return seconds
