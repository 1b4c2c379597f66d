"""What `donkey animate` shows: its progress bars and notes while the work runs (the
application layer's Events), and the result line or batch table afterwards."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from donkey.app.animate_types import BatchDone, Events, Kept, Written
from donkey.cli.common import out, progress_bar, say, tagged


class BarEvents(Events):
    """Events drawn as bars: "animating (frames)" for one file; "items" and "frames" bars and a
    line per finished item for a batch."""

    def __init__(self) -> None:
        super().__init__(
            say=say, warn=self._warn, line=out.print, begin=self._begin, progress=self._progress
        )
        self.bar: Any = None
        self.items: Any = None
        self.frames_left: int | None = None

    def __enter__(self) -> BarEvents:
        self.bar = progress_bar().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    @staticmethod
    def _warn(message: str) -> None:
        tagged("warning:", "bold yellow", message)

    def _begin(self, items: int | None, frames: int | None) -> None:
        self.frames_left = frames
        if items is None:
            self.frames = self.bar.add_task("animating (frames)", total=frames)
            return
        self.items = self.bar.add_task("items", total=items)
        self.frames = self.bar.add_task("frames", total=frames)

    def _progress(self, event: str, job: Any, count: int) -> None:
        if event == "frames":
            self.bar.advance(self.frames, count)
            return
        if self.items is None:  # one file: its result line says the rest
            return
        self.bar.advance(self.items)
        if event == "done":
            picked = f" (reference frame {count})" if count >= 0 else ""
            tagged("ok", "green", job.output.name + picked)
        elif event == "skipped":
            tagged("exists", "dim", job.output.name)
            if self.frames_left is not None:  # a finished output is not rendered again
                self.frames_left -= count
                self.bar.update(self.frames, total=self.frames_left)


def print_result(result: Written | Kept | BatchDone) -> None:
    """The single file's `wrote` line, or the batch's table, timings and failures (exit 1)."""
    if isinstance(result, Kept):
        out.print(f"{result.output}: exists; left as it is (--skip-existing)")
    elif isinstance(result, Written):
        t = result.seconds
        total = sum(t.values())
        height, width = result.shape
        look = f"{width}x{height}" + (" with transparency" if result.alpha else "")
        out.print(
            f"wrote {result.output} ({result.frames} frame{'' if result.frames == 1 else 's'}, "
            f"engine {result.engine} on {result.device}; {look}; load {t['load']:.2f}s, "
            f"read {t['read']:.2f}s, model {t['model']:.2f}s, write {t['write']:.2f}s: "
            f"model {100 * t['model'] / total:.0f}% of {total:.2f}s)"
        )
        if result.reference is not None:
            out.print(_reference_line(result.reference, result.reference_setting))
    else:
        _print_batch(result)


def _reference_line(frame: int, setting: str) -> str:
    how = {
        "auto": "auto: the driving frame whose keypoint layout is most like the source's",
        "first": "first",
    }.get(setting, "--reference")
    return f"reference frame {frame} ({how}); movement is measured from it"


def _print_batch(result: BatchDone) -> None:
    report, seconds = result.report, result.report.seconds
    total = sum(seconds.values())
    table = Table(
        title=f"donkey animate: {result.items} items, engine {result.engine} on {result.device}"
    )
    table.add_column("result")
    table.add_column("count", justify="right")
    table.add_row("written", str(len(report.done)), style="green")
    table.add_row("skipped (exists)", str(len(report.skipped)))
    table.add_row("failed", str(len(report.failed)), style="red" if report.failed else None)
    out.print(table)
    if report.frames:
        out.print(
            f"{report.frames} frames; read {seconds['read']:.2f}s, model {seconds['model']:.2f}s "
            f"({report.frames / max(seconds['model'], 1e-9):.1f} frames/s), write {seconds['write']:.2f}s "
            f"(threads overlap; sum {total:.2f}s)"
        )
    if report.failed:
        reasons: dict[str, list[str]] = {}
        for job, error in report.failed:
            reasons.setdefault(str(error), []).append(job.output.name)
        for reason, names in reasons.items():
            tagged("failed", "red", f"{reason} ({len(names)} item{'s' if len(names) > 1 else ''})")
        raise typer.Exit(1)
