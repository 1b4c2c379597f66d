"""torchrun glue for the commands: each rank runs its share, rank 0 prints one summary for the
whole job, and every rank exits with the same status.

Without torchrun these functions run the work as it is and return its result.
"""

from __future__ import annotations

import atexit
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from donkey.model.errors import DonkeyError
from donkey.runtime import distributed, shard
from donkey.runtime.backend import LoadOptions
from donkey.runtime.batch import BatchReport, Job
from donkey.runtime.distributed import Ranks, gather_json, run_guarded
from donkey.runtime.loader import LoadedModel
from donkey.runtime.shard import merge_reports, report_to_json

__all__ = [
    "Ranks",
    "batch_report",
    "end_rank",
    "engine_options",
    "gather_results",
    "in_turn",
    "once",
    "shard_items",
    "shard_jobs",
    "shard_weighted",
    "start",
]

T = TypeVar("T")


def once(ranks: Ranks, work: Callable[[], T]) -> T:
    """A DonkeyError that every rank hits alike is printed by rank 0 only."""
    try:
        return work()
    except DonkeyError:
        end_rank(ranks, failed=True)
        raise


def start(device: str) -> tuple[Ranks, str]:
    """This rank and its device (torchrun), or one rank and `device` as given."""
    return distributed.start(device)


def shard_jobs(
    ranks: Ranks, jobs: Sequence[Job], skip_existing: bool, overwrite: bool
) -> list[int]:
    """This rank's share; outputs already there are refused (once, by rank 0) unless skipped or
    replaced."""
    return once(ranks, lambda: shard.shard_jobs(ranks, jobs, skip_existing, overwrite))


def shard_items(ranks: Ranks, paths: Sequence[Path]) -> list[int]:
    return once(ranks, lambda: shard.shard_items(ranks, paths))


def shard_weighted(ranks: Ranks, weights: Sequence[int]) -> list[int]:
    return shard.shard_weighted(ranks, weights)


def in_turn(ranks: Ranks, work: Callable[[], T]) -> T:
    """`work` (loading the model) on each machine's first rank, then on the others."""
    return once(ranks, lambda: distributed.in_turn(ranks, work))


def engine_options(ranks: Ranks, options: LoadOptions | None) -> LoadOptions | None:
    """Under torchrun, ONNX Runtime's CPU sessions use this process's share of the cores (the
    thread count torchrun gives PyTorch through OMP_NUM_THREADS), not all of them."""
    if not ranks.distributed or (options is not None and options.threads):
        return options
    import torch

    return dataclasses.replace(options or LoadOptions(), threads=torch.get_num_threads())


def gather_results(ranks: Ranks, work: Callable[[], Any]) -> list[Any]:
    """Every rank's JSON result of `work`, on every rank.

    A DonkeyError on any rank ends all of them with exit status 1: rank 0 prints it (naming the
    rank), the others exit quietly, so the message appears once.
    """
    if not ranks.distributed:
        return [work()]
    result, errors = run_guarded(ranks, work)
    failed = [(r, e) for r, e in enumerate(errors) if e]
    if failed:
        end_rank(ranks, failed=True)
        rank, message = failed[0]
        raise DonkeyError(message if rank == 0 else f"rank {rank}: {message}")
    return gather_json(ranks, result)


_release_registered = False


def end_rank(ranks: Ranks, failed: bool) -> None:
    """Ranks other than 0 stop here, with exit status 1 if `failed`; rank 0 goes on to print.

    torchrun stops every worker as soon as one exits non-zero, so the others wait until rank 0
    has printed (and flushed) its summary or error and is exiting too.
    """
    global _release_registered
    if not ranks.distributed:
        return
    if ranks.main:
        if not _release_registered:
            _release_registered = True
            atexit.register(_release, ranks)
        return
    gather_json(ranks, None)
    raise SystemExit(1 if failed else 0)


def _release(ranks: Ranks) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    gather_json(ranks, None)


def batch_report(
    ranks: Ranks,
    jobs: Sequence[Job],
    share: Sequence[int],
    work: Callable[[], BatchReport],
    say: Callable[[str], None] = print,
) -> BatchReport:
    """Runs this rank's share of the batch; returns the merged report of all ranks on rank 0.

    Ranks other than 0 exit here, with status 1 if any item failed on any rank.
    """
    if not ranks.distributed:
        return work()
    index_of = {jobs[i]: i for i in share}

    def timed() -> dict:
        started = time.perf_counter()
        report = work()
        return report_to_json(report, index_of, time.perf_counter() - started)

    parts = gather_results(ranks, timed)
    merged = merge_reports(jobs, parts)
    end_rank(ranks, bool(merged.failed))
    cells = [
        f"rank {r}: {len(p['done']) + len(p['skipped']) + len(p['failed'])} items, "
        f"{p['frames']} frames, {p['wall']:.1f}s"
        for r, p in enumerate(parts)
    ]
    say(f"{ranks.world} ranks; " + "; ".join(cells))
    return merged


def load_in_turn(
    ranks: Ranks,
    model: str | None,
    engine: str | None,
    device: str,
    precision: str = "fp32",
    options: LoadOptions | None = None,
    batch_size: int | None = None,
    say: Callable[[str, str], None] | None = None,
) -> LoadedModel:
    """`app.models.load_model` for this rank: on each machine's first rank, then the others
    (a cache build happens once), with ONNX Runtime's CPU sessions sized to this rank's share
    of the cores; without torchrun, a plain load."""
    from donkey.app.models import load_model

    options = engine_options(ranks, options)
    return in_turn(
        ranks,
        lambda: load_model(
            model, engine, device, precision, options, batch_size=batch_size, say=say
        ),
    )
