"""What `donkey animate` is asked (AnimateRequest), how it reports while it works (Events) and
what it returns (Written, Kept, BatchDone): shared by the single-file and batch paths."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from donkey.model.errors import DonkeyError

if TYPE_CHECKING:
    from donkey.data.budget import Budget
    from donkey.runtime.animate_options import AnimateOptions
    from donkey.runtime.backend import LoadOptions
    from donkey.runtime.batch import BatchReport, Job


@dataclass(frozen=True)
class AnimateRequest:
    """Everything `donkey animate` was asked, as parsed (strings, not yet resolved)."""

    source: Path
    driving: Path
    output: Path
    model: str | None = None
    engine: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    allow_slow_precision: bool = False
    mode: str = "relative"
    adapt_scale: bool = False
    batch_size: int = 8
    fit: str = "pad"
    background: str = "white"
    side_by_side: bool = False
    pair_list: Path | None = None
    skip_existing: bool = False
    overwrite: bool = False
    out_format: str = "gif"
    cuda_graphs: bool = False
    budget: Budget | None = None  # None: the environment's read budget


def _quiet(*_: object) -> None:
    return None


@dataclass
class Events:
    """How the caller hears of the work. `say(label, message)`: a note (a build into the cache);
    `warn(message)`; `begin(items, frames)`: the totals (items None for a single file, frames
    None when unknown);
    `progress(event, job, n)`: "frames" (n just rendered), "done", "failed", or "skipped"
    (n: the frames that will not be rendered, 0 when unknown); `line(text)`: a line of the
    result (torchrun's per-rank summary)."""

    say: Callable[[str, str], None] = _quiet
    warn: Callable[[str], None] = _quiet
    line: Callable[[str], None] = _quiet
    begin: Callable[[int | None, int | None], None] = _quiet
    progress: Callable[[str, Job | None, int], None] = _quiet


@dataclass
class Written:
    """A single result: its path, frame count, where it ran and the seconds of each stage."""

    output: Path
    frames: int
    engine: str
    device: str
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Kept:
    """A single output that exists and was left alone (--skip-existing)."""

    output: Path


@dataclass
class BatchDone:
    """A batch: how many items were planned, the merged report, where it ran."""

    items: int
    report: BatchReport
    engine: str
    device: str


def animate_options(request: AnimateRequest) -> AnimateOptions:
    """The fit, the background colour (parsed once, here) and side by side."""
    from donkey.data.colours import parse_colour
    from donkey.runtime.animate_options import AnimateOptions

    try:
        colour = parse_colour(request.background)
    except ValueError as exc:
        raise DonkeyError(f"--background: {exc}") from None
    return AnimateOptions(
        fit=str(request.fit), background=colour, side_by_side=request.side_by_side
    )


def load_options(request: AnimateRequest) -> LoadOptions:
    from donkey.runtime.backend import LoadOptions

    return LoadOptions(
        cuda_graphs=request.cuda_graphs, allow_slow_precision=request.allow_slow_precision
    )
