"""`donkey bench`: frames/s per engine and batch size, as a table and optionally JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

import typer
from rich.table import Table

from donkey.cli.choices import (
    DEVICE_METAVAR,
    check_device,
    check_engines,
    check_precisions,
    listed,
)
from donkey.cli.choices import Engine as EngineChoice
from donkey.cli.common import (
    MODEL_HELP,
    check_threads,
    clock,
    console,
    handles_errors,
    out,
    parse_int_list,
    say,
    start_torch,
)
from donkey.model.errors import DonkeyError

# Frames are rendered for each batch before it is timed: a typo like 100000 would render for
# minutes and then ask for tens of GB. 1024 is 16x the export's default TensorRT profile maximum.
MAX_BENCH_BATCH = 1024


@handles_errors
def bench(
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Benchmark a config (a file or a bundled name) with random weights instead of a model.",
    ),
    engine: str | None = typer.Option(
        None,
        callback=check_engines,
        help=f"Comma-separated engines: {listed(EngineChoice)}. Default: torch,ort for a "
        "checkpoint or config; for an export folder the engines that run it (ort and openvino "
        "where installed; trt for engines).",
    ),
    batch_sizes: str = typer.Option(
        "1,8,32", "--batch-sizes", help=f"Comma-separated batch sizes, each 1-{MAX_BENCH_BATCH}."
    ),
    device: str = typer.Option("auto", metavar=DEVICE_METAVAR, callback=check_device),
    precision: str = typer.Option(
        "fp32",
        callback=check_precisions,
        help="Comma-separated: fp32, fp16 (torch autocast on CUDA; fp16 ONNX graphs for "
        "ort/trt), bf16 (torch autocast), int8 (ort, quantized ONNX). Each engine runs the "
        "precisions it has; every row gets PSNR and keypoint error against torch fp32.",
    ),
    allow_slow_precision: bool = typer.Option(
        False,
        "--allow-slow-precision",
        help="Run bf16 on a CPU without AVX512-BF16/AMX, or int8 on one with neither AVX2 nor "
        "VNNI, where they are slower than fp32 (see the CPU line printed).",
    ),
    threads: int = typer.Option(0, help="CPU threads for every engine (0: all cores)."),
    runs: int | None = typer.Option(
        None,
        help="Timed runs per engine and batch size, exactly (after 3 warm-ups). Default: 10, "
        "and more until 1 s was timed (at most 200).",
    ),
    json_path: Path | None = typer.Option(
        None, "--json", help="Also write the rows as a JSON list here."
    ),
    interleave: bool = typer.Option(
        False,
        "--interleave",
        help="Load every engine at once and take their timed runs in turn: the rows share a "
        "busy or drifting machine's slow and fast moments, so their ratios are fair. Peak MB "
        "is then the whole process's.",
    ),
) -> None:
    """Model-only throughput: keypoints of the driving batch + dense motion + generator, source
    encoding cached. Every engine runs with the same thread count, reported in each row."""
    # checked while parsing (check_engines)
    engines = engine.split(",") if engine else _default_engines(model if config is None else None)
    if model is not None and config is not None:
        raise DonkeyError("give --model or --config, not both")
    batches = parse_int_list(batch_sizes, "--batch-sizes", MAX_BENCH_BATCH)
    if runs is not None and runs < 1:
        raise DonkeyError(f"--runs must be at least 1, got {runs}")
    check_threads(threads)
    from donkey.runtime.variants import bench_variants

    # Which engine runs which precision, refused before PyTorch loads.
    variants = bench_variants(engines, precision.split(","))
    start_torch()
    import torch

    from donkey.app.models import load_model
    from donkey.artifacts.settings import BatchRange
    from donkey.model.checkpoint import save_checkpoint
    from donkey.model.config import load_config
    from donkey.model.files import atomic_output
    from donkey.model.networks import Networks
    from donkey.runtime.backend import LoadOptions
    from donkey.runtime.bench import run_bench
    from donkey.runtime.cpu_features import describe as cpu_describe

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

        settings = len(variants) * len(batches)
        started = time.perf_counter()
        done: list[int] = []

        def progress(r) -> None:
            done.append(1)
            elapsed = time.perf_counter() - started
            left = settings - len(done)
            eta = f", ETA {clock(elapsed / len(done) * left)}" if left else ""
            console.print(
                f"[{len(done)}/{settings}] {r.engine} {r.precision} batch {r.batch}: "
                f"{r.fps:.1f} frames/s ({r.runs} run{'' if r.runs == 1 else 's'}{eta})",
                highlight=False,
            )

        load_reference = None
        if target is None or not Path(target).is_dir():  # a checkpoint: torch fp32 is the truth
            load_reference = lambda: load_model(target, "torch", device, "fp32", options, say=say)  # noqa: E731
        rows = run_bench(
            load,
            variants,
            batches,
            threads,
            10 if runs is None else runs,
            progress=progress,
            # --runs: exactly that many; by default at least 1 s of timed runs per setting
            # (with --interleave: per batch size, all engines' runs together).
            min_seconds=1.0 if runs is None else 0.0,
            load_reference=load_reference,
            interleave=interleave,
        )
    table = Table(
        title=f"donkey bench ({threads} threads, {rows[0].device}, "
        f"{','.join(dict.fromkeys(r.precision for r in rows))})",
        caption=cpu_describe(),  # what bf16/int8 speeds depend on
    )
    columns = ("engine", "precision", "batch", "frames/s", "PSNR dB", "kp err", "p50 ms")
    for column in columns + ("p95 ms", "peak MB", "runs"):
        table.add_column(column, justify="left" if column in ("engine", "precision") else "right")
    for r in rows:
        table.add_row(
            r.engine,
            r.precision,
            str(r.batch),
            f"{r.fps:.1f}",
            "" if r.psnr_db is None else f"{r.psnr_db:.1f}",
            "" if r.kp_max_abs is None else f"{r.kp_max_abs:.4f}",
            f"{r.p50_ms:.1f}",
            f"{r.p95_ms:.1f}",
            f"{r.peak_mb:.0f}",
            str(r.runs),
        )
    out.print(table)
    out.print(_peak_note(rows, interleave))
    if load_reference is None:
        out.print("PSNR and kp err: only against a checkpoint's torch fp32 (--model CHECKPOINT)")
    if json_path is not None:
        with atomic_output(json_path) as tmp_file:
            tmp_file.write_text(json.dumps([r.as_dict() for r in rows], indent=1))
        out.print(f"wrote {json_path}")


def _default_engines(model: str | None) -> list[str]:
    """torch,ort for a checkpoint; for an export folder, the engines that can run it."""
    if not model or not Path(model).is_dir():
        return ["torch", "ort"]
    from donkey.artifacts.manifest import Manifest

    if Manifest.read(Path(model)).format == "trt":
        return ["trt"]
    return ["ort", "openvino"] if importlib.util.find_spec("openvino") else ["ort"]


def _peak_note(rows, interleave: bool = False) -> str:
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
