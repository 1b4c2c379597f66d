"""`donkey bench`: model-only frames/s per engine and batch size, with the same thread count.

One timed unit is what producing a batch of output frames costs once the source is encoded:
kp_detector on the driving frames, dense_motion, generator. Warm-up runs first; then
repeated runs give median and p95 latency. With a reference model (fp32 PyTorch), each row
also gets the PSNR of its frames and the largest keypoint error against the reference's, on
the same frames: a speed is only worth what its picture keeps.

Peak memory covers one setting's warm-up and timed runs only (`peak_scope`): each engine is
freed before the next loads, and the reference model loads and runs only after every row
was timed (its outputs, and each row's, are compared at the end). On the CPU it is the
process's resident-set high-water mark (Linux resets it through /proc/self/clear_refs; where
that cannot be done it is the whole process's peak so far, scope "process"); on CUDA it is
PyTorch's allocator peak (memory TensorRT or ONNX Runtime allocate themselves is not in it).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import math
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from donkey.data.frames import frames_to_tensor
from donkey.data.sample_clip import rendered_clip
from donkey.runtime.animator import Animator
from donkey.runtime.cpu_features import describe
from donkey.runtime.loader import LoadedModel


@dataclass
class BenchRow:
    engine: str
    precision: str
    device: str
    batch: int
    threads: int
    fps: float
    p50_ms: float
    p95_ms: float
    peak_mb: float
    runs: int
    psnr_db: float | None = None  # against the reference's frames (None: no reference)
    kp_max_abs: float | None = None
    cpu: str = ""  # runtime/cpu_features.py's one line, for CPU rows
    # What peak_mb covers: "timed runs" (this setting's warm-up and timed runs) or "process"
    # (the process's peak so far: the CPU's peak could not be reset here).
    peak_scope: str = "timed runs"

    def as_dict(self) -> dict:
        """JSON-safe: an infinite PSNR (frames identical to the reference) becomes null."""
        data = asdict(self)
        if data["psnr_db"] is not None and not math.isfinite(data["psnr_db"]):
            data["psnr_db"] = None
        return data


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> str:
    """Starts a new peak-memory window; returns what `_peak_mb` will then cover."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return "timed runs"
    try:  # Linux >= 4.0: "5" resets the resident-set high-water mark that ru_maxrss reports
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return "process"
    return "timed runs"


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak RSS (Linux: KiB)


