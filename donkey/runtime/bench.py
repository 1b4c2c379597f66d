"""`donkey bench`: model-only frames/s per engine and batch size, with the same thread count.

One timed unit is what producing a batch of output frames costs once the source is encoded:
kp_detector on the driving frames, dense_motion, generator. Warm-up runs first; then
repeated runs give median and p95 latency.
"""

from __future__ import annotations

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

    def as_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )  # process peak RSS (Linux: KiB)


def bench_model(
    model: LoadedModel,
    batch: int,
    threads: int,
    warmup: int = 3,
    runs: int = 10,
    min_seconds: float = 1.0,
    precision: str = "fp32",
) -> BenchRow:
    """Times one batch of output frames (source encoding cached), on real rendered frames."""
    size = model.config.image_size
    source, driving = rendered_clip(size, frames=batch)
    animator = Animator(model, batch_size=batch, mode="absolute")
    state = animator.prepare_source(frames_to_tensor(source[None]))
    frames = frames_to_tensor(driving).to(model.device)
    if model.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(model.device)

    def once() -> None:
        kp = animator.driving_keypoints(frames)
        for _ in animator.render_batches(state, kp):
            pass

    for _ in range(warmup):
        once()
    _sync(model.device)
    times = []
    started = time.perf_counter()
    while len(times) < runs or (time.perf_counter() - started < min_seconds and len(times) < 200):
        t0 = time.perf_counter()
        once()
        _sync(model.device)
        times.append(time.perf_counter() - t0)
    p50 = statistics.median(times)
    p95 = float(np.percentile(times, 95))
    return BenchRow(
        model.engine,
        precision,
        str(model.device),
        batch,
        threads,
        batch / p50,
        p50 * 1e3,
        p95 * 1e3,
        _peak_mb(model.device),
        len(times),
    )


def run_bench(
    load: Callable[[str], LoadedModel],
    engines: list[str],
    batches: list[int],
    threads: int,
    precision: str = "fp32",
    runs: int = 10,
    progress: Callable[[BenchRow], None] | None = None,
    min_seconds: float = 1.0,
) -> list[BenchRow]:
    """`runs` timed runs per engine and batch, and more (at most 200) until `min_seconds` of
    them were timed; `min_seconds=0` times exactly `runs`."""
    torch.set_num_threads(threads)
    rows = []
    for engine in engines:
        model = load(engine)
        for batch in batches:
            row = bench_model(
                model, batch, threads, runs=runs, min_seconds=min_seconds, precision=precision
            )
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows
