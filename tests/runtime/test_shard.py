"""Shard planning for torchrun ranks: balance, grouping by driving, determinism, frame probes."""

from pathlib import Path

import numpy as np
import pytest

from donkey.data.probe import frame_count
from donkey.data.writers import write_image, write_video
from donkey.model.errors import DonkeyError
from donkey.runtime.batch import BatchReport, Job
from donkey.runtime.device import rank_device
from donkey.runtime.distributed import Ranks, gather_json, ranks_from_env
from donkey.runtime.shard import (
    Group,
    merge_reports,
    plan_cuts,
    report_to_json,
    shard_jobs,
    shard_weighted,
)
from tests.conftest import make_creature_frames


def _loads(groups, plan):
    """Cost each rank runs: its jobs plus one keypoint pass per (part of a) driving it touches."""
    return [sum(groups[g].overhead + sum(groups[g].costs[a:b]) for g, a, b in r) for r in plan]


def _check_partition(groups, plan):
    seen = [(g, j) for ranges in plan for g, a, b in ranges for j in range(a, b)]
    assert sorted(seen) == [(g, j) for g, grp in enumerate(groups) for j in range(len(grp.costs))]
    assert len(set(seen)) == len(seen)


def test_equal_drivings_go_whole_to_ranks():
    groups = [Group(3 * 20, (10 * 20,) * 4)] * 6  # 6 drivings of 20 frames x 4 sources
    plan = plan_cuts(groups, 2)
    assert plan == [[(0, 0, 4), (1, 0, 4), (2, 0, 4)], [(3, 0, 4), (4, 0, 4), (5, 0, 4)]]


def test_odd_count_splits_one_driving_between_two_ranks():
    groups = [Group(3, (10,) * 4)] * 5  # whole drivings would give 3 : 2
    plan = plan_cuts(groups, 2)
    _check_partition(groups, plan)
    assert plan == [[(0, 0, 4), (1, 0, 4), (2, 0, 2)], [(2, 2, 4), (3, 0, 4), (4, 0, 4)]]
    assert _loads(groups, plan) == [109, 109]


def test_one_driving_many_sources_is_split_evenly():
    plan = plan_cuts([Group(3, (10,) * 24)], 3)
    assert plan == [[(0, 0, 8)], [(0, 8, 16)], [(0, 16, 24)]]


def test_balanced_by_frames_not_by_count():
    # One long driving (30 frames) against three short ones (10): 1 driving : 3 drivings.
    groups = [Group(3 * n, (10 * n,)) for n in (30, 10, 10, 10)]
    assert plan_cuts(groups, 2) == [[(0, 0, 1)], [(1, 0, 1), (2, 0, 1), (3, 0, 1)]]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("world", [2, 3, 5])
def test_random_batches_partition_exactly_and_balance(seed, world):
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(int(rng.integers(1, 12))):
        frames = int(rng.integers(4, 60))
        groups.append(Group(3 * frames, (10 * frames,) * int(rng.integers(1, 9))))
    plan = plan_cuts(groups, world)
    assert len(plan) == world
    _check_partition(groups, plan)
    assert plan_cuts(groups, world) == plan  # deterministic
    split = {g for ranges in plan for g, a, b in ranges if (a, b) != (0, len(groups[g].costs))}
    assert len(split) <= world - 1
    # Each rank within one job plus one keypoint pass of its ideal share.
    ideal = sum(g.overhead + sum(g.costs) for g in groups) / world
    slack = max(g.overhead + max(g.costs) for g in groups)
    for load in _loads(groups, plan):
        assert abs(load - ideal) <= 2 * slack


def test_finished_outputs_cost_nothing():
    # Drivings 0-2 done (cost 0): the remaining three are shared out, not drivings 0-2 vs 3-5.
    done = Group(0, (0,) * 4)
    todo = Group(3, (10,) * 4)
    plan = plan_cuts([done, done, done, todo, todo, todo], 2)
    loads = _loads([done] * 3 + [todo] * 3, plan)
    assert abs(loads[0] - loads[1]) <= 13


def test_empty_and_single_rank():
    assert plan_cuts([], 3) == [[], [], []]
    assert plan_cuts([Group(1, (2, 2))], 1) == [[(0, 0, 2)]]
    assert shard_weighted(Ranks(), [5, 1, 7]) == [0, 1, 2]


