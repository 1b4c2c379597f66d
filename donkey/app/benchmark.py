"""`donkey bench`: frames/s of every engine x precision x batch size, loaded through the
build-once cache (donkey/app/models.py), with PSNR and keypoint error against a checkpoint's
PyTorch fp32 (runtime/bench.py times and compares).

PyTorch is imported inside the functions: `default_engines` runs before the CLI starts it."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from donkey.runtime.bench import BenchRow

# A row was timed: the row, how many are done, how many in all, seconds left (None: done).
Progress = Callable[["BenchRow", int, int, "float | None"], None]


@dataclass
class BenchResult:
    rows: list[BenchRow]
    threads: int
    notes: list[str]  # what the numbers mean: peak memory, where PSNR comes from


def default_engines(model: str | None) -> list[str]:
    """torch,ort for a checkpoint; for an export folder, the engines that can run it."""
    from donkey.core.engines import CHECKPOINT, ENGINES, installed

    kind = CHECKPOINT
    if model and Path(model).is_dir():
        from donkey.artifacts.manifest import Manifest

        kind = Manifest.read(Path(model)).format
    # A checkpoint: PyTorch, and ONNX Runtime through the cache (the `make bench` pair); a
    # folder: the first engine that loads its kind, and the others that are installed.
    if kind == CHECKPOINT:
        return ["torch", "ort"]
    names = [name for name, spec in ENGINES.items() if spec.runs == kind]
    return [name for i, name in enumerate(names) if i == 0 or installed(name)]


def bench(
    model: str | None,
    config: Path | None,
    variants: Sequence[tuple[str, str]],
    batches: Sequence[int],
    device: str = "auto",
    threads: int = 0,
    runs: int | None = None,
    allow_slow_precision: bool = False,
    interleave: bool = False,
    progress: Progress | None = None,
    say: Callable[[str, str], None] | None = None,
) -> BenchResult:
    """Rows for every (engine, precision) of `variants` and batch size, in that order, on
    `model` (a checkpoint or export folder; default: the bundled model) or on `config` with
    random weights. `threads` 0: all cores. `runs`: exactly that many timed runs; None: 10,
    and more until 1 s was timed. `say` announces builds into the cache."""
    import torch

    from donkey.app.models import load_model
    from donkey.artifacts.settings import BatchRange
    from donkey.model.checkpoint import save_checkpoint
    from donkey.model.config import load_config
    from donkey.model.networks import Networks
    from donkey.runtime.backend import LoadOptions
    from donkey.runtime.bench import run_bench

    threads = threads or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="donkey-bench-") as tmp:
        target = model
        if config is not None:
            torch.manual_seed(0)
            target = str(
                save_checkpoint(Path(tmp) / "random.ckpt", Networks(load_config(config).model))
            )
        options = LoadOptions(threads=threads, allow_slow_precision=allow_slow_precision)
        low, top = min(batches), max(batches)
        # Engines cover exactly the benchmarked batch sizes, tuned for 8 where it is in range.
        engine_batch = BatchRange(low, min(max(8, low), top), top)

        def load(name: str, variant: str):
            return load_model(target, name, device, variant, options, batch=engine_batch, say=say)

        load_reference = None
        if target is None or not Path(target).is_dir():  # a checkpoint: torch fp32 is the truth
            load_reference = lambda: load_model(target, "torch", device, "fp32", options, say=say)  # noqa: E731
        rows = run_bench(
            load,
            list(variants),
            list(batches),
            threads,
            10 if runs is None else runs,
            progress=_counted(progress, len(variants) * len(batches)),
            # --runs: exactly that many; by default at least 1 s of timed runs per setting
            # (with --interleave: per batch size, all engines' runs together).
            min_seconds=1.0 if runs is None else 0.0,
            load_reference=load_reference,
            interleave=interleave,
        )
    notes = [peak_note(rows, interleave)]
    if load_reference is None:
        notes.append("PSNR and kp err: only against a checkpoint's torch fp32 (--model CHECKPOINT)")
    return BenchResult(rows, threads, notes)


def _counted(progress: Progress | None, total: int) -> Callable[[BenchRow], None] | None:
    """run_bench's per-row callback, with the count and the time left that `progress` gets."""
    if progress is None:
        return None
    started = time.perf_counter()
    done = 0

    def counted(row: BenchRow) -> None:
        nonlocal done
        done += 1
        left = total - done
        elapsed = time.perf_counter() - started
        progress(row, done, total, elapsed / done * left if left else None)

    return counted


def peak_note(rows: Sequence[BenchRow], interleave: bool = False) -> str:
    """What 'peak MB' measured: it is not the model's size."""
    where = []
    if any(r.device.startswith("cuda") for r in rows):
        where.append(
            "CUDA rows: PyTorch's allocator peak (memory TensorRT and ONNX Runtime allocate "
            "themselves is not included)"
        )
    if any(r.device == "cpu" for r in rows):
        scope = ""
        if any(r.peak_scope != "timed runs" for r in rows) and not interleave:
            scope = " (so far: not resettable here)"
        where.append(
            f"CPU rows: the whole process's peak resident memory{scope}, Python, PyTorch and "
            "the libraries loaded so far included"
        )
    compared = any(r.psnr_db is not None for r in rows)
    after = "; the fp32 reference runs after them" if compared else ""
    if interleave:
        return (
            f"peak MB: --interleave held every engine at once, so each row's peak is the whole "
            f"run's so far{after}. {'; '.join(where)}."
        )
    return f"peak MB: during each row's warm-up and timed runs only{after}. {'; '.join(where)}."


def write_rows(path: Path, rows: Sequence[BenchRow]) -> None:
    """The rows as a JSON list, written atomically."""
    from donkey.model.files import atomic_output

    with atomic_output(path) as tmp_file:
        tmp_file.write_text(json.dumps([r.as_dict() for r in rows], indent=1))
