"""TensorRT findings of issue 19 against the strict fake, in its TensorRT 10 and 11 flavours:
CUDA graphs per batch size, timing-cache failures, GPU identity, engine-sized buffers and
checked return values, the parser's operator list."""

from __future__ import annotations

import enum
import json
from dataclasses import replace

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from donkey.artifacts.gpu import device_key
from donkey.artifacts.manifest import EngineInfo, GpuIdentity, Manifest
from donkey.artifacts.settings import BatchRange
from donkey.export.cache import engine_key
from donkey.export.lint import lint_model
from donkey.export.onnx_folder import export_onnx
from donkey.export.tensorrt_build import (
    EngineSettings,
    build_engine,
    build_engines,
    network_flags,
    timing_cache_file,
)
from donkey.export.trt_rules import TRT_SUPPORTED_OPS
from donkey.model.errors import DonkeyError
from donkey.model.spec import graph_specs
from donkey.runtime.loader import load_model
from donkey.runtime.trt_backend import TrtBackend, check_engine_identity
from tests.fakes import fake_tensorrt


@pytest.fixture(params=fake_tensorrt.FLAVOURS, ids=lambda f: f"trt{f}")
def fake_trt(request, monkeypatch):
    return fake_tensorrt.install(monkeypatch, request.param)


@pytest.fixture(scope="module")
def onnx_dir(tiny_ckpt, tmp_path_factory):
    return export_onnx(tiny_ckpt, tmp_path_factory.mktemp("trt backend") / "onnx").folder


@pytest.fixture(scope="module")
def reference(tiny_ckpt):
    return load_model(tiny_ckpt, "torch", "cpu")


@pytest.fixture()
def engines(fake_trt, onnx_dir, tmp_path):
    out = tmp_path / "engines"
    build_engines(onnx_dir, out, EngineSettings(batch=BatchRange(1, 2, 4)))
    return out


@pytest.fixture()
def fake_cuda_graphs(fake_trt, monkeypatch):
    """torch.cuda's graph API replaced by the fake's recording graphs (no CUDA here)."""
    monkeypatch.setattr(torch.cuda, "CUDAGraph", fake_trt.FakeGraph)
    monkeypatch.setattr(torch.cuda, "graph", fake_trt.capture)
    return fake_trt


def _kp_backend(engines, reference, cuda_graphs=False) -> TrtBackend:
    backend = TrtBackend(
        engines / "kp_detector.engine", reference.graphs["kp_detector"].spec, torch.device("cpu")
    )
    backend.cuda_graphs = cuda_graphs  # the constructor allows graphs on CUDA devices only
    return backend


# Finding 1: CUDA graphs.


def test_cuda_graphs_capture_each_batch_size_on_its_own_context(
    fake_cuda_graphs, engines, reference
):
    backend = _kp_backend(engines, reference, cuda_graphs=True)
    torch.manual_seed(0)
    # A batch run: full, full, a short last batch, then full again (the next clip).
    for batch in (4, 4, 3, 4, 3):
        image = torch.rand(batch, 3, 32, 32)
        got = backend.infer({"image": image})
        want = reference.graphs["kp_detector"].infer({"image": image})
        torch.testing.assert_close(got["kp_mean"], want["kp_mean"], atol=1e-5, rtol=0)
    replays = [c for c in fake_cuda_graphs.calls if c[0] == "replay"]
    assert len(replays) == 3  # batches 4, 4, 3 replayed; each size captured once
    contexts = [c for c in fake_cuda_graphs.calls if c[0] == "create_execution_context"]
    assert len(contexts) == 2  # one per captured batch size, no shared one
    assert sum(c[0] == "execute_async_v3" and c[2] for c in fake_cuda_graphs.calls) == 2


