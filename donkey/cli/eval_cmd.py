"""`donkey eval`: reconstruction and transfer L1 against the identity baseline."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from donkey.cli.choices import DEVICE_METAVAR, ENGINE_HELP, Engine, Motion, Split, check_device
from donkey.cli.common import (
    MODEL_HELP,
    fail,
    handles_errors,
    max_frame_pixels_option,
    max_frames_option,
    max_pixels_option,
    out,
    progress_bar,
    read_budget,
    say,
    tagged,
)

if TYPE_CHECKING:
    from rich.progress import Progress

    from donkey.app.evaluation import Evaluation
    from donkey.cli.common import PlainProgress


@handles_errors
def evaluate(
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    data: Path | None = typer.Option(
        None, "--data", help="Folder of test videos (reconstruction L1)."
    ),
    pairs: Path | None = typer.Option(
        None, "--pairs", help="Pairs manifest (transfer L1 against the paired ground truth)."
    ),
    split: Split = typer.Option(
        Split.all, help="Which --data videos: all, val (held out by `donkey train`) or train."
    ),
    val_fraction: float = typer.Option(
        0.1, help="Must match the training run's --val-fraction for --split val/train."
    ),
    limit: int | None = typer.Option(None, help="Evaluate at most this many videos / pairs."),
    engine: Engine | None = typer.Option(None, help=ENGINE_HELP),
    device: str = typer.Option("auto", metavar=DEVICE_METAVAR, callback=check_device),
    batch_size: int = typer.Option(16, "--batch-size", "-b", help="Frames per inference batch."),
    eval_size: int | None = typer.Option(
        None,
        "--size",
        min=8,
        max=1024,
        help="Compare at N x N pixels: targets read from the files at N, predictions resized to "
        "N (bilinear). Use it to compare models of different sizes. Default: the model's size.",
    ),
    transfer_mode: Motion = typer.Option(Motion.relative, help="Keypoint mode for transfer."),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object (l1, identity_l1, videos, ...)."
    ),
    details: bool = typer.Option(False, help="With --json: include per-video numbers."),
    max_pixels: str | None = max_pixels_option(),
    max_frames: str | None = max_frames_option(),
    max_frame_pixels: str | None = max_frame_pixels_option(),
) -> None:
    """Mean L1 (pixels in [0, 1]) of the model and of the identity baseline (output = source).

    Reconstruction: frame 0 of each video is the source and every frame drives, with absolute
    keypoints. Transfer (with --pairs): B posed like A's first frame is the source, A drives,
    B resampled to A is the target.

    Under `torchrun --nproc_per_node N -m donkey eval ...` each process takes a share of the
    videos and pairs; rank 0 prints the same numbers one process would.
    """
    from donkey.app.evaluation import EvalEvents, EvalRequest, evaluate

    request = EvalRequest(
        model=model,
        data=data,
        pairs=pairs,
        split=split,
        val_fraction=val_fraction,
        limit=limit,
        engine=engine,
        device=device,
        batch_size=batch_size,
        eval_size=eval_size,
        transfer_mode=transfer_mode,
    )
    request = replace(request, budget=read_budget(max_pixels, max_frames, max_frame_pixels))
    with progress_bar() as bar:
        done = evaluate(request, EvalEvents(say=say, skipped=_skipped, task=_tasks(bar)))
    if as_json:
        out.print_json(json.dumps(done.as_json(details)))
    else:
        _print_table(done)
        for line in done.next_steps():
            out.print(line)
    if done.skipped:  # means over fewer items than asked for are printed; the exit code says so
        fail(f"{len(done.skipped)} skipped (listed above); the means cover the rest")


def _skipped(note: str) -> None:
    tagged("skipped", "yellow", note)


def _tasks(bar: Progress | PlainProgress) -> Callable[[str, int], Callable[[int], None]]:
    """EvalEvents.task over the progress bar: one task per description, updated by count."""

    def task(description: str, total: int) -> Callable[[int], None]:
        task_id = bar.add_task(description, total=total)
        return lambda done: bar.update(task_id, completed=done)

    return task


def _print_table(done: Evaluation) -> None:
    result, at, size = done.result, done.at, done.size
    pixels = f"{at}x{at}, model at {size}x{size}" if at else f"{size}x{size}"
    table = Table(title=f"{done.model.name} ({done.engine} on {done.device}, {pixels})")
    for column in ("metric", "model", "identity baseline", "items"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    if result.l1 is not None:
        table.add_row(
            f"reconstruction L1 ({done.split})",
            f"{result.l1:.4f}",
            f"{result.identity_l1:.4f}",
            str(result.videos),
        )
    if result.transfer_l1 is not None:
        table.add_row(
            "transfer L1",
            f"{result.transfer_l1:.4f}",
            f"{result.transfer_identity_l1:.4f}",
            str(result.pairs),
        )
    out.print(table)
