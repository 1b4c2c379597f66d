"""Option values no run could finish with are refused in one line before any work."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from donkey.cli.app import app
from tests.conftest import run_cli

SAMPLE = Path(__file__).resolve().parents[2] / "donkey" / "assets" / "sample"


def _one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


@pytest.mark.parametrize("seed", ["-1", "9223372036854775808"])
def test_synth_refuses_a_seed_out_of_range_and_writes_nothing(runner, tmp_path, seed):
    result = runner.invoke(app, ["synth", str(tmp_path / "s"), "--count", "1", "--seed", seed])
    assert result.exit_code == 1
    assert f"--seed must be an integer in [0, 9223372036854775807], got {seed}" in _one_line(result)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("opset", ["15", "20", "24"])
def test_export_refuses_an_opset_it_cannot_write_or_lint(runner, tiny_ckpt, tmp_path, opset):
    out = tmp_path / "e"
    result = runner.invoke(
        app, ["export", "--model", str(tiny_ckpt), "-o", str(out), "--opset", opset]
    )
    assert result.exit_code == 2
    assert "must be in [16, 19]" in _one_line(result) and f"got {opset}" in result.output
    assert not out.exists()


def test_bench_refuses_a_batch_it_would_render_for_minutes(runner):
    result = runner.invoke(app, ["bench", "--engine", "torch", "--batch-sizes", "8,100000"])
    assert result.exit_code == 1
    assert "--batch-sizes values must be at most 1024, got '8,100000'" in _one_line(result)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_as_driving_is_refused_not_waited_on(tmp_path):
    source = shutil.copy(SAMPLE / "source.png", tmp_path / "source.png")
    pipe = tmp_path / "driving.gif"
    os.mkfifo(pipe)
    result = run_cli("animate", source, pipe, "-o", tmp_path / "out.gif", timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "driving.gif: not a regular file" in result.stderr
    assert not (tmp_path / "out.gif").exists()


@pytest.mark.parametrize("name", ["x.onnx", "x.txt", "x"])
def test_init_writes_only_checkpoint_formats(runner, tmp_path, name):
    result = runner.invoke(app, ["init", "tiny", "-o", str(tmp_path / name)])
    assert result.exit_code == 1
    assert (
        "unsupported output format" in _one_line(result)
        and "use .ckpt or .safetensors" in result.output
    )
    assert list(tmp_path.iterdir()) == []


def test_save_weights_refuses_other_suffixes(tiny_networks, tmp_path):
    from donkey.model.checkpoint import save_checkpoint
    from donkey.model.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"m.pt: unsupported checkpoint format '.pt'"):
        save_checkpoint(tmp_path / "m.pt", tiny_networks)
    assert list(tmp_path.iterdir()) == []
