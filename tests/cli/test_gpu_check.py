"""scripts/gpu_check.py (`make gpu-check`): what runs without a GPU, and the refusal without one."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, load_script

SCRIPT = ROOT / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("gpu_check")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_one_line_and_exit_2(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out-dir", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu-check: no NVIDIA GPU present"), lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_target_needs_no_install():
    proc = subprocess.run(
        ["make", "-n", "gpu-check"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "scripts/gpu_check.py" in proc.stdout and "PYTHONPATH=" in proc.stdout
    assert "pip" not in proc.stdout and ".venv" not in proc.stdout


def test_gpu_name_becomes_a_file_name(gpu_check):
    assert gpu_check.gpu_slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert gpu_check.gpu_slug("NVIDIA GeForce RTX 4090") == "nvidia-geforce-rtx-4090"
    assert gpu_check.gpu_slug("../..") == "gpu"


def test_cases_follow_what_is_installed(gpu_check):
    cases, absent = gpu_check.plan_cases(["CPUExecutionProvider"], False, ["small"])
    assert [gpu_check.case_name(c) for c in cases] == ["small torch fp32", "small torch fp16"]
    assert {a["case"] for a in absent} == {"ort/cuda", "ort/trt", "trt"}
    every = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    cases, absent = gpu_check.plan_cases(every, True, ["small", "mgif"])
    assert absent == [] and len(cases) == 16
    assert [gpu_check.case_name(c) for c in cases[:8]] == [
        "small torch fp32", "small torch fp16", "small ort/cuda fp32", "small ort/cuda fp16",
        "small ort/trt fp32", "small ort/trt fp16", "small trt fp32", "small trt fp16",
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("engine, provider", [("torch", None), ("ort", "cpu")])
def test_a_bench_case_runs_in_its_own_process(gpu_check, engine, provider):
    """The child-process bench the check runs per engine, here on the CPU with the tiny config."""
    case = {"config": "tiny", "engine": engine, "provider": provider, "precision": "fp32"}
    outcome = gpu_check._run_case_process(case, [1, 2], 1, 240, device="cpu")
    assert "rows" in outcome, outcome
    rows = outcome["rows"]
    assert [r["batch"] for r in rows] == [1, 2]
    assert all(r["engine"] == engine and r["config"] == "tiny" and r["fps"] > 0 for r in rows)
    json.dumps(rows)


@pytest.mark.slow
def test_a_failing_case_is_one_line(gpu_check):
    case = {"config": "tiny", "engine": "trt", "provider": None, "precision": "fp32"}
    outcome = gpu_check._run_case_process(case, [1], 1, 240, device="cpu")
    assert "error" in outcome and "\n" not in outcome["error"]
    assert outcome["error"].startswith("DonkeyError: ") and "TensorRT" in outcome["error"]


def test_a_timeout_kills_the_whole_process_group(gpu_check, tmp_path):
    import subprocess
    import time
    from pathlib import Path

    pidfile = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired):
        gpu_check._run(["sh", "-c", f"sleep 60 & echo $! > '{pidfile}'; wait"], 2)
    pid = int(pidfile.read_text())
    time.sleep(0.5)
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1].startswith("Z")
