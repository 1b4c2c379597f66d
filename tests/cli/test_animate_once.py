"""A single `donkey animate SRC DRV -o OUT` opens each input once and resolves the model once
(it opened each input three times and resolved the model twice): counted in a real process
with Python's audit hook on `open` and a wrapper round the model resolver."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT
from tests.hostile import good_gif

_COUNT = """
import collections, json, sys
from pathlib import Path
targets = {str(Path(p).resolve()): p for p in sys.argv[1:3]}
opens = collections.Counter()
def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, Path)):
        name = str(Path(args[0]).resolve()) if str(args[0]) else ""
        if name in targets:
            opens[targets[name]] += 1
sys.addaudithook(hook)
import donkey.runtime.loader as loader
calls = []
real = loader.resolve_model
def counted(*args, **kwargs):
    calls.append(1)
    return real(*args, **kwargs)
loader.resolve_model = counted
from donkey.cli.app import app
try:
    app(["animate", *sys.argv[1:], "--batch-size", "4"])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "opens": opens, "resolved": len(calls)}))
"""


def test_single_animate_opens_each_input_once_and_resolves_the_model_once(tmp_path, tiny_ckpt):
    source = good_gif(tmp_path / "cat.gif", frames=3, seed=1)  # an animation: its header says 3
    driving = good_gif(tmp_path / "horse.gif", frames=5, seed=2)
    out = tmp_path / "out.gif"
    done = subprocess.run(
        [sys.executable, "-c", _COUNT, str(source), str(driving), "-o", str(out), "--model",
         str(tiny_ckpt)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "opens": {str(source): 1, str(driving): 1}, "resolved": 1}
    # The warning about an animated source still comes, from the count the decoding read.
    assert "is an animation (3 frames)" in done.stderr
