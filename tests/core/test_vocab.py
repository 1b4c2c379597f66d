"""donkey/core (the vocabulary and the engine table) is the standard library only, and the
engine table answers what the loaders, the CLI and the bench ask of it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from donkey.core import engines, vocab
from tests.conftest import ROOT

CORE = Path(engines.__file__).resolve().parent


def test_core_modules_import_only_the_standard_library():
    """Read off the syntax tree (function bodies included): `donkey --help` loads them."""
    wrong = []
    for path in sorted(CORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and not name.startswith("donkey.core"):
                    wrong.append(f"{path.name}: {name}")
    assert wrong == []


def test_importing_the_vocabulary_loads_nothing_outside_the_standard_library():
    probe = (
        "import json, sys; before = set(sys.modules); "
        "import donkey.core.vocab, donkey.core.engines; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    loaded = {name.partition(".")[0] for name in json.loads(done.stdout)}
    assert loaded - set(sys.stdlib_module_names) == {"donkey"}


def test_the_writers_and_the_media_readers_take_the_vocabulary():
    from donkey.data import writers

    assert set(writers._WRITERS) == set(vocab.OUTPUT_SUFFIXES)  # a writer per output format
    for suffix in vocab.OUTPUT_SUFFIXES:
        writers.check_output_suffix(Path(f"x{suffix}"))
    assert vocab.FFMPEG_SUFFIXES <= vocab.MEDIA_SUFFIXES


def test_the_engine_table_decides_defaults_refusals_and_builds(monkeypatch):
    assert engines.ENGINE_NAMES == ("torch", "ort", "trt", "openvino")
    monkeypatch.setattr(engines, "installed", lambda name: True)
    assert engines.default_engine("checkpoint", False, "cpu") == "torch"
    assert engines.default_engine("onnx", False, "cuda") == "ort"
    assert engines.default_engine("trt", False, "cuda") == "trt"
    assert engines.default_engine("onnx", True, "cpu") == "openvino"
    assert engines.default_engine("checkpoint", True, "cuda") == "ort"  # OpenVINO: CPU only
    monkeypatch.setattr(engines, "installed", lambda name: name != "openvino")
    assert engines.default_engine("onnx", True, "cpu") == "ort"
    assert engines.builds("trt", "checkpoint") == ("onnx", "trt")
    assert engines.builds("ort", "checkpoint") == engines.builds("openvino", "checkpoint")
    assert engines.builds("trt", "onnx") == ("trt",)
    assert engines.builds("torch", "onnx") == engines.builds("ort", "trt") == ()
    assert engines.folder_precisions("onnx") == ("fp32", "fp16", "int8")
    assert engines.folder_precisions("trt") == ("fp32", "fp16")
    assert engines.engines_running("int8") == ("ort", "openvino")
    assert engines.auto_device("openvino", cuda_available=True) == "cpu"
    assert engines.auto_device("trt", cuda_available=False) == "cpu"


@pytest.mark.parametrize(
    "precision, engine, words",
    [
        ("int8", "torch", "--precision int8 runs on --engine ort or openvino, not torch"),
        ("bf16", "ort", "--precision bf16 runs on --engine torch, not ort"),
        ("fp16", "openvino", "--engine openvino runs fp32, int8, not --precision fp16"),
        ("fp8", "torch", "precision must be one of fp32, fp16, bf16, int8, got 'fp8'"),
        ("fp16", "trt", None),
    ],
)
def test_precision_refusals_name_what_runs_it(precision, engine, words):
    assert engines.precision_refusal(precision, engine) == words


def test_every_engine_has_a_loader_and_an_install_hint():
    from donkey.runtime import loader  # noqa: F401 - registers the engines
    from donkey.runtime.backend import _LOADERS

    assert set(_LOADERS) == set(engines.ENGINES)
    for name, spec in engines.ENGINES.items():
        assert spec.precisions and set(spec.precisions) <= set(vocab.PRECISIONS), name
        assert spec.runs in engines.KINDS and set(spec.devices) <= {"cpu", "cuda"}, name
        assert bool(spec.module) == bool(spec.install) == bool(spec.package), name
