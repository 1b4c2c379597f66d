"""`donkey bench`: frames/s per engine and batch size, as a table and optionally JSON."""

from __future__ import annotations

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
    from donkey.app.benchmark import default_engines

    # checked while parsing (check_engines)
    engines = engine.split(",") if engine else default_engines(model if config is None else None)
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
    from donkey.app.benchmark import bench as run_bench
    from donkey.app.benchmark import write_rows

    result = run_bench(
        model,
        config,
        variants,
        batches,
        device,
        threads,
        runs,
        allow_slow_precision,
        interleave,
        progress=_progress,
        say=say,
    )
    out.print(_table(result.rows, result.threads))
    for note in result.notes:
        out.print(note)
    if json_path is not None:
        write_rows(json_path, result.rows)
        out.print(f"wrote {json_path}")


def _progress(row, done: int, total: int, eta: float | None) -> None:
    left = "" if eta is None else f", ETA {clock(eta)}"
    console.print(
        f"[{done}/{total}] {row.engine} {row.precision} batch {row.batch}: "
        f"{row.fps:.1f} frames/s ({row.runs} run{'' if row.runs == 1 else 's'}{left})",
        highlight=False,
    )


def _table(rows, threads: int) -> Table:
    from donkey.runtime.cpu_features import describe as cpu_describe

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
    return table
