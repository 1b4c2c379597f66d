"""Shared fixtures: a tiny model, media files, all under paths that contain spaces."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from donkey.cli.app import app
from donkey.model.checkpoint import save_checkpoint
from donkey.model.config import Config, load_config
from donkey.model.networks import Networks

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
SHARED_DATA = ROOT.parent / "shared" / "data"
MGIF_TRAIN = SHARED_DATA / "mgif128" / "train"


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


torch.set_num_threads(min(2, os.cpu_count() or 1))


def needs_shared_data() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not MGIF_TRAIN.is_dir(),
        reason=f"development data not found at {MGIF_TRAIN} (only present in the dev/CI checkout)",
    )


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """Export and engine caches of the tests stay out of the user's ~/.cache/donkey."""
    path = tmp_path_factory.mktemp("donkey cache")
    os.environ["DONKEY_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_config() -> Config:
    return load_config(CONFIGS / "tiny.yaml")


@pytest.fixture(scope="session")
def spaced_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("with spaces") / "a folder with spaces"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def tiny_networks(tiny_config) -> Networks:
    torch.manual_seed(0)
    nets = Networks(tiny_config.model)
    # Non-zero gates and a non-trivial motion head so tests see every path do something.
    with torch.no_grad():
        for name, p in nets.named_parameters():
            if name.endswith("gate"):
                p.fill_(0.5)
        last = nets.generator.dense_motion_module.hourglass.decoder.conv
        last.weight.normal_(0, 0.05)
    return nets.eval()


@pytest.fixture(scope="session")
def tiny_ckpt(tiny_networks, spaced_dir) -> Path:
    return save_checkpoint(spaced_dir / "tiny model.ckpt", tiny_networks)


def make_creature_frames(t: int = 6, size: int = 48, seed: int = 0) -> np.ndarray:
    """A coloured blob moving across a light background: (T, size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    colour = rng.integers(30, 200, size=3)
    frames = np.full((t, size, size, 3), 235, dtype=np.uint8)
    for i in range(t):
        cx = size * (0.3 + 0.4 * i / max(t - 1, 1))
        cy = size * 0.5 + 3 * np.sin(i)
        mask = ((xx - cx) / (size * 0.2)) ** 2 + ((yy - cy) / (size * 0.12)) ** 2 <= 1
        frames[i][mask] = colour
    return frames


@pytest.fixture()
def runner() -> CliRunner:
    # CliRunner's output mixes stderr into stdout: no plain progress lines there (a slow,
    # loaded machine would otherwise print some into --json output); tests that check them
    # set DONKEY_PROGRESS_SECONDS themselves.
    return CliRunner(env={"DONKEY_PROGRESS_SECONDS": "inf"})


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs `python -m donkey` in a real process (exit codes, stderr, no traceback)."""
    return subprocess.run(
        [sys.executable, "-m", "donkey", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=timeout,
    )


def pytest_collection_modifyitems(config, items):
    """`gpu` tests skip themselves without CUDA, with the reason shown."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (CUDA not available)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def invoke(runner: CliRunner, *args) -> tuple[int, str]:
    """A CLI call in this process: (exit code, output), failing the test on a traceback or on
    any exception other than a clean exit (typer.Exit / SystemExit)."""
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.output


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]
