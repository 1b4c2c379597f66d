"""Shared CLI plumbing: one-line errors instead of tracebacks, the console, shared options."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from donkey.model.errors import DonkeyError

# Tables stay readable in logs and pipes, where rich would otherwise assume 80 columns.
_WIDTH = None if sys.stdout.isatty() else 140
# markup=False: file names and messages such as "donkey[trt]" print as they are.
console = Console(
    stderr=True, width=None if sys.stderr.isatty() else 140, soft_wrap=True, markup=False
)
out = Console(width=_WIDTH, soft_wrap=True, markup=False)
F = TypeVar("F", bound=Callable[..., Any])


def tagged(label: str, style: str, message: str) -> None:
    """One stderr line: a coloured label, then the message printed literally."""
    console.print(Text.assemble((label, style), " ", message), highlight=False)


def say(label: str, message: str) -> None:
    """What the application layer announces (a build into the cache): one cyan-labelled line."""
    tagged(label, "cyan", message)


def fail(message: str, code: int = 1) -> None:
    tagged("error:", "bold red", message)
    raise typer.Exit(code)


def handles_errors(fn: F) -> F:
    """Turns DonkeyError (and Ctrl-C) into a one-line message and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DonkeyError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(130) from None
        except MemoryError:
            fail("out of memory; try a smaller --batch-size")
        except OSError as exc:
            # A file-system refusal nothing below turned into a DonkeyError: still one line.
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}")

    return wrapper  # type: ignore[return-value]


def start_torch() -> None:
    """PyTorch with the process settings of a command that runs a model (donkey.app.process)."""
    from donkey.app.process import start_torch as start

    start()


def read_budget(max_pixels: str | None, max_frames: str | None, max_frame_pixels: str | None):  # noqa: ANN201
    """The --max-pixels / --max-frames / --max-frame-pixels options over the environment's
    budget (data.budget.Budget); None when none is given (reads then take the environment's)."""
    from dataclasses import replace

    from donkey.data.budget import Budget, parse_count

    if max_pixels is None and max_frames is None and max_frame_pixels is None:
        return None
    budget = Budget.from_env()
    for value, option, name in (
        (max_pixels, "--max-pixels", "max_pixels"),
        (max_frames, "--max-frames", "max_frames"),
        (max_frame_pixels, "--max-frame-pixels", "max_frame_pixels"),
    ):
        if value is not None:
            budget = replace(budget, **{name: parse_count(value, option)})
    return budget


def max_pixels_option():
    """The read budget's options, shared by the commands that read media files a user names."""
    return typer.Option(
        None,
        "--max-pixels",
        help="Read budget per input file: frames x height x width (default 1e9; env DONKEY_MAX_PIXELS).",
    )


def max_frames_option():
    return typer.Option(
        None,
        "--max-frames",
        help="Read budget per input file: frames (default 10000; env DONKEY_MAX_FRAMES).",
    )


def max_frame_pixels_option():
    return typer.Option(
        None,
        "--max-frame-pixels",
        help="Read budget: height x width of one frame (default 5e7; env DONKEY_MAX_FRAME_PIXELS).",
    )


# More threads than this is a typo, not a machine: asking PyTorch for 100000 threads failed
# with a MemoryError that read as "out of memory".
THREADS_MAX = 1024


def check_seed(seed: int, option: str = "--seed") -> int:
    """train.seed's bound: a larger seed was an OverflowError traceback in torch.manual_seed."""
    from donkey.model.config import SEED_MAX

    if not 0 <= seed <= SEED_MAX:
        raise DonkeyError(f"{option} must be an integer in [0, {SEED_MAX}], got {seed}")
    return seed


def check_threads(threads: int | None, option: str = "--threads") -> None:
    if threads is not None and not 0 <= threads <= THREADS_MAX:
        raise DonkeyError(
            f"{option} must be in [1, {THREADS_MAX}] (or 0 for PyTorch's default), got {threads}"
        )


