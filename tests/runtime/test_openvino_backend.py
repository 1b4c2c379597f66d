"""OpenVINO engine on the tiny model: fp32 parity with PyTorch, int8 folders, refusals."""

from __future__ import annotations

import builtins
import json

import imageio.v3 as iio
import pytest

from donkey.cli.app import app
from donkey.data.calibration import clip_set
from donkey.export.int8 import Int8Settings
from donkey.export.onnx_folder import export_onnx
from donkey.model.errors import DonkeyError
from donkey.runtime.backend import LoadOptions
from donkey.runtime.loader import load_model
from donkey.runtime.parity import assert_parity, clip_parity, graph_parity
from donkey.runtime.quality import measure_quality

pytest.importorskip(
    "openvino", reason="OpenVINO is not installed (make test installs it: pip install openvino)"
)

ALLOW = LoadOptions(allow_slow_precision=True)


@pytest.fixture(scope="module")
def folders(tiny_ckpt, tmp_path_factory):
    root = tmp_path_factory.mktemp("openvino exports")
    calibration = clip_set(32, None, "train", real=0, synthetic=3, frames=6)
    fp32 = export_onnx(tiny_ckpt, root / "fp32").folder
    int8 = export_onnx(
        tiny_ckpt, root / "int8", int8=Int8Settings(), calibration=calibration
    ).folder
    fp16 = export_onnx(tiny_ckpt, root / "fp16", fp16=True).folder
    return {"fp32": fp32, "int8": int8, "fp16": fp16}


def test_openvino_fp32_matches_pytorch_per_graph_and_over_a_clip(folders, tiny_ckpt):
    reference = load_model(tiny_ckpt, "torch", "cpu")
    ov = load_model(folders["fp32"], "openvino", "cpu", options=LoadOptions(threads=2))
    assert ov.engine == "openvino" and set(ov.graphs) == set(reference.graphs)
    rows = graph_parity(reference, ov, batches=(1, 3, 8))
    assert len(rows) >= 3 * len(reference.graphs)
    assert_parity(rows)  # images max abs <= 1e-4, keypoints <= 1e-5
    clips = clip_set(32, None, "val", real=0, synthetic=2, frames=5, seed=2)
    source, driving = clips.clips[0][0], clips.clips[1]
    assert_parity(clip_parity(reference, ov, source, driving, batch_size=2))


def test_openvino_runs_the_int8_folder_close_to_onnx_runtime(folders, tiny_ckpt):
    """Both runtimes read the same QDQ graphs; their int8 kernels round differently, so each
    is scored against fp32 PyTorch (tiny random model: ORT measured 65 dB, asserted >= 45)."""
    reference = load_model(tiny_ckpt, "torch", "cpu")
    clips = clip_set(32, None, "val", real=0, synthetic=3, frames=4, seed=1)
    reports = {}
    with pytest.warns(RuntimeWarning, match="ONNX Runtime runs these int8 graphs at about fp32"):
        load_model(folders["int8"], "ort", "cpu", "int8", options=ALLOW)
    for engine in ("ort", "openvino"):
        model = load_model(folders["int8"], engine, "cpu", "int8", options=ALLOW)
        assert model.precision["generator"] == "int8"
        reports[engine] = measure_quality(reference, model, clips)
    assert reports["openvino"].frames == 12
    assert 45.0 <= reports["openvino"].psnr_db < 150.0, reports["openvino"].line()
    assert abs(reports["openvino"].psnr_db - reports["ort"].psnr_db) < 10.0
    assert reports["openvino"].kp_max_abs <= 1e-5  # the keypoint detector stays fp32


def test_openvino_refuses_what_it_cannot_run(folders, tiny_ckpt, monkeypatch):
    assert load_model(folders["fp32"], "openvino", "auto").device.type == "cpu"  # CUDA or not
    with pytest.raises(DonkeyError, match="runs fp32 and int8 folders, this one has fp16 graphs"):
        load_model(folders["fp16"], "openvino", "cpu")
    with pytest.raises(
        DonkeyError, match="--engine openvino runs an ONNX folder, not a checkpoint"
    ):
        load_model(tiny_ckpt, "openvino", "cpu")
    with pytest.raises(DonkeyError, match="--precision bf16 runs on --engine torch, not openvino"):
        load_model(tiny_ckpt, "openvino", "cpu", "bf16")
    with pytest.raises(DonkeyError, match="an fp32 export, so --precision bf16 cannot apply"):
        load_model(folders["fp32"], "openvino", "cpu", "bf16")
    with pytest.raises(
        DonkeyError,
        match=r"an fp16 export, so --precision int8 cannot apply; give a checkpoint, or an export made for it \(export --int8\)",
    ):
        load_model(folders["fp16"], None, "cpu", "int8")
    with pytest.raises(
        DonkeyError, match="--engine openvino runs fp32, int8, not --precision fp16"
    ):
        load_model(tiny_ckpt, "openvino", "cpu", "fp16")  # refused before any export
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    model = load_model(folders["fp32"], "openvino", "cpu")
    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(DonkeyError, match="OpenVINO is not installed: pip install openvino"):
        load_model(folders["fp32"], "openvino", "cpu")  # refused at load, not at a frame
    with pytest.raises(DonkeyError, match="OpenVINO is not installed: pip install openvino"):
        model.graphs["kp_detector"].activate()
    import donkey.app.models as cli_models
    from donkey.core import engines

    monkeypatch.setattr(engines, "installed", lambda name: name != "openvino")
    with pytest.raises(DonkeyError, match="OpenVINO is not installed"):
        cli_models.load_model(tiny_ckpt, "openvino", "cpu", "int8")  # before any export