def test_failed_capture_reports_the_real_error_and_runs_without_a_graph(
    fake_cuda_graphs, engines, reference
):
    backend = _kp_backend(engines, reference, cuda_graphs=True)
    fake_cuda_graphs.fail.add("capture")  # enqueue returns False while the stream captures
    torch.manual_seed(1)
    images = [torch.rand(2, 3, 32, 32) for _ in range(3)]
    with pytest.warns(RuntimeWarning) as caught:
        results = [backend.infer({"image": image}) for image in images]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1  # one attempt per batch size
    assert "CUDA graph capture at batch 2 failed (execute_async_v3 returned False" in messages[0]
    assert "batch 2 runs without a graph" in messages[0]
    for image, got in zip(images, results):
        want = reference.graphs["kp_detector"].infer({"image": image})
        torch.testing.assert_close(got["kp_mean"], want["kp_mean"], atol=1e-5, rtol=0)
    assert not any(c[0] == "replay" for c in fake_cuda_graphs.calls)


# Finding 2: timing cache.


def test_timing_cache_from_another_gpu_is_replaced_with_a_warning(
    fake_trt, onnx_dir, tmp_path, tiny_config
):
    spec = graph_specs(tiny_config.model)["kp_detector"]
    cache = tmp_path / "timing.cache"
    cache.write_bytes(f"fake-timing-cache|{fake_trt.__version__}|NVIDIA A30 sm8.0|7".encode())
    settings = EngineSettings(batch=BatchRange(1, 2, 4), timing_cache=cache)
    with pytest.warns(RuntimeWarning, match="timing cache not accepted by this TensorRT/GPU"):
        build_engine(fake_trt, onnx_dir / "kp_detector.onnx", tmp_path / "k.engine", spec, settings)
    assert (
        cache.read_bytes()
        == f"fake-timing-cache|{fake_trt.__version__}|Fake GPU 80GB sm9.0|1".encode()
    )
    cache.write_bytes(b"not a timing cache")  # damaged: create_timing_cache gives None
    with pytest.warns(RuntimeWarning, match="timing cache not accepted"):
        build_engine(fake_trt, onnx_dir / "kp_detector.onnx", tmp_path / "k.engine", spec, settings)
    assert cache.read_bytes().startswith(b"fake-timing-cache|")


def test_no_timing_cache_from_tensorrt_builds_without_one(
    fake_trt, onnx_dir, tmp_path, tiny_config
):
    spec = graph_specs(tiny_config.model)["kp_detector"]
    cache = tmp_path / "timing.cache"
    settings = EngineSettings(batch=BatchRange(1, 2, 4), timing_cache=cache)
    fake_trt.fail.add("get_timing_cache")
    build_engine(fake_trt, onnx_dir / "kp_detector.onnx", tmp_path / "a.engine", spec, settings)
    assert (tmp_path / "a.engine").is_file() and not cache.exists()
    fake_trt.fail.update({"create_timing_cache"})
    with pytest.warns(RuntimeWarning, match="could not start a timing cache; building without"):
        build_engine(fake_trt, onnx_dir / "kp_detector.onnx", tmp_path / "b.engine", spec, settings)
    assert (tmp_path / "b.engine").is_file()


def test_timing_cache_files_are_keyed_by_tensorrt_version_and_gpu(fake_trt, onnx_dir, tmp_path):
    out = tmp_path / "engines"
    build_engines(onnx_dir, out, EngineSettings(batch=BatchRange(1, 2, 4)))
    fake_trt.device["name"] = "NVIDIA A30"
    build_engines(onnx_dir, out, EngineSettings(batch=BatchRange(1, 2, 4)))
    caches = sorted(p.name for p in out.glob("timing-*.cache"))
    version = fake_trt.__version__
    assert caches == [
        f"timing-trt{version}-Fake_GPU_80GB-sm9.0.cache",
        f"timing-trt{version}-NVIDIA_A30-sm9.0.cache",
    ]
    a30 = {"name": "NVIDIA A30", "compute_capability": "9.0"}
    assert (out / caches[1]) == timing_cache_file(out, version, a30)


# Finding 3: GPU identity.