def parse_int_list(text: str, option: str, most: int | None = None) -> list[int]:
    """Distinct positive integers up to `most`, in the order given ("1,8,32"); an empty item
    ("8,,32") is refused rather than skipped, a repeated one rather than timed twice."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise DonkeyError(f"{option} expects comma-separated integers, got {text!r}") from None
    if min(values) < 1:
        raise DonkeyError(f"{option} expects positive integers, got {text!r}")
    if most is not None and max(values) > most:
        raise DonkeyError(f"{option} values must be at most {most}, got {text!r}")
    if len(set(values)) != len(values):
        raise DonkeyError(f"{option} lists a value twice: {text!r}")
    return values


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, option: str) -> float:
    """'90s', '50m', '1.5h' or a number of seconds -> seconds (> 0, finite)."""
    raw = text.strip().lower()
    scale = _UNITS.get(raw[-1:], None)
    number = raw[:-1] if scale is not None else raw
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        seconds = float("nan")
    if not (0 < seconds < float("inf")):
        raise DonkeyError(f"{option} expects a duration like 90s, 50m or 1.5h, got {text!r}")
    return seconds


MODEL_HELP = (
    "Checkpoint (.ckpt/.safetensors), ONNX export folder or TensorRT engine folder. "
    "Default: the bundled model."
)


def progress_bar() -> Progress | PlainProgress:
    """The commands' progress (on stderr): on a terminal a live bar (description, bar,
    n/total, ETA; gone when done); otherwise, as in logs and pipes, plain lines."""
    if not console.is_terminal:
        return PlainProgress()
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class PlainProgress:
    """rich.progress.Progress's add_task/advance/update for output that is not a terminal:
    a line per task every DONKEY_PROGRESS_SECONDS (default 10), and when it completes if it
    printed before, with n/total and ETA where the total is known. A live bar would show nothing in a log
    (rich draws it only on terminals) or fill the log with redraws."""

    def __init__(self, every: float | None = None, quiet: bool = False) -> None:
        self.quiet = quiet
        if every is None:
            try:
                every = float(os.environ.get("DONKEY_PROGRESS_SECONDS", "10"))
            except ValueError:
                every = 10.0
        self.every = every
        self.tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for task_id, task in self.tasks.items():
            if task["lines"] and task["completed"] != task["printed"]:
                self._print(task_id)

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        task_id = len(self.tasks)
        now = time.monotonic()
        self.tasks[task_id] = dict(
            description=description,
            total=total,
            completed=0,
            started=now,
            last=now,
            printed=0,
            lines=0,
            fields=fields,
        )
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(
        self,
        task_id: int,
        *,
        completed: float | None = None,
        total: float | None = None,
        advance: float | None = None,
        **fields: Any,
    ) -> None:
        task = self.tasks[task_id]
        if total is not None:
            task["total"] = total
        if completed is not None:
            task["completed"] = completed
        if advance is not None:
            task["completed"] += advance
        task["fields"].update(fields)
        now = time.monotonic()
        # The last line only for a task that printed before: a task done within one
        # interval leaves no lines.
        finished = task["total"] is not None and task["completed"] >= task["total"]
        due = now - task["last"] >= self.every or (finished and task["lines"])
        if task["completed"] != task["printed"] and due:
            self._print(task_id)

    def _print(self, task_id: int) -> None:
        task = self.tasks[task_id]
        now = time.monotonic()
        task["last"], task["printed"] = now, task["completed"]
        task["lines"] += 1
        if self.quiet:
            return
        done, total = task["completed"], task["total"]
        elapsed = now - task["started"]
        rate = done / elapsed if elapsed > 0 else 0.0
        cells = [f"{task['description']}: {done:g}" + (f"/{total:g}" if total else "")]
        if total:
            cells[0] += f" ({100 * done / total:.0f}%)"
        cells.append(f"{clock(elapsed)} elapsed")
        if total and 0 < done < total and rate > 0:
            cells.append(f"ETA {clock((total - done) / rate)}")
        info = task["fields"].get("info")
        if info:
            cells.append(str(info))
        console.print(", ".join(cells), highlight=False)
