"""`donkey train`: Monkey-Net self-supervised training or Donkey-Net dual-reconstruction fine-tuning."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from donkey.cli.choices import DEVICE_METAVAR, check_device
from donkey.cli.common import (
    PlainProgress,
    check_threads,
    clock,
    console,
    handles_errors,
    out,
    parse_duration,
    tagged,
)
from donkey.model.errors import DonkeyError

if TYPE_CHECKING:
    from donkey.app.training import TrainDone, TrainPlan


def _check_numbers(
    threads: int | None,
    batch_size: int | None,
    workers: int | None,
    steps: int | None,
    until: int | None,
    val_fraction: float,
) -> None:
    """Range checks before any work, each a one-line error naming the option."""
    check_threads(threads)
    if batch_size is not None and batch_size < 1:
        raise DonkeyError(f"--batch-size must be >= 1, got {batch_size}")
    if workers is not None and workers < 0:
        raise DonkeyError(f"--workers must be >= 0, got {workers}")
    if steps is not None and steps < 1:
        raise DonkeyError(f"--steps must be >= 1, got {steps}")
    if until is not None and until < 1:
        raise DonkeyError(f"--until must be >= 1, got {until}")
    if until is not None and steps is not None and until > steps:
        raise DonkeyError(f"--until {until} is past --steps {steps}")
    if not (0.0 <= val_fraction < 1.0):
        raise DonkeyError(f"--val-fraction must be in [0, 1), got {val_fraction}")


@handles_errors
def train(
    config: Path = typer.Argument(
        ...,
        help="YAML config (model + training settings): a file, or a bundled config's name "
        "(small, small128, small-donkey, tiny, mgif, donkey, ablation; `donkey configs` lists "
        "them).",
    ),
    output_name: str = typer.Option(
        ...,
        "-o",
        "--output",
        metavar="DIR",
        help="Run folder: last.ckpt, log.jsonl, tensorboard/, samples/.",
    ),
    data: list[Path] | None = typer.Option(
        None, "--data", help="Folder of training videos (repeatable). Monkey and mixed modes."
    ),
    pairs: list[Path] | None = typer.Option(
        None,
        "--pairs",
        help="Pairs manifest (JSON) from donkey pairs or donkey synth --pairs (repeatable). "
        "Dual and mixed modes.",
    ),
    steps: int | None = typer.Option(
        None,
        help="Total optimisation steps (a resumed run stops where an uninterrupted one would).",
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", "-b", help="Samples per step and process."
    ),
    until: int | None = typer.Option(
        None,
        help="Stop at this step and save (the schedule still follows --steps); continue later with --resume.",
    ),
    time_limit: str | None = typer.Option(
        None,
        "--time-limit",
        metavar="DURATION",
        help="Stop and save after this much training (90s, 50m, 1.5h; reading the data not "
        "counted); continue later with --resume. With --until, whichever comes first.",
    ),
    init: Path | None = typer.Option(
        None, help="Start from these weights (step 0, fresh optimisers)."
    ),
    resume: str | None = typer.Option(
        None,
        help="Continue a run exactly: a checkpoint with training state, or 'auto' for OUTPUT/last.ckpt if it exists.",
    ),
    overrides: list[str] | None = typer.Option(
        None, "--set", help="Override a config value: key.path=value (repeatable)."
    ),
    vgg19_weights: Path | None = typer.Option(
        None, "--vgg19-weights", help="ImageNet VGG-19 state dict for the perceptual loss."
    ),
    val_fraction: float = typer.Option(
        0.1, help="Fraction of --data videos held out by file-name hash (see donkey eval --split)."
    ),
    device: str = typer.Option(
        "auto",
        metavar=DEVICE_METAVAR,
        callback=check_device,
        help="cuda:N picks one GPU; under torchrun give cuda (or auto): each process takes "
        "its LOCAL_RANK GPU.",
    ),
    threads: int | None = typer.Option(
        None, help="CPU threads for PyTorch (default: PyTorch's choice)."
    ),
    workers: int | None = typer.Option(
        None, help="Data loader worker processes (config train.num_workers)."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Start from step 0 in a run folder that holds a previous run (replacing its "
        "last.ckpt, log.jsonl, TensorBoard events and sample grids). Without it (or --resume) "
        "such a folder is refused.",
    ),
) -> None:
    """Train a model. Monkey mode learns from single videos (--data), dual mode from GIF pairs
    (--pairs), mixed mode alternates the two (train.pair_every, train.pair_steps).

    Multi-GPU / multi-node: run the same command under `torchrun --nproc_per_node N`.
    """
    _check_numbers(threads, batch_size, workers, steps, until, val_fraction)
    from donkey.app import training

    request = training.TrainRequest(
        config=config,
        run_dir=training.run_folder(output_name),
        time_limit=parse_duration(time_limit, "--time-limit") if time_limit is not None else None,
        data=tuple(data or ()),
        pairs=tuple(pairs or ()),
        steps=steps,
        batch_size=batch_size,
        workers=workers,
        until=until,
        init=init,
        resume=resume,
        overrides=tuple(overrides or ()),
        vgg19_weights=vgg19_weights,
        val_fraction=val_fraction,
        device=device,
        threads=threads,
        overwrite=overwrite,
    )
    plan = training.plan_run(request, say=_note)
    bars = _Bars(plan)
    events = training.TrainEvents(say=_note, reading=bars.reading, training=bars.training)
    done = training.train_run(plan, events)
    if plan.main:
        _report(plan, done, time_limit)


def _note(label: str, message: str) -> None:
    tagged(label, "yellow", message)


def _progress(show: bool, lines: bool = True) -> Progress | PlainProgress:
    """A live bar on a terminal; otherwise plain lines (when `show`, and only when `lines`)."""
    if not console.is_terminal:
        return PlainProgress(quiet=not (lines and show))
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not show,
    )


class _Bars:
    """The reading bar, then the training bar; on rank 0 only."""

    def __init__(self, plan: TrainPlan) -> None:
        self.plan = plan
        self.steps = 0  # run by this command (a resumed run starts past 0)

    @contextmanager
    def reading(self, total: int) -> Iterator[Callable[[int], None]]:
        with _progress(self.plan.main) as bar:
            task = bar.add_task("reading videos", total=total, info="")
            yield lambda done: bar.update(task, completed=done)

    @contextmanager
    def training(self, total: int) -> Iterator[Callable[[int, dict[str, float]], None]]:
        # Not on a terminal, a line every train.log_every steps instead of a bar.
        with _progress(self.plan.main, lines=False) as bar:
            task = bar.add_task("training", total=total, info="")
            yield lambda step, record: self._step(bar, task, step, record)

    def _step(
        self, bar: Progress | PlainProgress, task: int, step: int, record: dict[str, float]
    ) -> None:
        t = self.plan.config.train
        self.steps += 1
        info = f"G {record['g_total']:.3f} rec {record['g_rec']:.3f} D {record['d_loss']:.3f}"
        bar.update(task, completed=step, info=info)
        if not console.is_terminal and self.plan.main and step % t.log_every == 0:
            rate = self.steps / max(record["seconds"], 1e-9)
            stop = self.plan.until or t.steps
            eta = f", ETA {clock((stop - step) / rate)}" if rate > 0 and step < stop else ""
            console.print(
                f"step {step}/{t.steps} {info} ({rate:.2f} steps/s{eta})", highlight=False
            )


def _report(plan: TrainPlan, done: TrainDone, time_limit: str | None) -> None:
    """Where the run got to, why it stopped, and what to do next."""
    result, steps = done.result, plan.config.train.steps
    ran = len(result.history)  # one record per step this command ran
    rate = ran / result.seconds if result.seconds > 0 else 0.0
    out.print(
        f"step {result.step}/{steps}; {ran} steps in {result.seconds:.1f}s "
        f"({rate:.2f} steps/s); checkpoint: {plan.checkpoint}"
    )
    for note in result.notes:
        out.print(f"note: {note}")
    if result.stopped == "time limit":
        out.print(f"stopped at --time-limit {time_limit} ({clock(plan.time_limit)})")
    elif result.stopped == "SIGTERM" and result.step < steps:
        # Exit status 0 like --time-limit: the run saved and can go on; this line says so.
        out.print(
            f"stopped by SIGTERM at step {result.step} of {steps} (saved); "
            "continue with --resume auto"
        )
    if done.weights != plan.checkpoint:
        out.print(f"averaged weights (train.ema {plan.config.train.ema:g}): {done.weights}")
    for line in done.next_steps:
        out.print(line)
