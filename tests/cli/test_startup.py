"""`donkey --help` and every `donkey CMD --help` import nothing heavy (no timing: the modules
loaded are the proof), `--version`, shell completion, and options refused while parsing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from donkey.cli.app import app
from tests.conftest import ROOT, run_cli

HEAVY = ("torch", "numpy", "onnxruntime", "onnx", "imageio", "gradio", "PIL", "yaml", "safetensors")

_PROBE = """
import json, sys
from typer.testing import CliRunner
from donkey.cli.app import app
runner = CliRunner()
codes = {}
for command in json.loads(sys.argv[1]):
    result = runner.invoke(app, command)
    codes[" ".join(command)] = [result.exit_code, result.output[-300:]]
heavy = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def _probe(commands: list[list[str]]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(commands), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_help_imports_nothing_heavy():
    names = sorted(app.registered_commands[i].name for i in range(len(app.registered_commands)))
    assert len(names) >= 13 and "configs" in names  # every command, however many
    commands = [["--help"]] + [[name, "--help"] for name in names]
    report = _probe(commands)
    assert report["heavy"] == []
    for command, (code, output) in report["codes"].items():
        assert code == 0, (command, output)


def test_bad_choices_are_refused_before_anything_heavy_is_imported():
    bad = [
        ["animate", "s.png", "d.gif", "-o", "o.gif", "--mode", "relativ"],
        ["animate", "s.png", "d.gif", "-o", "o.gif", "--engine", "onnx"],
        ["animate", "s.png", "d.gif", "-o", "o.gif", "--background", "pinkish"],
        ["animate", "s.png", "d.gif", "-o", "o.gif", "--device", "gpu"],
        ["animate", "s.png", "d.gif", "-o", "o.gif", "--precision", "fp8"],
        ["bench", "--engine", "torch,tensorrt"],
        ["export", "-o", "x", "--format", "tflite"],
        ["eval", "--data", "d", "--split", "test"],
        ["synth", "out", "--gaits", "walk,fly"],
        ["pairs", "d", "-o", "p.json", "--keypoints", "pose"],
    ]
    report = _probe(bad)
    # Colour names are looked up in Pillow's table (PIL.ImageColor, no numpy).
    assert set(report["heavy"]) <= {"PIL"}
    assert [code for code, _ in report["codes"].values()] == [2] * len(bad)


def test_usage_error_is_one_line_naming_the_option_and_choices():
    done = run_cli("animate", "s.png", "d.gif", "-o", "o.gif", "--mode", "relativ")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: python -m donkey animate: Invalid value for '--mode': 'relativ' is not one "
        "of 'relative', 'absolute'; see --help"
    ]
    done = run_cli("animate", "s.png", "d.gif", "-o", "o.gif", "--background", "pinkish")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "error: python -m donkey animate: Invalid value for '--background': not a colour: "
        "'pinkish' (give a name such as white, pink, gray, or hex #rrggbb); see --help"
    )


def test_help_lists_the_choices(runner):
    result = runner.invoke(app, ["animate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for shown in (
        "torch|ort|trt",
        "fp32|fp16",
        "relative|absolute",
        "pad|crop|stretch",
        "gif|mp4|png",
    ):
        assert shown in result.output
    assert "[auto|cpu|cuda|cuda:N]" in result.output


def test_version_names_every_runtime():
    done = run_cli("--version")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "donkey 0.1.0"
    keys = [line.split(":")[0] for line in lines[1:]]
    assert keys == ["python", "torch", "onnxruntime", "tensorrt", "openvino", "CPU"]
    import torch

    from donkey.runtime.cpu_features import describe

    assert lines[-1] == describe()  # names the bf16 / int8 extensions present or missing
    assert f"torch: {torch.__version__} (CUDA " in done.stdout
    if not torch.cuda.is_available():
        assert "no GPU visible" in done.stdout
    from importlib.metadata import PackageNotFoundError, version

    try:
        assert f"openvino: {version('openvino')} (--engine openvino, CPU)" in lines
    except PackageNotFoundError:
        assert "openvino: not installed (pip install 'donkey[openvino]'" in done.stdout


def test_shell_completion_is_on(runner):
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "--install-completion" in result.output and "--show-completion" in result.output
    done = subprocess.run(
        [sys.executable, "-m", "donkey"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={
            **__import__("os").environ,
            "_DONKEY_COMPLETE": "complete_bash",
            "COMP_WORDS": "donkey an",
            "COMP_CWORD": "1",
        },
    )
    # Typer's completion protocol answers with the matching command.
    assert "animate" in done.stdout, (done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("text", "rgb"),
    [
        ("pink", (255, 192, 203)),
        ("#ffc0cb", (255, 192, 203)),
        ("ffc0cb", (255, 192, 203)),
        ("FFC0CB", (255, 192, 203)),
        ("#fcb", (255, 204, 187)),
        ("white", (255, 255, 255)),
        ("Gray", (128, 128, 128)),
        (" black ", (0, 0, 0)),
    ],
)
def test_colours_by_name_or_hex(text, rgb):
    from donkey.data.colours import parse_colour

    assert parse_colour(text) == rgb


@pytest.mark.parametrize("text", ["pinkish", "#ffc0c", "gg0000", "", "#", "rgb", "12345"])
def test_bad_colours_are_refused(text):
    from donkey.data.colours import parse_colour

    with pytest.raises(ValueError, match="not a colour: "):
        parse_colour(text)
