"""`donkey train` as two calls: `plan_run` decides what the run will do, `train_run` does it.

`plan_run(request, say)` settles everything that needs no video read, once: the config and its
overrides, continuing a checkpoint (`--resume`, `--resume auto`, a run stopped before its first
checkpoint), `--init`, the run folder, and the inputs the config's train.mode reads. It returns
a frozen `TrainPlan`. `train_run(plan, events)` reads the data and trains
(`donkey.train.trainer`), and returns what happened; it prints nothing itself: notes and
progress go through `events`, which the command line turns into lines and bars.

Under torchrun every rank plans and runs alike; only rank 0 (`plan.main`) tells the user.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from donkey.model.errors import DonkeyError

if TYPE_CHECKING:
    from donkey.data.datasets import Video
    from donkey.model.config import Config
    from donkey.train.trainer import TrainResult

Say = Callable[[str, str], None]
OnStep = Callable[[int, dict[str, float]], None]

# The inputs each train.mode reads: single videos (--data), pairs manifests (--pairs).
PAIR_MODES = ("dual", "mixed")
VIDEO_MODES = ("monkey", "mixed")

# A run folder holding one of these holds a previous run.
RUN_MARKERS = ("last.ckpt", "log.jsonl")


@dataclass(frozen=True)
class TrainRequest:
    """Everything `donkey train` was asked, as parsed; the numbers already range-checked."""

    config: Path
    run_dir: Path
    data: tuple[Path, ...] = ()
    pairs: tuple[Path, ...] = ()
    steps: int | None = None
    batch_size: int | None = None
    workers: int | None = None
    until: int | None = None
    time_limit: float | None = None  # seconds
    init: Path | None = None
    resume: str | None = None  # a checkpoint, or "auto"
    overrides: tuple[str, ...] = ()
    vgg19_weights: Path | None = None
    val_fraction: float = 0.1
    device: str = "auto"
    threads: int | None = None
    overwrite: bool = False


@dataclass(frozen=True)
class TrainPlan:
    """What `train_run` will do, decided once."""

    config: Config
    run_dir: Path
    resume: Path | None  # the checkpoint the run continues
    init: Path | None  # weights a fresh start begins from (None when resuming)
    replace: bool  # a fresh start over a previous run's files
    data: tuple[Path, ...]
    pairs: tuple[Path, ...]
    val_fraction: float
    vgg19_weights: Path | None
    device: str
    threads: int | None
    until: int | None
    time_limit: float | None
    debug_dir: Path | None  # per-rank weights and sample ids, for the multi-process test
    main: bool  # rank 0 (or the only process): the one that tells the user

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "last.ckpt"


def _quiet(*_: object) -> None:
    return None


@contextmanager
def _no_bar(_total: int) -> Iterator[Callable[..., None]]:
    yield _quiet


@dataclass
class TrainEvents:
    """How the caller hears of the run. `say(label, message)`: a note or a skipped file;
    `reading(total)`: a context around reading the videos, giving `update(done)`;
    `training(total)`: a context around the training loop, giving `on_step(step, record)`."""

    say: Say = _quiet
    reading: Callable[[int], AbstractContextManager[Callable[[int], None]]] = _no_bar
    training: Callable[[int], AbstractContextManager[OnStep]] = _no_bar


@dataclass(frozen=True)
class TrainDone:
    """The trainer's result, the weights to use next (the weight average when train.ema wrote
    one, else last.ckpt) and what to do with them, as commands to copy."""

    result: TrainResult
    weights: Path
    next_steps: list[str] = field(default_factory=list)


def run_folder(name: str) -> Path:
    """-o as a run folder: refused when empty or not UTF-8."""
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


def plan_run(request: TrainRequest, say: Say = _quiet) -> TrainPlan:
    """Checks the request and decides how the run starts; notes go through `say` on rank 0."""
    if request.resume is not None and request.overwrite:
        raise DonkeyError("--resume and --overwrite contradict each other; give one")
    from donkey.model.named_configs import resolve_config

    resolve_config(request.config)  # a wrong name or path is refused before PyTorch loads
    from donkey.app.process import start_torch

    start_torch()
    from donkey.model.config import load_config
    from donkey.model.networks import check_model_size
    from donkey.runtime.distributed import ranks_from_env
    from donkey.train.trainer import stopped_before_first_checkpoint

    main = ranks_from_env().main
    cfg = load_config(request.config, _settings(request))
    check_model_size(cfg.model, str(request.config))  # before any video is read
    resume, init = _resume_path(request), request.init
    if resume is not None and init is not None:
        # Resuming restores weights; --init only matters for a fresh start (so one command,
        # --init X --resume auto, both starts and continues a run).
        if main:
            say("note:", f"resuming {resume}: --init {init} is not used")
        init = None
    _check_inputs(request, cfg.train.mode)
    # --resume auto where the run stopped before its first checkpoint: nothing to continue, so
    # it starts again (refusing sent the user back to the same command). Only when the log
    # proves it: a run past its first checkpoint whose last.ckpt was moved away is refused, so
    # that its weight average and log are not wiped.
    run_dir = request.run_dir
    stopped_early = (
        request.resume == "auto"
        and resume is None
        and stopped_before_first_checkpoint(run_dir, cfg.train.checkpoint_every)
    )
    check_run_dir(run_dir, resume is not None or stopped_early, request.overwrite)
    if stopped_early and not request.overwrite and main:
        say(
            "note:",
            f"{run_dir}: holds no last.ckpt (the run there stopped before its first "
            "checkpoint); starting from step 0",
        )
    debug = os.environ.get("DONKEY_DEBUG_DIR")
    return TrainPlan(
        config=cfg,
        run_dir=run_dir,
        resume=resume,
        init=init,
        replace=request.overwrite or stopped_early,
        data=request.data,
        pairs=request.pairs,
        val_fraction=request.val_fraction,
        vgg19_weights=request.vgg19_weights,
        device=request.device,
        threads=request.threads,
        until=request.until,
        time_limit=request.time_limit,
        debug_dir=Path(debug) if debug else None,
        main=main,
    )


def _settings(request: TrainRequest) -> list[str]:
    """--set overrides, then the options that stand for config values."""
    sets = list(request.overrides)
    if request.steps is not None:
        sets.append(f"train.steps={request.steps}")
    if request.batch_size is not None:
        sets.append(f"train.batch_size={request.batch_size}")
    if request.workers is not None:
        sets.append(f"train.num_workers={request.workers}")
    return sets


def _resume_path(request: TrainRequest) -> Path | None:
    """The checkpoint to continue: --resume auto takes RUN_DIR/last.ckpt when there is one."""
    if request.resume == "auto":
        candidate = request.run_dir / "last.ckpt"
        resume = candidate if candidate.exists() else None
    elif request.resume:
        resume = Path(request.resume)
    else:
        return None
    if resume is not None and resume.is_dir():
        raise DonkeyError(
            f"--resume {resume}: is a folder; give its checkpoint "
            f"({resume / 'last.ckpt'}), or --resume auto with -o {resume}"
        )
    if resume is not None and not resume.is_file():
        raise DonkeyError(f"--resume {resume}: no such checkpoint file")
    return resume


def _check_inputs(request: TrainRequest, mode: str) -> None:
    """The inputs train.mode reads were given (before any video is read)."""
    if mode in PAIR_MODES and not request.pairs:
        raise DonkeyError(f"{request.config}: train.mode is {mode}, give --pairs MANIFEST")
    if mode in VIDEO_MODES and not request.data:
        raise DonkeyError(f"{request.config}: train.mode is {mode}, give --data DIR")


def check_run_dir(run_dir: Path, resuming: bool, overwrite: bool) -> None:
    """A fresh start never silently replaces a previous run's checkpoint and log."""
    if run_dir.exists() and not run_dir.is_dir():
        raise DonkeyError(f"{run_dir}: exists and is not a folder")
    if resuming or overwrite:
        return
    found = [name for name in RUN_MARKERS if (run_dir / name).exists()]
    if found:
        raise DonkeyError(
            f"{run_dir}: holds a previous run ({', '.join(found)}); continue it with "
            "--resume auto, or start again from step 0 with --overwrite"
        )


