"""`donkey train`: Monkey-Net self-supervised training or Donkey-Net dual-reconstruction fine-tuning."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

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
    start_torch,
    tagged,
)
from donkey.model.errors import DonkeyError


def _progress(lines: bool = True) -> Progress | PlainProgress:
    """A live bar on a terminal; otherwise plain lines (rank 0, and only when `lines`)."""
    if not console.is_terminal:
        return PlainProgress(quiet=not (lines and _rank0()))
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not _rank0(),
    )


def _rank0() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _load_training_videos(dirs: list[Path], size: int, val_fraction: float):
    from donkey.data.datasets import list_videos, load_videos, select_split

    files = []
    for folder in dirs:
        files.extend(select_split(list_videos(folder), "train", val_fraction))
    if not files:
        raise DonkeyError("no training videos left after the validation split")
    with _progress() as bar:
        task = bar.add_task("reading videos", total=len(files), info="")
        videos, skipped = load_videos(
            files, size, progress=lambda i, n: bar.update(task, completed=i)
        )
    for note in skipped[:5]:
        tagged("skipped", "yellow", note)
    if len(skipped) > 5:
        tagged("skipped", "yellow", f"{len(skipped) - 5} more files")
    return videos


def _run_folder(name: str) -> Path:
    # Taken as text: Path("") is ".", and an empty -o (an unset shell variable) would put the
    # run's files among the user's own. An explicit "-o ." is the user's choice.
    if not name.strip():
        raise DonkeyError("-o is empty: name a run folder, e.g. -o runs/mine")
    output = Path(name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise DonkeyError(
            f"-o {ascii(str(output))}: the name is not valid UTF-8, which TensorBoard's files "
            "cannot live under; choose another name"
        ) from None
    return output


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
    output = _run_folder(output_name)
    limit = parse_duration(time_limit, "--time-limit") if time_limit is not None else None
    if resume is not None and overwrite:
        raise DonkeyError("--resume and --overwrite contradict each other; give one")
    from donkey.model.named_configs import resolve_config

    resolve_config(config)  # a wrong name or path is refused before PyTorch loads
    start_torch()
    from donkey.data.manifest import load_manifest
    from donkey.model.config import load_config
    from donkey.model.networks import check_model_size
    from donkey.train.trainer import (
        EMA_FILE,
        TrainOptions,
        check_run_dir,
        stopped_before_first_checkpoint,
    )
    from donkey.train.trainer import train as run_training

    sets = list(overrides or [])
    if steps is not None:
        sets.append(f"train.steps={steps}")
    if batch_size is not None:
        sets.append(f"train.batch_size={batch_size}")
    if workers is not None:
        sets.append(f"train.num_workers={workers}")
    cfg = load_config(config, sets)
    check_model_size(cfg.model, str(config))  # before any video is read
    resume_path = None
    if resume == "auto":
        candidate = output / "last.ckpt"
        resume_path = candidate if candidate.exists() else None
    elif resume:
        resume_path = Path(resume)
    if resume_path is not None and resume_path.is_dir():
        raise DonkeyError(
            f"--resume {resume_path}: is a folder; give its checkpoint "
            f"({resume_path / 'last.ckpt'}), or --resume auto with -o {resume_path}"
        )
    if resume_path is not None and not resume_path.is_file():
        raise DonkeyError(f"--resume {resume_path}: no such checkpoint file")
    if resume_path is not None and init is not None:
        # Resuming restores weights; --init only matters for a fresh start (so one command,
        # --init X --resume auto, both starts and continues a run).
        if _rank0():
            tagged("note:", "yellow", f"resuming {resume_path}: --init {init} is not used")
        init = None
    mode = cfg.train.mode
    if mode in ("dual", "mixed") and not pairs:
        raise DonkeyError(f"{config}: train.mode is {mode}, give --pairs MANIFEST")
    if mode in ("monkey", "mixed") and not data:
        raise DonkeyError(f"{config}: train.mode is {mode}, give --data DIR")
    # --resume auto where the run stopped before its first checkpoint: nothing to continue, so
    # it starts again (refusing sent the user back to the same command). Only when the log
    # proves it: a run past its first checkpoint whose last.ckpt was moved away is refused, so
    # that its weight average and log are not wiped.
    stopped_early = (
        resume == "auto"
        and resume_path is None
        and stopped_before_first_checkpoint(output, cfg.train.checkpoint_every)
    )
    check_run_dir(output, resume_path is not None or stopped_early, overwrite)
    if stopped_early and not overwrite and _rank0():
        tagged(
            "note:",
            "yellow",
            f"{output}: holds no last.ckpt (the run there stopped before its first checkpoint); "
            "starting from step 0",
        )
    videos = manifests = None
    if mode in ("dual", "mixed"):
        manifests = [load_manifest(p) for p in pairs]
    if mode in ("monkey", "mixed"):
        videos = _load_training_videos(data, cfg.model.image_size, val_fraction)
    debug = os.environ.get("DONKEY_DEBUG_DIR")
    start = {"step": 0}

    # Not on a terminal, on_step prints a line every train.log_every steps instead of a bar.
    with _progress(lines=False) as bar:
        task = bar.add_task("training", total=cfg.train.steps, info="")

        def on_step(step: int, record: dict[str, float]) -> None:
            if start["step"] == 0:
                start["step"] = step
            info = f"G {record['g_total']:.3f} rec {record['g_rec']:.3f} D {record['d_loss']:.3f}"
            bar.update(task, completed=step, info=info)
            if not console.is_terminal and _rank0() and step % cfg.train.log_every == 0:
                rate = (step - start["step"] + 1) / max(record["seconds"], 1e-9)
                stop = until or cfg.train.steps
                eta = f", ETA {clock((stop - step) / rate)}" if rate > 0 and step < stop else ""
                console.print(
                    f"step {step}/{cfg.train.steps} {info} ({rate:.2f} steps/s{eta})",
                    highlight=False,
                )

        result = run_training(
            cfg,
            videos,
            manifests,
            TrainOptions(
                run_dir=output,
                init=init,
                resume=resume_path,
                vgg19_weights=vgg19_weights,
                device=device,
                threads=threads,
                until=until,
                time_limit=limit,
                overwrite=overwrite or stopped_early,
                debug_dir=Path(debug) if debug else None,
                on_step=on_step,
            ),
        )
    if _rank0():
        done = result.step - start["step"] + 1 if result.history else 0
        rate = done / result.seconds if result.seconds > 0 else 0.0
        out.print(
            f"step {result.step}/{cfg.train.steps}; {done} steps in {result.seconds:.1f}s "
            f"({rate:.2f} steps/s); checkpoint: {output / 'last.ckpt'}"
        )
        for note in result.notes:
            out.print(f"note: {note}")
        if result.stopped == "time limit":
            out.print(f"stopped at --time-limit {time_limit} ({clock(limit)})")
        elif result.stopped == "SIGTERM" and result.step < cfg.train.steps:
            # Exit status 0 like --time-limit: the run saved and can go on; this line says so.
            out.print(
                f"stopped by SIGTERM at step {result.step} of {cfg.train.steps} (saved); "
                "continue with --resume auto"
            )
        weights = output / "last.ckpt"
        if cfg.train.ema > 0 and (output / EMA_FILE).exists():
            weights = output / EMA_FILE
            out.print(f"averaged weights (train.ema {cfg.train.ema:g}): {weights}")
        _next_steps(weights, result.step < cfg.train.steps, data, pairs)


def _next_steps(
    ckpt: Path, unfinished: bool, data: list[Path] | None, pairs: list[Path] | None
) -> None:
    """What to do with the checkpoint, as commands to copy."""
    model = shlex.quote(str(ckpt))
    if unfinished:
        out.print("next: continue to --steps with the same command and --resume auto")
    if data:
        out.print(
            f"next: donkey eval --model {model} --data {shlex.quote(str(data[0]))} --split val"
            "   # L1 on the held-out videos"
        )
    for manifest in pairs or []:  # donkey eval takes one manifest at a time
        out.print(f"next: donkey eval --model {model} --pairs {shlex.quote(str(manifest))}")
    out.print(f"next: donkey animate SOURCE DRIVING -o out.gif --model {model}")
    out.print(
        f"next: donkey export --model {model} -o exported/ --check"
        "   # then animate with --model exported/ --engine ort"
    )
