"""TensorRT code paths against a recording fake of the `tensorrt` module (no GPU needed)."""

import json
import sys

import pytest
import torch

from donkey.artifacts.manifest import Manifest
from donkey.artifacts.settings import BatchRange
from donkey.artifacts.verify import verify_folder
from donkey.export.onnx_folder import export_onnx
from donkey.export.tensorrt_build import EngineSettings, build_engine, build_engines, profile_shapes
from donkey.model.errors import DonkeyError
from donkey.model.spec import graph_specs
from donkey.runtime.loader import load_model
from donkey.runtime.trt_backend import TrtBackend, check_engine_identity, torch_dtype
from tests.fakes import fake_tensorrt


@pytest.fixture()
def fake_trt(monkeypatch):
    fake_tensorrt.reset()
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt.as_module())
    monkeypatch.setattr(
        "donkey.export.tensorrt_build.gpu_identity",
        lambda index=0: {"name": "Fake GPU", "compute_capability": "9.0"},
    )
    return fake_tensorrt


@pytest.fixture(scope="module")
def onnx_dir(tiny_ckpt, tmp_path_factory):
    return export_onnx(tiny_ckpt, tmp_path_factory.mktemp("trt src") / "onnx").folder


def test_profile_shapes_follow_the_batch_options(tiny_config):
    spec = graph_specs(tiny_config.model)["dense_motion"]
    shapes = profile_shapes(spec, BatchRange(2, 4, 16))
    assert shapes["source"] == ((2, 3, 32, 32), (4, 3, 32, 32), (16, 3, 32, 32))
    assert shapes["kp_source_var"] == ((2, 4, 2, 2), (4, 4, 2, 2), (16, 4, 2, 2))
    with pytest.raises(DonkeyError):
        BatchRange(4, 2, 8)


def test_engine_build_settings_and_timing_cache_reuse(fake_trt, onnx_dir, tmp_path, tiny_config):
    spec = graph_specs(tiny_config.model)["generator"]
    cache = tmp_path / "timing.cache"
    settings = EngineSettings(batch=BatchRange(1, 8, 64), workspace_gb=2.0, timing_cache=cache)
    build_engine(fake_trt, onnx_dir / "generator.onnx", tmp_path / "g.engine", spec, settings)
    calls = fake_trt.calls
    assert ("create_network", 1 << 5) in calls  # strongly typed
    assert ("set_memory_pool_limit", 0, 2 * (1 << 30)) in calls
    assert ("clear_flag", "TF32") in calls
    shaped = {c[1]: c[2:] for c in calls if c[0] == "set_shape"}
    assert set(shaped) == set(spec.input_names)
    assert shaped["grid"] == ((1, 16, 16, 2), (8, 16, 16, 2), (64, 16, 16, 2))
    assert cache.read_bytes() == b"fake-timing-cache:1"
    fake_trt.reset()
    build_engine(fake_trt, onnx_dir / "generator.onnx", tmp_path / "g2.engine", spec, settings)
    assert ("create_timing_cache", b"fake-timing-cache:1") in fake_trt.calls  # reused
    assert cache.read_bytes() == b"fake-timing-cache:2"