def test_openvino_names_the_file_it_cannot_read(folders, tmp_path):
    model = load_model(folders["fp32"], "openvino", "cpu")
    backend = model.graphs["generator"]
    broken = tmp_path / "generator.onnx"
    broken.write_bytes(b"\x08\x07garbage that is not a protobuf")
    backend.path, backend.sha256 = broken, None
    with pytest.raises(DonkeyError, match=r"generator\.onnx: OpenVINO cannot read it"):
        backend.activate()


def test_cli_animates_and_benches_a_checkpoint_on_openvino(runner, tiny_ckpt, tmp_path):
    clips = clip_set(32, None, "val", real=0, synthetic=2, frames=5, seed=4)
    source, driving = tmp_path / "source.png", tmp_path / "driving.gif"
    iio.imwrite(source, clips.clips[0][0])
    iio.imwrite(driving, clips.clips[1], loop=0)
    out = tmp_path / "out.gif"
    args = ["animate", str(source), str(driving), "-o", str(out), "--model", str(tiny_ckpt)]
    result = runner.invoke(app, [*args, "--engine", "openvino", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "engine openvino on cpu" in result.output
    assert iio.imread(out).shape == (5, 32, 32, 3)
    report = tmp_path / "bench.json"
    bench = ["bench", "--model", str(tiny_ckpt), "--engine", "ort,openvino", "--batch-sizes", "2"]
    bench += ["--precision", "fp32", "--device", "cpu", "--runs", "2", "--json", str(report)]
    result = runner.invoke(app, bench)
    assert result.exit_code == 0, result.output
    rows = json.loads(report.read_text())
    assert [r["engine"] for r in rows] == ["ort", "openvino"]
    assert rows[1]["psnr_db"] > 80.0 and rows[1]["kp_max_abs"] <= 1e-5


def test_int8_on_the_cpu_defaults_to_openvino_where_installed(folders, tiny_ckpt, monkeypatch):
    import donkey.runtime.loader as loader
    from donkey.core import engines

    assert load_model(folders["int8"], device="cpu", options=ALLOW).engine == "openvino"
    assert load_model(folders["fp32"], device="cpu").engine == "ort"  # fp32: what the folder is
    assert load_model(tiny_ckpt, device="cpu").engine == "torch"
    monkeypatch.setattr(engines, "installed", lambda name: name != "openvino")
    assert load_model(folders["int8"], device="cpu", options=ALLOW).engine == "ort"
    assert loader.default_engine("checkpoint", "int8", "cpu") == "ort"
    monkeypatch.setattr(engines, "installed", lambda name: True)
    assert loader.default_engine("checkpoint", "int8", "cpu") == "openvino"
    assert loader.default_engine("onnx", "fp32", "cpu", frozenset({"fp32", "int8"})) == "openvino"
    assert loader.default_engine("onnx", "fp32", "cuda", frozenset({"fp32", "int8"})) == "ort"
    assert loader.default_engine("onnx", "fp32", "cpu", frozenset({"fp32"})) == "ort"
    assert loader.default_engine("checkpoint", "fp32", "cpu") == "torch"


def test_bench_of_an_export_folder_picks_the_engines_that_run_it(runner, folders, tmp_path):
    out = tmp_path / "bench.json"
    args = ["bench", "--model", str(folders["int8"]), "--batch-sizes", "2", "--runs", "2"]
    result = runner.invoke(app, [*args, "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [(r["engine"], r["precision"]) for r in rows] == [("ort", "int8"), ("openvino", "int8")]
    assert "donkey bench (" in result.output and ", int8)" in result.output
    assert "PSNR and kp err: only against a checkpoint" in result.output


def test_the_cli_prints_our_warnings_as_one_line(runner, folders, tmp_path):
    clips = clip_set(32, None, "val", real=0, synthetic=2, frames=3, seed=5)
    source, driving = tmp_path / "s.png", tmp_path / "d.gif"
    iio.imwrite(source, clips.clips[0][0])
    iio.imwrite(driving, clips.clips[1], loop=0)
    args = ["animate", str(source), str(driving), "-o", str(tmp_path / "o.gif")]
    result = runner.invoke(app, [*args, "--model", str(folders["int8"]), "--engine", "ort"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "about fp32 speed" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: ")
    assert "RuntimeWarning" not in result.output and "engine_loader(" not in result.output
