"""A killed atomic folder writer leaves a hidden `.NAME.PID-HOST.XXXXXXXX.tmp` sibling; the next
write to the same target removes it, and only it, once that process is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from donkey.artifacts import folders
from donkey.artifacts.folders import make_stage, remove_stale_stages, staged_folder
from donkey.export.cache import _build_into

ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import sys, time
from donkey.artifacts.folders import staged_folder
with staged_folder(sys.argv[1]) as stage:
    (stage / "half.onnx").write_bytes(b"partial")
    print(stage, flush=True)
    time.sleep(120)
"""


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_writers_folder_is_removed_by_the_next_write(tmp_path, capfd):
    target = tmp_path / "exp"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        stage = Path(writer.stdout.readline().strip())
        assert stage.parent == tmp_path and stage.name.startswith(f".exp.{writer.pid}-")
        assert (stage / "half.onnx").is_file()
        with staged_folder(target) as mine:  # the writer is alive: its folder stays
            (mine / "a").write_text("1")
        assert stage.is_dir()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert _hidden(tmp_path) == [stage.name]  # what a killed export leaves behind
    capfd.readouterr()

    with staged_folder(target, replace=True) as mine:
        (mine / "a").write_text("2")
    err = capfd.readouterr().err
    assert err == (
        f"removed {stage}, left by an earlier write to exp that did not finish "
        f"(process {writer.pid}, no longer running)\n"
    )
    assert _hidden(tmp_path) == [] and (target / "a").read_text() == "2"


def test_only_dead_writers_of_this_target_on_this_host_are_removed(tmp_path):
    target = tmp_path / "exp"
    dead, host = _dead_pid(), folders._host_tag()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        planted = {
            "stale": f".exp.{dead}-{host}.abcd_123.tmp",
            "stale cache build": f".exp.{dead}-{host}.zzzzzzzz.tmp",
            "live writer": f".exp.{sleeper.pid}-{host}.abcd_123.tmp",
            "another host or container": f".exp.{dead}-{'0' * 8 if host != '0' * 8 else '1' * 8}.abcd_123.tmp",
            "another target": f".exp2.{dead}-{host}.abcd_123.tmp",
            "a target named exp.5": f".exp.5.{dead}-{host}.abcd_123.tmp",
            "an earlier version's name": ".exp.abcd_123.tmp",
            "old export set aside, target missing": f".exp.{dead}-{host}.abcd_123.old",
        }
        for name in planted.values():
            (tmp_path / name).mkdir()
            (tmp_path / name / "f").write_text("x")
        (tmp_path / f".exp.{dead}-{host}.filefile.tmp").write_text("a file, not ours")
        lines: list[str] = []
        removed = remove_stale_stages(target, note=lines.append)
        stale = {planted["stale"], planted["stale cache build"]}
        assert sorted(p.name for p in removed) == sorted(stale)
        assert len(lines) == 2 and all(f"process {dead}, no longer running" in m for m in lines)
        kept = set(planted.values()) - stale
        assert set(_hidden(tmp_path)) == kept | {f".exp.{dead}-{host}.filefile.tmp"}

        target.mkdir()  # with the target in place, a dead writer's set-aside copy is garbage
        removed = remove_stale_stages(target, note=lines.append)
        assert [p.name for p in removed] == [planted["old export set aside, target missing"]]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_cache_cleans_up_after_a_killed_build_too(tmp_path, capfd):
    target = tmp_path / "onnx" / "0123456789abcdef0123"
    target.parent.mkdir()
    stale = tmp_path / "onnx" / f".{target.name}.{_dead_pid()}-{folders._host_tag()}.q1w2e3r4.tmp"
    stale.mkdir()
    (stale / "kp_detector.onnx").write_bytes(b"partial")

    def build(tmp: Path) -> None:
        assert tmp.name.startswith(f".{target.name}.{os.getpid()}-")
        (tmp / "manifest.json").write_text("{}")

    assert _build_into(target, build) == target
    assert "left by an earlier write to 0123456789abcdef0123" in capfd.readouterr().err
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


def test_stage_names_say_which_process_wrote_them(tmp_path):
    stage = make_stage(tmp_path / "out")
    assert stage.is_dir() and list(stage.iterdir()) == []
    name, pid_host, rand, suffix = stage.name[1:].split(".")
    assert (name, suffix) == ("out", "tmp") and len(rand) == 8
    assert pid_host == f"{os.getpid()}-{folders._host_tag()}"
    # Our own stages are never stale, whatever their age.
    time.sleep(0.01)
    assert remove_stale_stages(tmp_path / "out", note=pytest.fail) == []