def test_build_engines_writes_manifest_with_version_and_gpu(fake_trt, onnx_dir, tmp_path):
    out = tmp_path / "engines"
    seconds = build_engines(onnx_dir, out, EngineSettings(batch=BatchRange(1, 4, 8)))
    assert set(seconds) == {"kp_detector", "dense_motion", "source_encoder", "generator"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "trt" and manifest["engine"]["tensorrt_version"] == "10.99.0-fake"
    assert manifest["engine"]["gpu"]["compute_capability"] == "9.0"
    assert manifest["engine"]["batch"] == {"min": 1, "opt": 4, "max": 8}
    typed = verify_folder(out)  # what build_engines writes, the loaders read
    assert typed.engine.batch == BatchRange(1, 4, 8)
    assert (
        typed.graphs["generator"].onnx_sha256 == Manifest.read(onnx_dir).graphs["generator"].sha256
    )
    assert (out / "timing.cache").exists()


def test_trt_backend_runs_named_buffers_and_returns_fresh_outputs(
    fake_trt, onnx_dir, tmp_path, tiny_ckpt
):
    out = tmp_path / "engines"
    build_engines(onnx_dir, out, EngineSettings(batch=BatchRange(1, 2, 4)))
    reference = load_model(tiny_ckpt, "torch", "cpu")
    spec = reference.graphs["kp_detector"].spec
    backend = TrtBackend(out / "kp_detector.engine", spec, torch.device("cpu"))
    torch.manual_seed(0)
    first_in, second_in = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    first = backend.infer({"image": first_in})
    kept = {k: v.clone() for k, v in first.items()}
    second = backend.infer({"image": second_in})
    for name in spec.output_names:
        assert torch.equal(first[name], kept[name])  # the second call did not overwrite the first
        assert not torch.equal(first[name], second[name])
    expected = reference.graphs["kp_detector"].infer({"image": first_in})
    torch.testing.assert_close(first["kp_mean"], expected["kp_mean"], atol=1e-5, rtol=0)
    addressed = {c[1] for c in fake_trt.calls if c[0] == "set_tensor_address"}
    assert addressed == set(spec.input_names + spec.output_names)
    assert ("set_input_shape", "image", (3, 3, 32, 32)) in fake_trt.calls
    with pytest.raises(DonkeyError, match="outside the engine's range 1..4"):
        backend.infer({"image": torch.rand(5, 3, 32, 32)})


def test_dtype_mapping_and_identity_checks(fake_trt, onnx_dir, tmp_path):
    engines = tmp_path / "engines"
    build_engines(onnx_dir, engines, EngineSettings(batch=BatchRange(1, 2, 4)))
    assert torch_dtype(fake_trt.DataType.HALF) == torch.float16
    assert torch_dtype(fake_trt.DataType.FLOAT) == torch.float32
    assert torch_dtype(fake_trt.DataType.INT32) == torch.int32
    manifest = Manifest.read(engines)
    check_engine_identity(manifest, "10.99.0-fake", {"compute_capability": "9.0"}, tmp_path)
    with pytest.raises(DonkeyError, match="TensorRT 10.99.0-fake, this is 10.1.0; rebuild"):
        check_engine_identity(manifest, "10.1.0", {"compute_capability": "9.0"}, tmp_path)
    with pytest.raises(DonkeyError, match="compute capability 9.0, this GPU is 8.0; rebuild"):
        check_engine_identity(manifest, "10.99.0-fake", {"compute_capability": "8.0"}, tmp_path)


def test_engine_folders_need_cuda_and_missing_tensorrt_is_one_line(onnx_dir, monkeypatch):
    with pytest.raises(DonkeyError, match="--engine trt needs --device cuda"):
        load_model(onnx_dir, "trt", "cpu")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    from donkey.artifacts.gpu import import_tensorrt

    with pytest.raises(
        DonkeyError, match=r"TensorRT is not installed: pip install 'donkey\[trt\]'"
    ):
        import_tensorrt()


def test_export_all_writes_both_folders_whole(fake_trt, tiny_ckpt, tmp_path, monkeypatch, runner):
    from donkey.cli.app import app

    monkeypatch.setattr(
        "donkey.artifacts.gpu.gpu_identity",
        lambda index=0: {"name": "Fake GPU", "compute_capability": "9.0"},
    )
    out = tmp_path / "all"
    args = ["export", "--model", str(tiny_ckpt), "-o", str(out), "--format", "all"]
    result = runner.invoke(app, [*args, "--max-batch", "16"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["onnx", "trt"]
    assert verify_folder(out / "onnx").format == "onnx"
    engines = verify_folder(out / "trt")
    assert engines.format == "trt" and engines.engine.batch == BatchRange(1, 8, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all"]  # no temporary sibling
    # A failing engine build leaves the previous export as it was, and nothing beside it.
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr(
        "donkey.export.tensorrt_build.build_engine",
        lambda *a, **k: (_ for _ in ()).throw(DonkeyError("x.onnx: TensorRT failed to build")),
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "TensorRT failed to build" in result.output
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and sorted(p.name for p in tmp_path.iterdir()) == ["all"]
