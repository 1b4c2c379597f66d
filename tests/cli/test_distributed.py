"""`donkey animate` and `donkey eval` under torchrun: 2 CPU processes (gloo) against one."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from donkey.data.synthetic import synthesize
from donkey.data.writers import write_image
from tests.conftest import ROOT, make_creature_frames

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
        reason="torchrun not installed beside this Python",
    ),
]


def _env() -> dict:
    # One thread per process in both runs, as torchrun gives each rank: the same arithmetic.
    return dict(os.environ, OMP_NUM_THREADS="1")


def _single(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "donkey", *map(str, args)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _torchrun(*args) -> subprocess.CompletedProcess:
    cmd = [
        TORCHRUN,
        "--nproc_per_node",
        "2",
        "--master_port",
        str(29500 + (os.getpid() * 7) % 1000),
        "-m",
        "donkey",
        *map(str, args),
    ]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """3 sources x 4 drivings of 3 to 9 frames, one of the drivings corrupt."""
    root = tmp_path_factory.mktemp("sharded batch")
    sources, drivings = root / "sources", root / "drivings"
    sources.mkdir()
    drivings.mkdir()
    for i in range(3):
        write_image(sources / f"s{i}.png", make_creature_frames(1, 40, seed=10 + i)[0])
    synthesize(drivings, 3, size=32, seed=31, frames=(3, 9))
    (drivings / "broken.gif").write_bytes(b"GIF89a\x20\x00\x20\x00" + b"\x00" * 40)
    return root


def test_two_ranks_write_what_one_process_writes(batch, tiny_ckpt, tmp_path):
    common = ["--model", tiny_ckpt, "--device", "cpu", "--batch-size", "4"]
    args = [batch / "sources", batch / "drivings"]
    one = _single("animate", *args, "-o", tmp_path / "one", *common)
    two = _torchrun("animate", *args, "-o", tmp_path / "two", *common)
    assert one.returncode == 1, one.stderr[-2000:]
    assert two.returncode == 1, two.stderr[-3000:]

    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len(names) == 9  # 3 sources x 3 readable drivings
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == names
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()

    # The broken driving is reported once, by rank 0, for its 3 items; both ranks ran items.
    both = two.stdout + two.stderr
    assert both.count("broken.gif:") == 1, both[-3000:]
    assert "(3 items)" in both
    assert "written          │     9" in two.stdout
    assert "failed           │     3" in two.stdout
    summary = next(line for line in two.stdout.splitlines() if line.startswith("2 ranks; "))
    items = [int(cell.split(": ")[1].split()[0]) for cell in summary.split("; ")[1:]]
    assert sum(items) == 12 and min(items) >= 4, summary

    # A killed run, restarted: only the missing outputs are made again, by the two ranks.
    # The pair list leaves the broken driving out: nothing fails, every rank exits 0.
    gone = names[:3]
    kept = {n: (tmp_path / "two" / n).stat().st_mtime_ns for n in names[3:]}
    for name in gone:
        (tmp_path / "two" / name).unlink()
    pairs = tmp_path / "pairs.csv"
    good = sorted(p.name for p in (batch / "drivings").glob("creature_*.gif"))
    pairs.write_text("".join(f"s{i}.png,{d}\n" for d in good for i in range(3)))
    again = _torchrun(
        "animate", *args, "-o", tmp_path / "two", *common, "--skip-existing", "--pair-list", pairs
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "written          │     3" in again.stdout
    assert "skipped (exists) │     6" in again.stdout
    for name in gone:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    assert {n: (tmp_path / "two" / n).stat().st_mtime_ns for n in names[3:]} == kept

    # Without --skip-existing or --overwrite the finished outputs are refused, once (rank 0),
    # before any rank loads the model, and none is written again.
    kept = {n: (tmp_path / "two" / n).stat().st_mtime_ns for n in names}
    refused = _torchrun("animate", *args, "-o", tmp_path / "two", *common, "--pair-list", pairs)
    assert refused.returncode == 1
    both = refused.stdout + refused.stderr
    assert both.count("exists (9 of the 9 outputs this batch would write do)") == 1, both[-3000:]
    assert "/donkey/cli/" not in refused.stderr and "/donkey/runtime/" not in refused.stderr
    assert {n: (tmp_path / "two" / n).stat().st_mtime_ns for n in names} == kept


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded eval")
    synthesize(root / "videos", 5, size=32, seed=41, frames=(3, 10))
    (root / "videos" / "zz_broken.gif").write_bytes(b"not a gif")
    synthesize(root / "pairs", 3, size=32, seed=42, pairs=True, frames=(4, 8))
    return root


def test_sharded_eval_equals_one_process(eval_data, tiny_ckpt):
    args = [
        "eval", "--model", tiny_ckpt, "--device", "cpu", "--data", eval_data / "videos",
        "--pairs", eval_data / "pairs" / "pairs.json", "--json", "--details",
    ]  # fmt: skip
    one, two = _single(*args), _torchrun(*args)
    # zz_broken.gif is skipped and listed by both, and both exit 1 for it after the JSON.
    assert one.returncode == 1, one.stderr[-2000:]
    assert two.returncode == 1, two.stderr[-3000:]
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # rank 0 alone prints the JSON
    assert a["skipped"] == b["skipped"] and len(a["skipped"]) == 1
    assert "zz_broken.gif" in a["skipped"][0]
    assert a["videos"] == b["videos"] == 5 and a["pairs"] == b["pairs"] == 3
    for key in ("l1", "identity_l1", "transfer_l1", "transfer_identity_l1"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    assert [v["video"] for v in b["per_video"]] == [v["video"] for v in a["per_video"]]
    for va, vb in zip(a["per_video"], b["per_video"]):
        assert vb["l1"] == pytest.approx(va["l1"], abs=1e-6)
    assert two.stderr.count("zz_broken.gif") == 1  # the skipped file, listed once (rank 0)


def test_an_error_every_rank_hits_is_printed_once(batch, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    two = _torchrun(
        "animate", batch / "sources", batch / "drivings", "-o", tmp_path / "out",
        "--model", bad, "--device", "cpu",
    )  # fmt: skip
    assert two.returncode == 1
    both = two.stdout + two.stderr
    assert both.count("bad.ckpt: corrupt or not a checkpoint") == 1, both[-3000:]
    # torchrun prints its own traceback (ChildFailedError); none comes from donkey's code.
    assert "/donkey/cli/" not in two.stderr and "/donkey/runtime/" not in two.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.gpu
def test_two_ranks_on_the_gpu_match_one_process(batch, tiny_ckpt, tmp_path):
    """Both ranks on CUDA (one GPU is shared when there is only one): the same frames."""
    import numpy as np

    from donkey.data.media import read_frames

    good = tmp_path / "drivings"
    good.mkdir()
    for path in (batch / "drivings").glob("creature_*.gif"):
        shutil.copy(path, good / path.name)
    common = ["--model", tiny_ckpt, "--device", "cuda"]
    one = _single("animate", batch / "sources", good, "-o", tmp_path / "one", *common)
    two = _torchrun("animate", batch / "sources", good, "-o", tmp_path / "two", *common)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-3000:]
    assert "engine torch on cuda:0" in two.stdout
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert len(names) == 9 and sorted(p.name for p in (tmp_path / "two").iterdir()) == names
    for name in names:
        a = read_frames(tmp_path / "one" / name).frames.astype(np.int16)
        b = read_frames(tmp_path / "two" / name).frames.astype(np.int16)
        # Same kernels on the same GPU; a rounding difference may still flip a palette entry.
        assert a.shape == b.shape and np.abs(a - b).mean() < 0.1, name