def test_without_torchrun_everything_is_this_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ranks = ranks_from_env()
    assert ranks == Ranks() and ranks.main and not ranks.distributed
    jobs = [Job(Path(f"s{i}.png"), Path("d.gif"), Path(f"/o/{i}.gif")) for i in range(3)]
    assert shard_jobs(ranks, jobs) == [0, 1, 2]
    assert gather_json(ranks, {"a": 1}) == [{"a": 1}]
    assert rank_device("cpu", 3) == "cpu"


def test_existing_outputs_are_refused_unless_skipped_or_replaced(tmp_path):
    jobs = [Job(Path(f"s{i}.png"), Path("d.gif"), tmp_path / f"{i}.gif") for i in range(4)]
    ranks = Ranks()
    assert shard_jobs(ranks, jobs) == [0, 1, 2, 3]  # nothing there yet
    for i in (2, 1):
        jobs[i].output.write_bytes(b"mine")
    jobs[3].output.symlink_to(tmp_path / "gone.gif")  # a dangling link takes the name too
    message = (
        f"{tmp_path / '1.gif'}: exists (3 of the 4 outputs this batch would write do); "
        "pass --overwrite to replace them, or --skip-existing to keep them"
    )
    with pytest.raises(DonkeyError) as caught:
        shard_jobs(ranks, jobs)
    assert str(caught.value) == message
    assert shard_jobs(ranks, jobs, skip_existing=True) == [0, 1, 2, 3]
    assert shard_jobs(ranks, jobs, overwrite=True) == [0, 1, 2, 3]
    assert [p.read_bytes() for p in (jobs[1].output, jobs[2].output)] == [b"mine", b"mine"]


def test_bad_torchrun_environment_is_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(DonkeyError, match="WORLD_SIZE must be an integer"):
        ranks_from_env()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(DonkeyError, match="do not fit WORLD_SIZE=2"):
        ranks_from_env()


def test_merged_report_is_in_plan_order():
    jobs = [Job(Path(f"s{i}.png"), Path("d.gif"), Path(f"/o/{i}.gif")) for i in range(4)]
    rank0, rank1 = BatchReport(), BatchReport()
    rank0.done, rank0.frames = [jobs[2]], 5
    rank0.failed = [(jobs[0], DonkeyError("d.gif: truncated"))]
    rank1.done, rank1.skipped, rank1.frames = [jobs[3]], [jobs[1]], 7
    rank1.seconds["model"] = 2.0
    index = {j: i for i, j in enumerate(jobs)}
    parts = [report_to_json(rank1, index, 1.0), report_to_json(rank0, index, 1.0)]
    merged = merge_reports(jobs, parts)
    assert merged.done == [jobs[2], jobs[3]] and merged.skipped == [jobs[1]]
    assert [(job, str(error)) for job, error in merged.failed] == [(jobs[0], "d.gif: truncated")]
    assert merged.frames == 12 and merged.seconds["model"] == 2.0


def test_frame_counts_from_headers(tmp_path):
    frames = make_creature_frames(7, 32)
    write_video(tmp_path / "walk.gif", frames)
    write_video(tmp_path / "strip.png", frames[:5])
    write_image(tmp_path / "still.png", frames[0])
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        write_image(folder / f"{i}.png", frames[i])
    (tmp_path / "broken.gif").write_bytes(b"GIF89a not really")
    assert frame_count(tmp_path / "walk.gif") == 7
    assert frame_count(tmp_path / "strip.png") == 5
    assert frame_count(tmp_path / "still.png") == 1
    assert frame_count(folder) == 3
    assert frame_count(tmp_path / "broken.gif") is None
    assert frame_count(tmp_path / "missing.gif") is None


def test_frame_count_of_an_mp4(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    write_video(tmp_path / "clip.mp4", make_creature_frames(12, 32), fps=10.0)
    assert frame_count(tmp_path / "clip.mp4") == 12


def test_ranks_that_list_other_files_stop(monkeypatch):
    import donkey.runtime.shard as shard

    jobs = [Job(Path("s.png"), Path("d.gif"), Path("/o/s__d.gif"))]
    monkeypatch.setattr(shard, "gather_json", lambda ranks, value: [value, "other digest"])
    with pytest.raises(DonkeyError, match="rank 1 sees other files than rank 0"):
        shard.check_same_plan(Ranks(0, 2, 0), jobs)
    monkeypatch.setattr(shard, "gather_json", lambda ranks, value: [value, value])
    shard.check_same_plan(Ranks(0, 2, 0), jobs)


def test_world_size_without_torchrun_is_one_line(monkeypatch):
    from donkey.runtime.distributed import start

    for name in ("MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(DonkeyError, match="WORLD_SIZE=2 but cannot join the torchrun job"):
        start("cpu")