def test_engines_are_tied_to_the_gpu_model_not_only_its_compute_capability(onnx_dir, tmp_path):
    a100 = {"name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}
    a30 = {"name": "NVIDIA A30", "compute_capability": "8.0"}
    engine = EngineInfo("11.1.0", GpuIdentity(**a100), BatchRange(1, 8, 64), 4.0, False, True)
    manifest = replace(Manifest.read(onnx_dir), format="trt", engine=engine)
    check_engine_identity(manifest, "11.1.0", dict(a100), tmp_path)
    with pytest.raises(
        DonkeyError, match=r"built for NVIDIA A100-SXM4-80GB .*this GPU is NVIDIA A30"
    ):
        check_engine_identity(manifest, "11.1.0", a30, tmp_path)
    keys = {engine_key(onnx_dir, "11.1.0", device_key(g), (1, 8, 64)) for g in (a100, a30)}
    assert len(keys) == 2


# Finding 5: engine-sized buffers, checked return values, no EXPLICIT_BATCH, operator list.


def test_output_buffers_follow_the_engine_and_a_mismatch_is_refused(fake_trt, engines, reference):
    engine = engines / "kp_detector.engine"
    spec = json.loads(engine.read_text())
    spec["shapes"]["kp_mean"] = [-1, spec["shapes"]["kp_mean"][1], 3]  # not what the spec says
    engine.write_text(json.dumps(spec))
    backend = _kp_backend(engines, reference)
    with pytest.raises(
        DonkeyError,
        match=r"engine output kp_mean has shape \(2, 4, 3\) at batch 2, graph kp_detector expects \(2, 4, 2\); rebuild it",
    ):
        backend.infer({"image": torch.rand(2, 3, 32, 32)})


def test_rejected_input_shape_is_a_clear_error(fake_trt, engines, reference):
    backend = _kp_backend(engines, reference)
    fake_trt.fail.add("set_input_shape")
    with pytest.raises(
        DonkeyError, match=r"TensorRT rejected input shape \(2, 3, 32, 32\) for image"
    ):
        backend.infer({"image": torch.rand(2, 3, 32, 32)})


def test_engine_for_another_image_size_is_refused_on_load(fake_trt, engines, tiny_config):
    spec = graph_specs(replace(tiny_config.model, image_size=64))["kp_detector"]
    backend = TrtBackend(engines / "kp_detector.engine", spec, torch.device("cpu"))
    with pytest.raises(
        DonkeyError,
        match=r"engine input image takes \(1, 3, 32, 32\) \.\. \(4, 3, 32, 32\), graph kp_detector needs \(batch, 3, 64, 64\)",
    ):
        backend.infer({"image": torch.rand(1, 3, 64, 64)})


def test_rejected_optimisation_profile_is_a_clear_error(fake_trt, onnx_dir, tmp_path, tiny_config):
    spec = graph_specs(tiny_config.model)["kp_detector"]
    fake_trt.fail.add("add_optimization_profile")
    with pytest.raises(
        DonkeyError,
        match=r"kp_detector.onnx: TensorRT rejected the optimisation profile \(image \(1, 3, 32, 32\) \.\. \(4, 3, 32, 32\)\)",
    ):
        build_engine(
            fake_trt,
            onnx_dir / "kp_detector.onnx",
            tmp_path / "k.engine",
            spec,
            EngineSettings(batch=BatchRange(1, 2, 4)),
        )


def test_network_flags_never_need_explicit_batch(fake_trt, monkeypatch):
    assert (
        "EXPLICIT_BATCH"
        not in fake_tensorrt.configure("11").NetworkDefinitionCreationFlag.__members__
    )
    assert network_flags(fake_tensorrt) == 0  # TensorRT 11: always strongly typed
    # STRONGLY_TYPED is deprecated in 11; a release without it must still build.
    monkeypatch.setattr(
        fake_tensorrt,
        "NetworkDefinitionCreationFlag",
        enum.IntEnum("NetworkDefinitionCreationFlag", {"PREFER_JIT_PYTHON_PLUGINS": 1}),
    )
    assert network_flags(fake_tensorrt) == 0
    fake_tensorrt.configure("10")
    assert network_flags(fake_tensorrt) == 1 << 1  # STRONGLY_TYPED is 1 in TensorRT 10


def test_operator_list_matches_onnx_tensorrt_and_the_parser_rejects_the_rest(fake_trt, tmp_path):
    assert not TRT_SUPPORTED_OPS & fake_trt.UNSUPPORTED_OPS
    assert {"GridSample", "Resize", "Conv", "Softmax", "Cast", "Einsum"} <= TRT_SUPPORTED_OPS
    node = helper.make_node("AffineGrid", ["theta", "size"], ["grid"], name="affine")
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("theta", TensorProto.FLOAT, [1, 2, 3]),
            helper.make_tensor_value_info("size", TensorProto.INT64, [4]),
        ],
        [helper.make_tensor_value_info("grid", TensorProto.FLOAT, [1, 4, 4, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    assert any(v.op == "AffineGrid" for v in lint_model(model, "g"))
    path = tmp_path / "affine.onnx"
    onnx.save(model, str(path))
    parser = fake_trt.OnnxParser(fake_trt.Builder(None).create_network(0), None)
    assert not parser.parse_from_file(str(path))
    assert "no importer for op AffineGrid" in parser.get_error(0).desc()


# Finding 6: the fake itself.


def test_fake_flavours_have_the_real_enum_values(monkeypatch):
    trt10 = fake_tensorrt.configure("10")
    assert int(trt10.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 1
    assert int(trt10.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) == 0
    assert int(trt10.BuilderFlag.TF32) == 6 and int(trt10.BuilderFlag.FP16) == 0
    trt11 = fake_tensorrt.configure("11")
    assert int(trt11.NetworkDefinitionCreationFlag.STRONGLY_TYPED) == 0
    assert int(trt11.BuilderFlag.TF32) == 6
    with pytest.raises(AttributeError):
        trt11.NetworkDefinitionCreationFlag.EXPLICIT_BATCH  # noqa: B018
    with pytest.raises(AttributeError):
        trt11.BuilderFlag.FP16  # noqa: B018
    assert int(trt11.DataType.HALF) == 1 and int(trt11.DataType.BF16) == 7
    assert int(trt11.DataType.INT64) == 8


def test_fake_reads_and_writes_buffers_in_the_engine_dtype(fake_trt, engines, reference):
    engine = engines / "kp_detector.engine"
    spec = json.loads(engine.read_text())
    spec["dtypes"]["image"] = "HALF"  # an engine taking fp16 input
    engine.write_text(json.dumps(spec))
    backend = _kp_backend(engines, reference)
    torch.manual_seed(2)
    image = torch.rand(3, 3, 32, 32)
    got = backend.infer({"image": image})
    assert backend._buffers[3].inputs["image"].dtype == torch.float16
    want = reference.graphs["kp_detector"].infer({"image": image.half().float()})
    torch.testing.assert_close(got["kp_mean"], want["kp_mean"], atol=1e-5, rtol=0)


def test_fake_refuses_engines_from_another_version_or_gpu(fake_trt, engines, reference):
    fake_trt.device["name"] = "NVIDIA A30"
    with pytest.raises(DonkeyError, match="TensorRT could not load this engine; rebuild it"):
        _kp_backend(engines, reference).infer({"image": torch.rand(1, 3, 32, 32)})


def test_closing_releases_the_engine_and_its_contexts_and_reopening_runs_again(
    fake_trt, engines, reference
):
    backend = _kp_backend(engines, reference)
    image = torch.rand(2, 3, 32, 32)
    with backend:
        first = backend.infer({"image": image})["kp_mean"]
        assert backend._engine is not None and 2 in backend._buffers
    assert not backend.is_open
    assert backend._engine is backend._context is backend._runtime is None
    assert backend._buffers == {}  # contexts and buffers of every batch size went with it
    torch.testing.assert_close(backend.infer({"image": image})["kp_mean"], first, atol=0, rtol=0)
    assert [c[0] for c in fake_trt.calls].count("deserialize_cuda_engine") == 2
