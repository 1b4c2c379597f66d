"""Batch mode of `donkey animate`: folders of sources and drivings -> a folder of results."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from donkey.app import ranks as ranked
from donkey.app.models import load_model
from donkey.cli.common import out, progress_bar, say, tagged
from donkey.cli.preflight import warn_swapped_batch
from donkey.data.probe import frame_count
from donkey.model.errors import DonkeyError
from donkey.runtime.animate_options import AnimateOptions
from donkey.runtime.animator import Animator
from donkey.runtime.backend import LoadOptions
from donkey.runtime.batch import check_output_folder, make_output_folder, plan_jobs, run_jobs


def animate_batch(
    sources: Path,
    drivings: Path,
    out_dir: Path,
    model: str | None,
    engine: str | None,
    device: str,
    precision: str,
    mode: str,
    adapt_scale: bool,
    batch_size: int,
    options: AnimateOptions,
    pair_list: Path | None = None,
    skip_existing: bool = False,
    suffix: str = ".gif",
    engine_options: LoadOptions | None = None,
    overwrite: bool = False,
) -> None:
    check_output_folder(out_dir)
    for folder in (sources, drivings):
        if folder.is_dir() and folder.resolve() == out_dir.resolve():
            raise DonkeyError(
                f"{out_dir}: is also an input folder; outputs would be read as inputs next time"
            )
    jobs = plan_jobs(sources, drivings, out_dir, pair_list, suffix)
    # torchrun: this rank's share of the jobs and its device (everything, unchanged, without).
    ranks, device = ranked.start(device)
    # Outputs already there are refused here, before any work, unless skipped or replaced.
    share = ranked.shard_jobs(ranks, jobs, skip_existing, overwrite)
    counts: dict[Path, int | None] = {}  # drivings' frame counts, read from their headers
    if ranks.main:  # looks-swapped and one-frame checks; every rank would print the same
        pairs = [(job.source, job.driving) for job in jobs]
        counts = warn_swapped_batch(pairs, sources, drivings, pair_list)
    mine = [jobs[i] for i in share]
    engine_options = ranked.engine_options(ranks, engine_options)
    loaded = ranked.in_turn(
        ranks,
        lambda: load_model(
            model, engine, device, precision, engine_options, batch_size=batch_size, say=say
        ),
    )
    animator = Animator(loaded, batch_size=batch_size, mode=mode, adapt_scale=adapt_scale)
    make_output_folder(out_dir)
    # The frames to render, from the drivings' headers (GIF/PNG exact, videos duration x fps):
    # the frame bar's total and ETA. Unknown when one cannot be probed.
    counts.update({d: frame_count(d) for d in {j.driving for j in mine} if d not in counts})
    expected = {"frames": None if None in counts.values() else sum(counts[j.driving] for j in mine)}
    with progress_bar() as bar:
        items = bar.add_task("items", total=len(mine))
        frames = bar.add_task("frames", total=expected["frames"])

        def progress(event: str, job, count: int) -> None:
            if event == "frames":
                bar.advance(frames, count)
                return
            bar.advance(items)
            if event == "done":
                tagged("ok", "green", job.output.name)
            elif event == "skipped":
                tagged("exists", "dim", job.output.name)
            if event == "skipped" and expected["frames"] is not None:
                # a finished output is not rendered again
                expected["frames"] -= counts[job.driving] or 0
                bar.update(frames, total=expected["frames"])

        run = lambda: run_jobs(animator, mine, options, skip_existing, progress)  # noqa: E731
        # torchrun: all ranks' reports merged; ranks other than 0 exit here.
        report = ranked.batch_report(ranks, jobs, share, run, say=out.print)
    seconds = report.seconds
    total = sum(seconds.values())
    table = Table(
        title=f"donkey animate: {len(jobs)} items, engine {loaded.engine} on {loaded.device}"
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
        reasons = {}
        for job, reason in report.failed:
            reasons.setdefault(reason, []).append(job.output.name)
        for reason, names in reasons.items():
            tagged("failed", "red", f"{reason} ({len(names)} item{'s' if len(names) > 1 else ''})")
        raise typer.Exit(1)