def train_run(plan: TrainPlan, events: TrainEvents | None = None) -> TrainDone:
    """Reads the plan's data and trains to train.steps (or --until, --time-limit, SIGTERM)."""
    from donkey.data.manifest import load_manifest
    from donkey.train.trainer import EMA_FILE, TrainOptions, train

    events = events or TrainEvents()
    cfg = plan.config
    manifests = [load_manifest(p) for p in plan.pairs] if cfg.train.mode in PAIR_MODES else None
    videos = _read_videos(plan, events) if cfg.train.mode in VIDEO_MODES else None
    with events.training(cfg.train.steps) as on_step:
        result = train(
            cfg,
            videos,
            manifests,
            TrainOptions(
                run_dir=plan.run_dir,
                init=plan.init,
                resume=plan.resume,
                vgg19_weights=plan.vgg19_weights,
                device=plan.device,
                threads=plan.threads,
                until=plan.until,
                time_limit=plan.time_limit,
                overwrite=plan.replace,
                debug_dir=plan.debug_dir,
                on_step=on_step,
            ),
        )
    weights = plan.checkpoint
    if cfg.train.ema > 0 and (plan.run_dir / EMA_FILE).exists():
        weights = plan.run_dir / EMA_FILE
    unfinished = result.step < cfg.train.steps
    return TrainDone(result, weights, next_steps(weights, unfinished, plan.data, plan.pairs))


def _read_videos(plan: TrainPlan, events: TrainEvents) -> list[Video]:
    """The training split of every --data folder, read at the model's size."""
    from donkey.data.datasets import list_videos, load_videos, select_split

    files = []
    for folder in plan.data:
        files.extend(select_split(list_videos(folder), "train", plan.val_fraction))
    if not files:
        raise DonkeyError("no training videos left after the validation split")
    with events.reading(len(files)) as update:
        videos, skipped = load_videos(
            files, plan.config.model.image_size, progress=lambda i, n: update(i)
        )
    for note in skipped[:5]:
        events.say("skipped", note)
    if len(skipped) > 5:
        events.say("skipped", f"{len(skipped) - 5} more files")
    return videos


def next_steps(
    weights: Path, unfinished: bool, data: Sequence[Path], pairs: Sequence[Path]
) -> list[str]:
    """What to do with the weights, as commands to copy."""
    model = shlex.quote(str(weights))
    lines = []
    if unfinished:
        lines.append("next: continue to --steps with the same command and --resume auto")
    if data:
        lines.append(
            f"next: donkey eval --model {model} --data {shlex.quote(str(data[0]))} --split val"
            "   # L1 on the held-out videos"
        )
    for manifest in pairs:  # donkey eval takes one manifest at a time
        lines.append(f"next: donkey eval --model {model} --pairs {shlex.quote(str(manifest))}")
    lines.append(f"next: donkey animate SOURCE DRIVING -o out.gif --model {model}")
    lines.append(
        f"next: donkey export --model {model} -o exported/ --check"
        "   # then animate with --model exported/ --engine ort"
    )
    return lines
