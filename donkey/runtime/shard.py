"""Shards of a batch for torchrun ranks, balanced by work, and the merge of their reports.

Every rank lists the same jobs (checked by a digest), the frame counts of the drivings are
probed once (each rank probes every world-th driving and all share the results), and the plan
is a pure function of (jobs, counts, world), so every rank computes the same one.

The plan keeps the batch's grouping by driving (a driving's keypoints are computed once for all
its sources): jobs are laid end to end, one driving after another, and cut into `world`
consecutive runs of equal cost. A cut falls on a driving boundary unless splitting the driving
gives a better balance after paying for its second keypoint pass, so at most world - 1 drivings
are split, each between two ranks.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from donkey.data.probe import frame_count
from donkey.model.errors import DonkeyError
from donkey.runtime.batch import BatchReport, Job, refuse_existing
from donkey.runtime.distributed import Ranks, gather_json

# Cost per frame, in tenths of the default model's output-frame cost: dense motion + generator
# are 0.59 GMAC per output frame and the keypoint detector 0.18 per driving frame
# (`donkey info configs/small.yaml`). Integers, so every rank computes the same cuts.
OUTPUT_COST = 10
KEYPOINT_COST = 3


@dataclass(frozen=True)
class Group:
    """Consecutive jobs that share one driving: `overhead` (its keypoint pass) plus a cost per job."""

    overhead: int
    costs: tuple[int, ...]


def plan_cuts(groups: Sequence[Group], world: int) -> list[list[tuple[int, int, int]]]:
    """Per rank, the (group, first job, end job) ranges it runs; a pure function of its inputs.

    Cut k aims at k/world of the total cost. Candidates are the job boundaries next to that
    point; one inside a group pays the group's overhead again, so a group boundary wins unless
    splitting balances better by more than that.
    """
    # Positions: a boundary before job j of group g, with the cost of everything before it.
    # The group's overhead counts before its first job.
    bounds: list[tuple[int, int]] = []  # (group, job)
    before: list[int] = []
    inside: list[int] = []  # the overhead a cut here repeats, 0 at a group boundary
    total = 0
    for g, group in enumerate(groups):
        bounds.append((g, 0))
        before.append(total)
        inside.append(0)
        total += group.overhead
        for j, cost in enumerate(group.costs):
            if j:
                bounds.append((g, j))
                before.append(total)
                inside.append(group.overhead)
            total += cost
    bounds.append((len(groups), 0))
    before.append(total)
    inside.append(0)

    cuts = [0]
    for k in range(1, world):
        # Distances scaled by `world` keep the arithmetic in integers.
        target = k * total
        i = bisect.bisect_left(before, -(-target // world))
        candidates = {min(max(c, cuts[-1]), len(bounds) - 1) for c in (i - 1, i)}
        for c in list(candidates):  # the nearest group boundaries on both sides
            lo = c
            while lo > cuts[-1] and inside[lo]:
                lo -= 1
            hi = c
            while hi < len(bounds) - 1 and inside[hi]:
                hi += 1
            candidates.update((lo, hi))
        cuts.append(
            min(
                candidates,
                key=lambda c: (abs(before[c] * world - target) + inside[c] * world, c),
            )
        )
    cuts.append(len(bounds) - 1)

    plan: list[list[tuple[int, int, int]]] = []
    for start, stop in zip(cuts, cuts[1:]):
        ranges: list[tuple[int, int, int]] = []
        (g0, j0), (g1, j1) = bounds[start], bounds[stop]
        for g in range(g0, min(g1, len(groups) - 1) + 1):
            first = j0 if g == g0 else 0
            end = j1 if g == g1 else len(groups[g].costs)
            if end > first:
                ranges.append((g, first, end))
        plan.append(ranges)
    return plan


def plan_digest(jobs: Sequence[Job]) -> str:
    text = "\n".join(f"{j.source}\t{j.driving}\t{j.output}" for j in jobs)
    return hashlib.sha256(text.encode()).hexdigest()


def check_same_plan(ranks: Ranks, jobs: Sequence[Job]) -> None:
    """Every rank must see the same job list (same folders, files and output paths)."""
    digests = gather_json(ranks, plan_digest(jobs))
    odd = [r for r, d in enumerate(digests) if d != digests[0]]
    if odd:
        raise DonkeyError(
            f"rank {odd[0]} sees other files than rank 0: every machine needs the same SOURCE, "
            "DRIVING and OUTPUT paths (a shared file system mounted at the same place)"
        )


def probe_counts(ranks: Ranks, paths: Sequence[Path]) -> list[int]:
    """Frame counts of `paths`, each probed by one rank and shared; unknown ones get the median."""
    mine = {i: frame_count(p) for i, p in enumerate(paths) if i % ranks.world == ranks.rank}
    counts: list[int | None] = [None] * len(paths)
    for part in gather_json(ranks, {str(i): n for i, n in mine.items()}):
        for i, n in part.items():
            counts[int(i)] = n
    known = sorted(n for n in counts if n)
    fallback = known[len(known) // 2] if known else 1
    return [n if n else fallback for n in counts]


def shard_jobs(
    ranks: Ranks, jobs: Sequence[Job], skip_existing: bool = False, overwrite: bool = False
) -> list[int]:
    """Indices (into `jobs`) of this rank's share, in `jobs` order within each driving.

    Outputs already there are refused (the same DonkeyError on every rank, before any of them
    writes) unless `skip_existing` or `overwrite`. With `skip_existing` they cost nothing, so a
    restarted run balances the work that is left; their jobs still go to a rank, which reports
    them as skipped.
    """
    if ranks.distributed:
        check_same_plan(ranks, jobs)
    existing = set() if overwrite else existing_outputs(ranks, jobs)
    if not skip_existing:
        refuse_existing(jobs, existing)
    if not ranks.distributed:
        return list(range(len(jobs)))
    order: dict[Path, list[int]] = {}
    for i, job in enumerate(jobs):
        order.setdefault(job.driving, []).append(i)
    drivings = list(order)
    counts = probe_counts(ranks, drivings)
    groups = []
    for driving, frames in zip(drivings, counts):
        costs = tuple(0 if i in existing else frames * OUTPUT_COST for i in order[driving])
        groups.append(Group(frames * KEYPOINT_COST if any(costs) else 0, costs))
    plan = plan_cuts(groups, ranks.world)
    return [order[drivings[g]][j] for g, first, end in plan[ranks.rank] for j in range(first, end)]


def existing_outputs(ranks: Ranks, jobs: Sequence[Job]) -> set[int]:
    """Indices of the jobs whose output path is taken (a file, folder or link); each rank looks
    at every world-th and all share the answers, so every rank gets the same set."""
    flags = gather_json(
        ranks,
        {str(i): _taken(jobs[i].output) for i in range(ranks.rank, len(jobs), ranks.world)},
    )
    return {int(i) for part in flags for i, there in part.items() if there}


def _taken(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def shard_items(ranks: Ranks, paths: Sequence[Path]) -> list[int]:
    """Indices of this rank's share of independent videos, weighted by their frames."""
    if not ranks.distributed:
        return list(range(len(paths)))
    return shard_weighted(ranks, probe_counts(ranks, paths))


