"""What `donkey animate` is asked (AnimateRequest), how it reports while it works (Events) and
what it returns (Written, Kept, BatchDone): shared by the single-file and batch paths."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from donkey.core.vocab import (
    DEFAULT_OUTPUT_SIZE,
    DEFAULT_REFERENCE,
    DEFAULT_SMOOTH,
    parse_output_size,
)
from donkey.model.errors import DonkeyError

if TYPE_CHECKING:
    from donkey.data.budget import Budget
    from donkey.runtime.animate_options import AnimateOptions
    from donkey.runtime.animator import Animator
    from donkey.runtime.backend import LoadOptions
    from donkey.runtime.batch import BatchReport, Job
    from donkey.runtime.loader import LoadedModel


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
    background: str | None = None  # None: white, and a transparent source stays transparent
    side_by_side: bool = False
    pair_list: Path | None = None
    skip_existing: bool = False
    overwrite: bool = False
    out_format: str = "gif"
    cuda_graphs: bool = False
    budget: Budget | None = None  # None: the environment's read budget
    reference: str | int = DEFAULT_REFERENCE  # auto, first or a driving frame number
    smooth: float = DEFAULT_SMOOTH  # frames (std of the zero-phase filter); 0: off
    motion_scale: float = 1.0
    output_size: str | int = DEFAULT_OUTPUT_SIZE  # model, source or the long side in pixels


def _quiet(*_: object) -> None:
    return None


@dataclass
class Events:
    """How the caller hears of the work. `say(label, message)`: a note (a build into the cache);
    `warn(message)`; `begin(items, frames)`: the totals (items None for a single file, frames
    None when unknown);
    `progress(event, job, n)`: "frames" (n just rendered), "done" (n: the driving frame
    relative motion was measured from, -1 in absolute mode), "failed", or "skipped" (n: the
    frames that will not be rendered, 0 when unknown); `line(text)`: a line of the
    result (torchrun's per-rank summary)."""

    say: Callable[[str, str], None] = _quiet
    warn: Callable[[str], None] = _quiet
    line: Callable[[str], None] = _quiet
    begin: Callable[[int | None, int | None], None] = _quiet
    progress: Callable[[str, Job | None, int], None] = _quiet


@dataclass
class Written:
    """A single result: its path, frame count, where it ran, the seconds of each stage, the
    reference frame (relative mode; None in absolute mode) and how it was set (auto, first or
    a number), the frames' (height, width) and whether they carry transparency."""

    output: Path
    frames: int
    engine: str
    device: str
    seconds: dict[str, float] = field(default_factory=dict)
    reference: int | None = None
    reference_setting: str = "first"
    shape: tuple[int, int] = (0, 0)
    alpha: bool = False


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
    """The fit, the background colour (parsed once, here; none given: white, and transparency
    kept), side by side and the output size."""
    from donkey.data.colours import parse_colour
    from donkey.data.frames import WHITE
    from donkey.runtime.animate_options import AnimateOptions

    colour = WHITE
    if request.background is not None:
        try:
            colour = parse_colour(request.background)
        except ValueError as exc:
            raise DonkeyError(f"--background: {exc}") from None
    try:
        output_size = parse_output_size(request.output_size)
    except ValueError as exc:
        raise DonkeyError(f"--output-size: {exc}") from None
    return AnimateOptions(
        fit=str(request.fit),
        background=colour,
        side_by_side=request.side_by_side,
        output_size=output_size,
        keep_alpha=request.background is None,
    )


def make_animator(loaded: LoadedModel, request: AnimateRequest) -> Animator:
    """The Animator of `request`'s motion settings (its values checked there, one line each)."""
    from donkey.runtime.animator import Animator

    return Animator(
        loaded,
        batch_size=request.batch_size,
        mode=request.mode,
        adapt_scale=request.adapt_scale,
        reference=request.reference,
        smooth=request.smooth,
        motion_scale=request.motion_scale,
    )


def load_options(request: AnimateRequest) -> LoadOptions:
    from donkey.runtime.backend import LoadOptions

    return LoadOptions(
        cuda_graphs=request.cuda_graphs, allow_slow_precision=request.allow_slow_precision
    )
