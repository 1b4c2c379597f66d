"""Real-GPU tests: CUDA, ONNX Runtime's CUDA provider, TensorRT. Skipped cleanly without them."""

import importlib.util

import pytest
import torch

from donkey.artifacts.settings import BatchRange
from donkey.cli.app import app
from donkey.data.media import read_frames
from donkey.data.sample_clip import rendered_clip
from donkey.export.onnx_folder import export_onnx
from donkey.runtime.loader import load_model
from donkey.runtime.parity import assert_parity, clip_parity, graph_parity

pytestmark = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA)")
needs_trt = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available(),
    reason="needs TensorRT and an NVIDIA GPU",
)


@pytest.fixture(autouse=True)
def no_tf32():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


@needs_cuda
def test_torch_cuda_matches_cpu(tiny_ckpt):
    cpu, gpu = load_model(tiny_ckpt, "torch", "cpu"), load_model(tiny_ckpt, "torch", "cuda")
    rows = graph_parity(cpu, gpu, batches=(1, 8))
    rows += clip_parity(cpu, gpu, *rendered_clip(32))
    assert_parity(rows)


@needs_cuda
def test_torch_cuda_fp16_psnr(tiny_ckpt):
    ref = load_model(tiny_ckpt, "torch", "cuda")
    half = load_model(tiny_ckpt, "torch", "cuda", precision="fp16")
    half.precision = {k: "fp16" for k in half.graphs}
    rows = clip_parity(ref, half, *rendered_clip(32))
    assert rows[0].psnr >= 40.0, rows


@needs_cuda
def test_ort_cuda_provider_parity(tiny_ckpt, tmp_path):
    folder = export_onnx(tiny_ckpt, tmp_path / "onnx").folder
    model = load_model(folder, "ort", "cuda")
    rows = graph_parity(load_model(tiny_ckpt, "torch", "cuda"), model, batches=(1, 3))
    providers = model.graphs["generator"].providers
    if providers[0] != "CUDAExecutionProvider":
        pytest.skip(
            f"ONNX Runtime fell back to {providers[0]} (no CUDA provider in this onnxruntime)"
        )
    assert_parity(rows)


@needs_trt
@pytest.mark.parametrize("fp16", [False, True])
def test_tensorrt_build_parity_and_animate(tiny_ckpt, tmp_path, runner, fp16):
    from donkey.export.tensorrt_build import EngineSettings, build_engines

    onnx_dir = export_onnx(tiny_ckpt, tmp_path / "onnx", fp16=fp16).folder
    engines = tmp_path / "engines"
    build_engines(onnx_dir, engines, EngineSettings(batch=BatchRange(1, 8, 16)))
    reference = load_model(tiny_ckpt, "torch", "cuda")
    trt_model = load_model(engines, "trt", "cuda")
    rows = clip_parity(reference, trt_model, *rendered_clip(32, frames=12))
    if fp16:
        assert rows[0].psnr >= 40.0, rows
    else:
        assert rows[0].max_abs <= 1e-3, rows
    source, driving = rendered_clip(32)
    from donkey.data.writers import write_image, write_video

    write_image(tmp_path / "s.png", source)
    write_video(tmp_path / "d.gif", driving)
    out = tmp_path / "out.gif"
    result = runner.invoke(
        app,
        [
            "animate",
            str(tmp_path / "s.png"),
            str(tmp_path / "d.gif"),
            "-o",
            str(out),
            "--model",
            str(engines),
            "--engine",
            "trt",
            "--device",
            "cuda",
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_frames(out).frames.shape[0] == len(driving)


@needs_trt
def test_tensorrt_cuda_graphs_per_batch_size_and_timing_cache(tiny_ckpt, tmp_path):
    """A batch run's sizes (full, full, short last, full) replayed from CUDA graphs give what
    plain execution gives; a second build reuses the keyed timing cache without a warning."""
    import warnings

    from donkey.export.tensorrt_build import EngineSettings, build_engines
    from donkey.runtime.trt_backend import TrtBackend

    onnx_dir = export_onnx(tiny_ckpt, tmp_path / "onnx").folder
    engines = tmp_path / "engines"
    build_engines(onnx_dir, engines, EngineSettings(batch=BatchRange(1, 4, 4)))
    caches = list(engines.glob("timing-*.cache"))
    assert len(caches) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        build_engines(
            onnx_dir,
            tmp_path / "again",
            EngineSettings(batch=BatchRange(1, 4, 4), timing_cache=caches[0]),
        )
    spec = load_model(tiny_ckpt, "torch", "cpu").graphs["kp_detector"].spec
    device = torch.device("cuda")
    plain = TrtBackend(engines / "kp_detector.engine", spec, device)
    graphs = TrtBackend(engines / "kp_detector.engine", spec, device, cuda_graphs=True)
    torch.manual_seed(0)
    for batch in (4, 4, 3, 4, 3, 4):
        image = torch.rand(batch, 3, 32, 32, device=device)
        want, got = plain.infer({"image": image}), graphs.infer({"image": image})
        torch.testing.assert_close(got["kp_mean"], want["kp_mean"], atol=1e-5, rtol=0)
    assert all(b.graph is not None for b in graphs._buffers.values())


@needs_cuda
def test_training_steps_on_cuda_with_bf16_autocast_and_qat(tmp_path):
    # The trainer's CUDA path (bf16 autocast, pinned loader) with quantization-aware convolutions.
    from donkey.data.datasets import list_videos, load_videos
    from donkey.data.synthetic import synthesize
    from donkey.model.checkpoint import load_checkpoint
    from donkey.model.config import config_from_dict, config_to_dict, load_config
    from donkey.train.trainer import TrainOptions, train
    from tests.conftest import CONFIGS

    synthesize(tmp_path / "videos", 6, size=32, seed=3, frames=(4, 6))
    videos, _ = load_videos(list_videos(tmp_path / "videos"), 32)
    data = config_to_dict(load_config(CONFIGS / "tiny.yaml"))
    for qat in (False, True):
        data["train"].update(steps=3, qat=qat)
        run = tmp_path / f"run qat={qat}"
        result = train(
            config_from_dict(data), videos, None, TrainOptions(run_dir=run, device="cuda")
        )
        assert result.step == 3
        assert all(torch.isfinite(torch.tensor(h["g_total"])) for h in result.history)
        assert load_checkpoint(run / "last.ckpt").train_config["qat"] is qat
