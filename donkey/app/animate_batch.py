"""Batch mode of `donkey animate`: folders of sources and drivings -> a folder of results, with
torchrun sharding (each rank its share; rank 0 gets the merged report)."""

from __future__ import annotations

from pathlib import Path

from donkey.app import preflight
from donkey.app import ranks as ranked
from donkey.app.animate_types import (
    AnimateRequest,
    BatchDone,
    Events,
    animate_options,
    load_options,
    make_animator,
)
from donkey.data.probe import frame_count
from donkey.model.errors import DonkeyError
from donkey.runtime.batch import check_output_folder, make_output_folder, plan_jobs, run_jobs


def animate_batch(request: AnimateRequest, events: Events) -> BatchDone:
    """Every source with every driving (or the pair list's pairs) into `request.output`.

    A bad file fails only the items that need it. Outputs already there are refused before any
    work unless skipped or replaced. Under torchrun, ranks other than 0 exit inside."""
    out_dir = request.output
    options = animate_options(request)
    check_output_folder(out_dir)
    for folder in (request.source, request.driving):
        if folder.is_dir() and folder.resolve() == out_dir.resolve():
            raise DonkeyError(
                f"{out_dir}: is also an input folder; outputs would be read as inputs next time"
            )
    suffix = f".{request.out_format}"
    jobs = plan_jobs(request.source, request.driving, out_dir, request.pair_list, suffix)
    # torchrun: this rank's share of the jobs and its device (everything, unchanged, without).
    ranks, device = ranked.start(request.device)
    # Outputs already there are refused here, before any work, unless skipped or replaced.
    share = ranked.shard_jobs(ranks, jobs, request.skip_existing, request.overwrite)
    counts: dict[Path, int | None] = {}  # drivings' frame counts, read from their headers
    if ranks.main:  # looks-swapped and one-frame checks; every rank would print the same
        pairs = [(job.source, job.driving) for job in jobs]
        counts = preflight.warn_swapped_batch(
            pairs, request.source, request.driving, request.pair_list, events.warn
        )
    mine = [jobs[i] for i in share]
    loaded = ranked.load_in_turn(
        ranks,
        request.model,
        request.engine,
        device,
        request.precision,
        load_options(request),
        batch_size=request.batch_size,
        say=events.say,
    )
    animator = make_animator(loaded, request)
    make_output_folder(out_dir)
    # The frames to render, from the drivings' headers (GIF/PNG exact, videos duration x fps):
    # the frame bar's total and ETA. Unknown when one cannot be probed.
    counts.update({d: frame_count(d) for d in {j.driving for j in mine} if d not in counts})
    unknown = None in counts.values()
    events.begin(len(mine), None if unknown else sum(counts[j.driving] for j in mine))

    def run():  # noqa: ANN202 - the report
        return run_jobs(
            animator,
            mine,
            options,
            request.skip_existing,
            events.progress,
            budget=request.budget,
            frame_counts={} if unknown else counts,
        )

    # torchrun: all ranks' reports merged; ranks other than 0 exit here.
    report = ranked.batch_report(ranks, jobs, share, run, say=events.line)
    return BatchDone(len(jobs), report, loaded.engine, str(loaded.device))
