"""TensorRT code paths against a recording fake of the `tensorrt` module (no GPU needed),
in its TensorRT 10 and TensorRT 11 flavours."""

import dataclasses
import json
import sys

import pytest
import torch

from donkey.artifacts.manifest import GpuIdentity, Manifest
from donkey.artifacts.settings import BatchRange
from donkey.artifacts.verify import verify_folder
from donkey.export.onnx_folder import export_onnx
from donkey.export.tensorrt_build import (
    EngineSettings,
    build_engine,
    build_engines,
    profile_shapes,
    timing_cache_file,
)
from donkey.model.errors import DonkeyError
from donkey.model.spec import graph_specs
from donkey.runtime.loader import load_model
from donkey.runtime.trt_backend import TrtBackend, check_engine_identity, torch_dtype
from tests.fakes import fake_tensorrt


@pytest.fixture(params=fake_tensorrt.FLAVOURS, ids=lambda f: f"trt{f}")
def fake_trt(request, monkeypatch):
    return fake_tensorrt.install(monkeypatch, request.param)


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
    # Strongly typed: bit STRONGLY_TYPED (= 1) on TensorRT 10; always, with no flag, on 11.
    assert ("create_network", {"10": 2, "11": 0}[fake_trt.flavour()]) in calls
    assert ("set_memory_pool_limit", 0, 2 * (1 << 30)) in calls
    assert ("clear_flag", "TF32") in calls
    shaped = {c[1]: c[2:] for c in calls if c[0] == "set_shape"}
    assert set(shaped) == set(spec.input_names)
    assert shaped["grid"] == ((1, 16, 16, 2), (8, 16, 16, 2), (64, 16, 16, 2))
    header = f"fake-timing-cache|{fake_trt.__version__}|Fake GPU 80GB sm9.0|".encode()
    assert cache.read_bytes() == header + b"1"
    fake_trt.reset()
    build_engine(fake_trt, onnx_dir / "generator.onnx", tmp_path / "g2.engine", spec, settings)
    assert ("create_timing_cache", header + b"1") in fake_trt.calls  # reused
    assert ("set_timing_cache", False) in fake_trt.calls  # mismatches are not ignored
    assert cache.read_bytes() == header + b"2"


def test_build_engines_writes_manifest_with_version_and_gpu(fake_trt, onnx_dir, tmp_path):
    out = tmp_path / "engines"
    seconds = build_engines(onnx_dir, out, EngineSettings(batch=BatchRange(1, 4, 8)))
    assert set(seconds) == {"kp_detector", "dense_motion", "source_encoder", "generator"}
    manifest = json.loads((out / "manifest.json").read_text())
    engine = manifest["engine"]
    assert manifest["format"] == "trt" and engine["tensorrt_version"] == fake_trt.__version__
    assert engine["gpu"] == {"name": "Fake GPU 80GB", "compute_capability": "9.0"}
    assert engine["batch"] == {"min": 1, "opt": 4, "max": 8}
    assert engine["strongly_typed"] is True
    typed = verify_folder(out)  # what build_engines writes, the loaders read
    assert typed.engine.batch == BatchRange(1, 4, 8)
    assert (
        typed.graphs["generator"].onnx_sha256 == Manifest.read(onnx_dir).graphs["generator"].sha256
    )
    cache = timing_cache_file(out, fake_trt.__version__, engine["gpu"])
    assert cache.is_file() and fake_trt.__version__ in cache.name and "Fake_GPU_80GB" in cache.name


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
    h100 = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    built = Manifest.read(engines)
    engine = dataclasses.replace(
        built.engine, tensorrt_version="10.99.0-fake", gpu=GpuIdentity(**h100)
    )
    manifest = dataclasses.replace(built, engine=engine)
    check_engine_identity(manifest, "10.99.0-fake", dict(h100), tmp_path)
    with pytest.raises(DonkeyError, match="TensorRT 10.99.0-fake, this is 10.1.0; rebuild"):
        check_engine_identity(manifest, "10.1.0", h100, tmp_path)
    a100 = {"name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}
    with pytest.raises(
        DonkeyError,
        match=r"built for NVIDIA H100 80GB HBM3 \(compute capability 9.0\), this GPU is "
        r"NVIDIA A100-SXM4-80GB \(compute capability 8.0\); rebuild",
    ):
        check_engine_identity(manifest, "10.99.0-fake", a100, tmp_path)


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


@pytest.fixture
def trt_on_cpu(fake_trt, monkeypatch, private_cache):
    """`app.models.load_model` with --engine trt on this CPU machine: the fake GPU passes the
    device checks, and the fake engines then run on CPU tensors."""
    from donkey.app import models

    monkeypatch.setattr("donkey.runtime.device.cuda_available", lambda: True)
    real_load = models.load_resolved

    def on_cpu(resolved, options=None):
        loaded = real_load(resolved, options)
        loaded.device = torch.device("cpu")
        for graph in loaded.graphs.values():
            graph.device = torch.device("cpu")
        return loaded

    monkeypatch.setattr(models, "load_resolved", on_cpu)
    return fake_trt


def test_engines_built_for_a_run_cover_its_batch_size(trt_on_cpu, onnx_dir, tiny_ckpt):
    """-b 100 used to build engines for 1..64 into the cache and fail at the first batch."""
    from donkey.app.models import load_model as load_any
    from donkey.runtime.animator import Animator

    assert BatchRange.covering(8) == BatchRange() == BatchRange(1, 8, 64)  # same cache key
    assert BatchRange.covering(100) == BatchRange(1, 8, 100)
    loaded = load_any(onnx_dir, "trt", "cuda", batch_size=100)
    assert loaded.manifest.engine.batch == BatchRange(1, 8, 100)
    torch.manual_seed(0)
    source, driving = torch.rand(1, 3, 32, 32), torch.rand(100, 3, 32, 32)
    got = Animator(loaded, batch_size=100).animate(source, driving)
    reference = Animator(load_model(tiny_ckpt, "torch", "cpu"), batch_size=100)
    torch.testing.assert_close(got, reference.animate(source, driving), atol=1e-4, rtol=0)
    assert ("set_input_shape", "image", (100, 3, 32, 32)) in trt_on_cpu.calls


def test_engine_folders_that_cannot_run_the_batch_size_are_refused_before_loading(
    trt_on_cpu, onnx_dir, tmp_path
):
    from donkey.app.models import load_model as load_any

    narrow, late = tmp_path / "narrow", tmp_path / "late"
    build_engines(onnx_dir, narrow, EngineSettings(batch=BatchRange(1, 8, 16)))
    build_engines(onnx_dir, late, EngineSettings(batch=BatchRange(4, 4, 64)))
    trt_on_cpu.reset()
    with pytest.raises(DonkeyError) as refused:
        load_any(narrow, "trt", "cuda", batch_size=32)
    assert str(refused.value) == (
        f"{narrow}: its engines take batches of at most 16 (--max-batch); use --batch-size 16 "
        "or less, or export again with --max-batch 32"
    )
    with pytest.raises(DonkeyError, match=r"late: its engines start at batch 4, and animating"):
        load_any(late, "trt", "cuda", batch_size=8)
    assert not [c for c in trt_on_cpu.calls if c[0] == "deserialize_cuda_engine"]
    assert load_any(narrow, "trt", "cuda", batch_size=16).manifest.engine.batch.max == 16