def shard_weighted(ranks: Ranks, weights: Sequence[int]) -> list[int]:
    """Indices of this rank's share of independent items of the given (integer) weights."""
    plan = plan_cuts([Group(0, (int(w),)) for w in weights], ranks.world)
    return [g for g, _, _ in plan[ranks.rank]]


def report_to_json(report: BatchReport, index_of: dict[Job, int], seconds: float) -> dict:
    return {
        "done": [index_of[j] for j in report.done],
        "skipped": [index_of[j] for j in report.skipped],
        "failed": [[index_of[j], str(error)] for j, error in report.failed],
        "frames": report.frames,
        "seconds": report.seconds,
        "wall": seconds,
    }


def merge_reports(jobs: Sequence[Job], parts: Sequence[dict]) -> BatchReport:
    """One report for the whole batch, its lists in plan order (as one process would give)."""
    merged = BatchReport()
    merged.done = [jobs[i] for i in sorted(i for p in parts for i in p["done"])]
    merged.skipped = [jobs[i] for i in sorted(i for p in parts for i in p["skipped"])]
    failed = sorted((i, reason) for p in parts for i, reason in p["failed"])
    merged.failed = [(jobs[i], DonkeyError(reason)) for i, reason in failed]
    merged.frames = sum(p["frames"] for p in parts)
    for key in merged.seconds:
        merged.seconds[key] = sum(p["seconds"].get(key, 0.0) for p in parts)
    return merged
