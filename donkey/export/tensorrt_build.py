"""TensorRT engine building with the `tensorrt` Python API (imported lazily).

One optimisation profile from the batch range, a workspace limit, a timing cache file reused
across builds, a strongly typed network (fp16 is decided in the ONNX graph), TF32 off for
fp32 parity. Engines and their manifest are written atomically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from donkey.artifacts.gpu import INSTALL_HINT, gpu_identity, import_tensorrt  # noqa: F401
from donkey.artifacts.manifest import EngineInfo, GpuIdentity, GraphEntry, Manifest
from donkey.artifacts.settings import BatchRange, EngineSettings
from donkey.artifacts.verify import verify_folder
from donkey.model.errors import DonkeyError
from donkey.model.files import atomic_output
from donkey.model.spec import GraphSpec, graph_specs

Log = Callable[[str], None]


def network_flags(trt: ModuleType) -> int:
    members = trt.NetworkDefinitionCreationFlag.__members__
    if "STRONGLY_TYPED" in members:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


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
    if not settings.allow_tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile_shapes(spec, settings.batch).items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    cache_blob = b""
    if settings.timing_cache is not None and settings.timing_cache.is_file():
        cache_blob = settings.timing_cache.read_bytes()
    cache = config.create_timing_cache(cache_blob)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DonkeyError(f"{onnx_path}: TensorRT failed to build an engine (see the log above)")
    with atomic_output(engine_path) as tmp:
        tmp.write_bytes(bytes(serialized))
    if settings.timing_cache is not None:
        with atomic_output(settings.timing_cache) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    return engine_path


def build_engines(
    onnx_dir: Path, out_dir: Path, settings: EngineSettings, log: Log = lambda _: None
) -> dict[str, float]:
    """Engines for every graph of an ONNX export folder, plus the engine manifest."""
    trt = import_tensorrt()
    gpu = gpu_identity()
    manifest = verify_folder(onnx_dir)
    config = manifest.model_config
    specs = graph_specs(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    if settings.timing_cache is None:
        settings.timing_cache = out_dir / "timing.cache"
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
            strongly_typed="STRONGLY_TYPED" in trt.NetworkDefinitionCreationFlag.__members__,
        ),
    ).write(out_dir)
    return seconds