def bench_outputs(model: LoadedModel, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames and driving keypoint means one timed unit produces, on the CPU."""
    size = model.config.image_size
    source, driving = rendered_clip(size, frames=batch)
    animator = Animator(model, batch_size=batch, mode="absolute", smooth=0.0)
    kp = animator.driving_keypoints(frames_to_tensor(driving).to(model.device))
    frames = animator.animate(frames_to_tensor(source[None]), kp)
    return frames.float().cpu(), kp.kp_mean.float().cpu()


def _quality(
    got: tuple[torch.Tensor, torch.Tensor], reference: tuple[torch.Tensor, torch.Tensor]
) -> tuple[float, float]:
    mse = float(((got[0].double() - reference[0].double()) ** 2).mean())
    psnr = math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
    return psnr, float((got[1] - reference[1]).abs().max())


def _timed_unit(model: LoadedModel, batch: int) -> Callable[[], None]:
    """One timed unit on real rendered frames: driving keypoints and every output frame of a
    batch, the source encoded beforehand."""
    size = model.config.image_size
    source, driving = rendered_clip(size, frames=batch)
    animator = Animator(model, batch_size=batch, mode="absolute", smooth=0.0)
    state = animator.prepare_source(frames_to_tensor(source[None]))
    frames = frames_to_tensor(driving).to(model.device)

    def once() -> None:
        for _ in animator.stream(state, frames):
            pass
        _sync(model.device)

    return once


def _row(
    model: LoadedModel, precision: str, batch: int, threads: int, times: list[float]
) -> BenchRow:
    p50 = statistics.median(times)
    return BenchRow(
        model.engine,
        precision,
        str(model.device),
        batch,
        threads,
        batch / p50,
        p50 * 1e3,
        float(np.percentile(times, 95)) * 1e3,
        0.0,
        len(times),
        None,
        None,
        describe() if model.device.type == "cpu" else "",
    )


def _enough(counts: list[int], runs: int, started: float, min_seconds: float) -> bool:
    fewest = min(counts)
    return fewest >= runs and (time.perf_counter() - started >= min_seconds or fewest >= 200)


def bench_model(
    model: LoadedModel,
    batch: int,
    threads: int,
    warmup: int = 3,
    runs: int = 10,
    min_seconds: float = 1.0,
    precision: str = "fp32",
) -> BenchRow:
    """Times one batch of output frames (source encoding cached), on real rendered frames.
    `peak_mb` covers the warm-up and timed runs (see the module's docstring)."""
    once = _timed_unit(model, batch)
    _release_memory()
    peak_scope = _reset_peak(model.device)
    for _ in range(warmup):
        once()
    times: list[float] = []
    started = time.perf_counter()
    while not _enough([len(times)], runs, started, min_seconds):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    row = _row(model, precision, batch, threads, times)
    row.peak_mb, row.peak_scope = _peak_mb(model.device), peak_scope
    return row


def bench_interleaved(
    models: list[tuple[LoadedModel, str]],
    batch: int,
    threads: int,
    warmup: int = 3,
    runs: int = 10,
    min_seconds: float = 1.0,
) -> list[BenchRow]:
    """Like `bench_model` for several (model, precision label) at once, their timed runs taken
    in turn (round robin): on a machine whose speed drifts, every row sees the same drift, so
    their ratios hold. Peak memory is the whole process's (every model is loaded)."""
    units = [_timed_unit(model, batch) for model, _ in models]
    for once in units:
        for _ in range(warmup):
            once()
    times: list[list[float]] = [[] for _ in units]
    started = time.perf_counter()
    while not _enough([len(t) for t in times], runs, started, min_seconds):
        for once, spent in zip(units, times):
            t0 = time.perf_counter()
            once()
            spent.append(time.perf_counter() - t0)
    rows = []
    for (model, label), spent in zip(models, times):
        row = _row(model, label, batch, threads, spent)
        row.peak_mb, row.peak_scope = _peak_mb(model.device), "process"
        rows.append(row)
    return rows


def run_bench(
    load: Callable[[str, str], LoadedModel],
    variants: list[tuple[str, str]],
    batches: list[int],
    threads: int,
    runs: int = 10,
    progress: Callable[[BenchRow], None] | None = None,
    min_seconds: float = 1.0,
    load_reference: Callable[[], LoadedModel] | None = None,
    interleave: bool = False,
) -> list[BenchRow]:
    """Rows for every (engine, precision) variant and batch size, in that order: `runs` timed
    runs each, and more (at most 200) until `min_seconds` of them were timed (`min_seconds=0`
    times exactly `runs`). With a reference model (`load_reference`), each row carries PSNR
    and keypoint error against it, computed after every row was timed: no row's peak memory
    holds the reference or what running it left resident. `interleave`: every variant loaded
    at once, their runs taken in turn (`bench_interleaved`)."""
    torch.set_num_threads(threads)
    rows: list[BenchRow] = []
    outputs: list[tuple[torch.Tensor, torch.Tensor]] = []  # each row's, for the comparison
    seen: set[tuple[str, str]] = set()
    loaded: list[tuple[LoadedModel, str]] = []
    for engine, precision in variants:
        model = load(engine, precision)
        # An export folder's graphs say what they are, whatever precision was asked for (an
        # int8 folder asked for "fp32", an fp32 folder asked for "int8"): label rows by that,
        # and time each (engine, graphs) once.
        held = set(model.precision.values()) - {"fp32"}
        label = held.pop() if len(held) == 1 else ("fp32" if not held else precision)
        if (engine, label) in seen:
            continue
        seen.add((engine, label))
        if interleave:
            loaded.append((model, label))
            continue
        for batch in batches:
            row = bench_model(
                model, batch, threads, runs=runs, min_seconds=min_seconds, precision=label
            )
            if load_reference is not None:  # after its peak was read
                outputs.append(bench_outputs(model, batch))
            rows.append(row)
            if progress is not None:
                progress(row)
        del model  # the next engine's rows do not hold this one's memory
        _release_memory()
    if interleave:
        by_batch = {
            batch: bench_interleaved(loaded, batch, threads, runs=runs, min_seconds=min_seconds)
            for batch in batches
        }
        for index, (model, _) in enumerate(loaded):  # the usual order: variant, then batch
            for batch in batches:
                rows.append(by_batch[batch][index])
                if load_reference is not None:
                    outputs.append(bench_outputs(model, batch))
                if progress is not None:
                    progress(rows[-1])
        loaded.clear()
        _release_memory()
    if load_reference is not None and rows:
        reference = load_reference()
        expected = {b: bench_outputs(reference, b) for b in batches}
        for row, got in zip(rows, outputs, strict=True):
            row.psnr_db, row.kp_max_abs = _quality(got, expected[row.batch])
    return rows


def _release_memory() -> None:
    """Frees what nothing references and hands freed heap back to the system, so it stops
    counting as resident (glibc keeps freed blocks otherwise)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache  # looked up on first use, not when the module is imported
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc
