import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from donkey.cli.app import app
from donkey.data.frames import frames_to_tensor
from donkey.data.media import read_frames
from donkey.data.sample_clip import rendered_clip
from donkey.data.writers import write_image, write_video
from donkey.export.onnx_folder import export_onnx
from donkey.model.errors import DonkeyError
from donkey.runtime.animator import Animator
from donkey.runtime.batch import output_name, plan_jobs
from donkey.runtime.loader import load_model
from donkey.runtime.motion import hull_area, movement_scale, relative_keypoints

# `bench --engine torch,ort --batch-sizes 1,2`: the rows, in order.
TORCH_ORT_ROWS = [("torch", 1), ("torch", 2), ("ort", 1), ("ort", 2)]


@pytest.fixture(scope="module")
def onnx_folder(tiny_ckpt, tmp_path_factory):
    return export_onnx(tiny_ckpt, tmp_path_factory.mktemp("rt onnx") / "tiny onnx").folder


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rt media") / "clip files"
    folder.mkdir()
    source, driving = rendered_clip(32, frames=9, seed=5)
    write_image(folder / "source.png", source)
    write_video(folder / "driving.png", driving)  # lossless strip
    return folder


def test_torch_and_ort_frames_agree_through_the_api(tiny_ckpt, onnx_folder):
    source, driving = rendered_clip(32, frames=11, seed=7)
    results = []
    for model in (load_model(tiny_ckpt, "torch", "cpu"), load_model(onnx_folder, "ort", "cpu")):
        for mode in ("absolute", "relative"):
            animator = Animator(model, batch_size=4, mode=mode, adapt_scale=True)
            results.append(
                animator.animate(frames_to_tensor(source[None]), frames_to_tensor(driving))
            )
    for a, b in zip(results[:2], results[2:]):
        assert a.shape == (11, 3, 32, 32)
        assert (a - b).abs().max() <= 1e-4


def test_torch_and_ort_png_strips_agree_within_one_level(
    runner, tiny_ckpt, onnx_folder, clip_files, tmp_path
):
    outputs = []
    for engine, model in (("torch", tiny_ckpt), ("ort", onnx_folder)):
        out = tmp_path / f"{engine}.png"
        result = runner.invoke(
            app,
            [
                "animate",
                str(clip_files / "source.png"),
                str(clip_files / "driving.png"),
                "-o",
                str(out),
                "--model",
                str(model),
                "--engine",
                engine,
                "--device",
                "cpu",
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append(read_frames(out).frames.astype(int))
    assert outputs[0].shape == (9, 32, 32, 3)
    assert np.abs(outputs[0] - outputs[1]).max() <= 1


def test_relative_motion_and_adapt_scale_known_answers():
    square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.5, 0.5]])
    assert hull_area(square) == pytest.approx(1.0)
    assert movement_scale(square * 2, square) == pytest.approx(2.0)
    src_mean = (square * 0.5)[None]
    drv_first = square[None]
    drv = torch.cat([drv_first, drv_first + torch.tensor([0.2, 0.0])])
    eye = torch.eye(2).expand(1, 5, 2, 2) * 0.01
    mean, var = relative_keypoints(
        src_mean, eye * 2, drv, eye.expand(2, 5, 2, 2), drv_first, eye, adapt_scale=True
    )
    torch.testing.assert_close(mean[0], src_mean[0])
    torch.testing.assert_close(mean[1], src_mean[0] + torch.tensor([0.1, 0.0]))  # halved movement
    torch.testing.assert_close(var, (eye * 2).expand(2, 5, 2, 2))


def test_relative_covariances_stay_positive_definite():
    torch.manual_seed(0)

    def spd(n):
        a = torch.randn(n, 6, 2, 2) * 0.2
        return a @ a.transpose(-1, -2) + 1e-4 * torch.eye(2)

    src, first, drv = spd(1), spd(1), spd(50)
    mean0 = torch.zeros(1, 6, 2)
    _, var = relative_keypoints(mean0, src, torch.zeros(50, 6, 2), drv, mean0, first)
    assert torch.linalg.eigvalsh(var).min() > 0
    from donkey.runtime.motion import cholesky_2x2

    low = cholesky_2x2(drv)
    torch.testing.assert_close(low @ low.transpose(-1, -2), drv, atol=1e-6, rtol=1e-5)
    # when frame t equals frame 0, the source covariance is kept
    _, same = relative_keypoints(mean0, src, mean0, first, mean0, first)
    torch.testing.assert_close(same, src, atol=1e-6, rtol=1e-4)


def test_batch_folder_conversion_with_a_corrupt_file(runner, tiny_ckpt, tmp_path):
    sources, drivings, out = (
        tmp_path / "source images",
        tmp_path / "driving clips",
        tmp_path / "results",
    )
    sources.mkdir()
    drivings.mkdir()
    for i in range(3):
        src, drv = rendered_clip(32, frames=4 + i, seed=10 + i)
        write_image(sources / f"animal {i}.png", src)
        if i < 2:
            write_video(drivings / f"motion {i}.gif", drv)
    (sources / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    args = [
        "animate",
        str(sources),
        str(drivings),
        "-o",
        str(out),
        "--model",
        str(tiny_ckpt),
        "--device",
        "cpu",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "corrupt.png" in result.output and "failed" in result.output
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 6 and all(n.endswith(".gif") for n in written)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    frames = {n: read_frames(out / n).frames.shape[0] for n in written}
    assert frames["animal_0__motion_1.gif"] == 5
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = runner.invoke(app, [*args, "--skip-existing"])
    assert result.exit_code == 1  # the corrupt file still fails
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes  # nothing rewritten


def test_pair_list_and_safe_output_names(tmp_path):
    sources, drivings = tmp_path / "s", tmp_path / "d"
    sources.mkdir()
    drivings.mkdir()
    for name in ("a b.png", "c.png"):
        Image.new("RGB", (8, 8)).save(sources / name)
    for name in ("x.gif", "y.gif"):
        Image.new("RGB", (8, 8)).save(drivings / name)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("source,driving\na b.png,y.gif\n")
    jobs = plan_jobs(sources, drivings, tmp_path / "out", pairs)
    assert [(j.source.name, j.driving.name, j.output.name) for j in jobs] == [
        ("a b.png", "y.gif", "a_b__y.gif")
    ]
    assert len(plan_jobs(sources, drivings, tmp_path / "out")) == 4
    assert output_name(Path("../../etc/pass wd"), Path("..x.gif"), ".gif") == "pass_wd__..x.gif"
    assert output_name(Path(".."), Path(".."), ".mp4") == "output.mp4"
    pairs.write_text("../escape.png,x.gif\n")
    with pytest.raises(DonkeyError, match="outside"):
        plan_jobs(sources, drivings, tmp_path / "out", pairs)


def test_eval_through_the_ort_engine_matches_torch(runner, tiny_ckpt, onnx_folder, tmp_path):
    from donkey.data.synthetic import synthesize

    synthesize(tmp_path / "videos", 2, size=32, seed=3, frames=(4, 5))
    values = []
    for model, engine in ((tiny_ckpt, "torch"), (onnx_folder, "ort")):
        result = runner.invoke(
            app,
            [
                "eval",
                "--model",
                str(model),
                "--engine",
                engine,
                "--data",
                str(tmp_path / "videos"),
                "--json",
                "--device",
                "cpu",
            ],
        )
        assert result.exit_code == 0, result.output
        values.append(json.loads(result.output))
    assert values[0]["l1"] == pytest.approx(values[1]["l1"], abs=1e-5)
    assert values[1]["engine"] == "ort"


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_bench_peak_memory_leaves_out_the_reference_pass(runner, tiny_ckpt, tmp_path, monkeypatch):
    """The fp32 comparison pass runs after every row was timed, and each row's peak window
    starts fresh: a reference pass that needs 400 MB more (a stand-in for a large model)
    shows in no row's peak."""
    from donkey.runtime import bench

    real, calls = bench.bench_outputs, []

    def outputs(model, batch):
        calls.append(model.engine)
        if model.engine == "torch":  # only the reference runs on torch here
            balloon = np.ones(400 * 2**20 // 8)  # touched: 400 MB resident
            del balloon
        return real(model, batch)

    monkeypatch.setattr(bench, "bench_outputs", outputs)
    out = tmp_path / "bench.json"
    before = _rss_mb()
    args = ["bench", "--model", str(tiny_ckpt), "--engine", "ort", "--batch-sizes", "1,2"]
    args += ["--device", "cpu", "--threads", "1", "--runs", "2", "--json", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert calls == ["ort", "ort", "torch", "torch"]  # each row's outputs, then the reference
    for row in rows:
        assert row["peak_scope"] == "timed runs"
        assert 0 < row["peak_mb"] < before + 200, (before, row["peak_mb"])
        assert row["psnr_db"] > 80 and row["kp_max_abs"] < 1e-4  # still compared
    assert "the fp32 reference runs after them" in result.output


def test_bench_json(runner, tmp_path):
    from tests.conftest import CONFIGS

    out = tmp_path / "bench.json"
    result = runner.invoke(
        app,
        [
            "bench",
            "--config",
            str(CONFIGS / "tiny.yaml"),
            "--engine",
            "torch,ort",
            "--batch-sizes",
            "1,2",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--runs",
            "2",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [(r["engine"], r["batch"]) for r in rows] == TORCH_ORT_ROWS
    for row in rows:
        assert row["fps"] > 0 and row["p95_ms"] >= row["p50_ms"] > 0 and row["threads"] == 1
    assert [r["runs"] for r in rows] == [2] * 4  # --runs: exactly that many
    result = runner.invoke(app, ["bench", "--engine", "nope"])
    assert result.exit_code == 2  # refused while parsing (choices.check_engines)
    assert (
        "Invalid value for '--engine': takes a comma-separated subset of torch, ort, trt, openvino, "
        "got 'nope'" in result.output
    )


def test_ort_provider_fallback_is_detected_and_reported(onnx_folder):
    import onnxruntime

    from donkey.runtime.ort_backend import OrtBackend

    spec = load_model(onnx_folder, "ort", "cpu").graphs["kp_detector"].spec
    backend = OrtBackend(
        onnx_folder / "kp_detector.onnx", spec, torch.device("cpu"), ["cuda", "cpu"]
    )
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime build offers no CUDA provider to fall back from")
    if torch.cuda.is_available():
        pytest.skip("CUDA works here: nothing falls back")
    with pytest.warns(
        RuntimeWarning, match="asked for CUDAExecutionProvider but runs on CPUExecutionProvider"
    ):
        backend.activate()
    assert backend.providers[0] == "CPUExecutionProvider"
    out = backend.infer({"image": torch.rand(2, 3, 32, 32)})
    assert out["kp_mean"].shape == (2, 4, 2)


def test_ort_sessions_neither_spin_nor_compute_denormals(onnx_folder):
    model = load_model(onnx_folder, "ort", "cpu")
    backend = model.graphs["generator"]
    backend.activate()
    options = backend.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.set_denormal_as_zero") == "1"


def test_cli_flushes_denormals(runner):
    result = runner.invoke(app, ["info", "configs/tiny.yaml", "--json"])
    assert result.exit_code == 0, result.output
    denormal = torch.tensor([1e-39], dtype=torch.float32)
    assert (denormal * 1.0).item() == 0.0


def test_bench_interleave_times_every_engine_in_turn(runner, tiny_ckpt, tmp_path, monkeypatch):
    """--interleave: all engines loaded, one timed run each in turn, rows in the usual order."""
    import donkey.runtime.bench as bench_module

    calls: list[str] = []
    make_unit = bench_module._timed_unit

    def recording_unit(model, batch):
        once = make_unit(model, batch)

        def run() -> None:
            calls.append(f"{model.engine}{batch}")
            once()

        return run

    monkeypatch.setattr(bench_module, "_timed_unit", recording_unit)
    out = tmp_path / "bench.json"
    args = ["bench", "--model", str(tiny_ckpt), "--engine", "torch,ort", "--batch-sizes", "1,2"]
    args += ["--device", "cpu", "--threads", "1", "--runs", "3", "--interleave"]
    result = runner.invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [(r["engine"], r["batch"]) for r in rows] == TORCH_ORT_ROWS
    assert all(r["runs"] == 3 and r["peak_scope"] == "process" for r in rows)
    assert rows[2]["psnr_db"] > 80  # still compared with torch fp32
    # 3 warm-ups each, then the timed runs alternate engines.
    assert calls[:12] == ["torch1"] * 3 + ["ort1"] * 3 + ["torch1", "ort1"] * 3
    assert calls[12:24] == ["torch2"] * 3 + ["ort2"] * 3 + ["torch2", "ort2"] * 3
    assert "peak MB: --interleave held every engine at once" in result.output
