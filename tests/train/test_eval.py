import json

import pytest
import torch

from donkey.cli.app import app
from donkey.data.datasets import Video
from donkey.data.frames import frames_to_tensor
from donkey.data.media import read_video
from donkey.data.synthetic import synthesize
from donkey.runtime.animator import Animator
from donkey.runtime.loader import load_model
from donkey.train.evaluate import reconstruction_l1, resize_frames
from tests.conftest import make_creature_frames


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval data")
    synthesize(root / "videos", 3, size=32, seed=21, frames=(4, 6))
    synthesize(root / "pairs", 2, size=32, seed=22, pairs=True, frames=(4, 6))
    return root


def test_eval_json_reports_model_and_identity(runner, tiny_ckpt, eval_data):
    result = runner.invoke(
        app,
        [
            "eval",
            "--model",
            str(tiny_ckpt),
            "--data",
            str(eval_data / "videos"),
            "--pairs",
            str(eval_data / "pairs" / "pairs.json"),
            "--json",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["videos"] == 3 and data["pairs"] == 2
    for key in ("l1", "identity_l1", "transfer_l1", "transfer_identity_l1"):
        assert 0 < data[key] < 1


def test_identity_baseline_is_the_frame_difference(tiny_ckpt):
    frames = make_creature_frames(5, 32)
    animator = Animator(load_model(tiny_ckpt, device="cpu"), batch_size=2, mode="absolute")
    result = reconstruction_l1(animator, [Video("v", frames)])
    f = frames.astype("float64") / 255
    expected = abs(f[:1] - f).mean()
    assert result.identity_l1 == pytest.approx(expected, rel=1e-5)
    assert result.videos == 1 and result.per_video[0]["video"] == "v"


def test_eval_needs_data(runner, tiny_ckpt):
    result = runner.invoke(app, ["eval", "--model", str(tiny_ckpt)])
    assert result.exit_code == 1 and "--data" in result.output


def _eval_json(runner, ckpt, data_dir, *extra):
    args = ["eval", "--model", str(ckpt), "--data", str(data_dir), "--json", "--device", "cpu"]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_eval_size_compares_on_the_files_pixels(runner, tiny_ckpt, eval_data):
    """--size 64 on a 32x32 model: identity from the files read at 64, model upsampled to 64."""
    videos = eval_data / "videos"
    native = _eval_json(runner, tiny_ckpt, videos)
    same = _eval_json(runner, tiny_ckpt, videos, "--size", "32")
    assert same["l1"] == pytest.approx(native["l1"], abs=1e-7) and same["size"] == 32
    at64 = _eval_json(runner, tiny_ckpt, videos, "--size", "64", "--details")
    assert at64["size"] == 64 and at64["videos"] == 3

    files = sorted(videos.glob("*.gif"))
    expected = []
    for path in files:
        f = read_video(path, 64).frames.astype("float64") / 255
        expected.append(abs(f[:1] - f).mean())
    assert at64["identity_l1"] == pytest.approx(sum(expected) / 3, rel=1e-5)
    assert at64["identity_l1"] != pytest.approx(native["identity_l1"], rel=1e-3)

    # The model's prediction is the 32x32 one, resized: recompute one video by hand.
    animator = Animator(load_model(tiny_ckpt, device="cpu"), batch_size=16, mode="absolute")
    small = frames_to_tensor(read_video(files[0], 32).frames)
    state = animator.prepare_source(small[:1])
    prediction = torch.cat(list(animator.render_batches(state, animator.driving_keypoints(small))))
    big = frames_to_tensor(read_video(files[0], 64).frames)
    by_hand = (resize_frames(prediction, 64) - big).abs().mean().item()
    first = next(v for v in at64["per_video"] if v["video"] == files[0].name)
    assert first["l1"] == pytest.approx(by_hand, rel=1e-5)


def test_eval_size_for_transfer_and_range(runner, tiny_ckpt, eval_data):
    pairs = str(eval_data / "pairs" / "pairs.json")
    base = ["eval", "--model", str(tiny_ckpt), "--pairs", pairs, "--json", "--device", "cpu"]
    native = json.loads(runner.invoke(app, base).output)
    at64 = runner.invoke(app, [*base, "--size", "64"])
    assert at64.exit_code == 0, at64.output
    at64 = json.loads(at64.output)
    assert at64["pairs"] == native["pairs"] == 2
    assert 0 < at64["transfer_l1"] < 1
    assert at64["transfer_identity_l1"] != pytest.approx(native["transfer_identity_l1"], rel=1e-3)
    bad = runner.invoke(app, [*base, "--size", "0"])
    assert bad.exit_code != 0 and "--size" in bad.output


def test_resize_frames_keeps_range_and_constants():
    flat = torch.full((2, 3, 16, 16), 0.25)
    assert torch.allclose(resize_frames(flat, 40), torch.full((2, 3, 40, 40), 0.25))
    ramp = torch.linspace(0, 1, 32).expand(1, 3, 32, 32)
    down = resize_frames(ramp, 8)
    assert down.shape == (1, 3, 8, 8) and float(down.min()) >= 0 and float(down.max()) <= 1
    assert resize_frames(ramp, 32) is ramp


def test_unreadable_files_are_skipped_listed_and_fail_the_exit_code(
    runner, tiny_ckpt, eval_data, tmp_path
):
    import shutil

    pairs = shutil.copytree(eval_data / "pairs", tmp_path / "pairs")
    manifest = json.loads((pairs / "pairs.json").read_text())
    first = manifest["pairs"][0]["a"]
    data = (pairs / first).read_bytes()
    (pairs / first).write_bytes(data[: len(data) // 3])  # truncated
    videos = shutil.copytree(eval_data / "videos", tmp_path / "videos")
    (videos / "empty.gif").write_bytes(b"")
    base = ["eval", "--model", str(tiny_ckpt), "--json", "--device", "cpu"]
    result = runner.invoke(
        app, [*base, "--pairs", str(pairs / "pairs.json"), "--data", str(videos)]
    )
    assert result.exit_code == 1
    assert result.stdout.lstrip().startswith("{")
    report = json.loads(result.stdout)
    assert report["videos"] == 3 and report["pairs"] == 1
    assert len(report["skipped"]) == 2
    assert "empty.gif" in report["skipped"][0] and first in report["skipped"][1]
    assert "error: 2 skipped (listed above); the means cover the rest" in result.stderr
    clean = runner.invoke(app, [*base, "--data", str(eval_data / "videos")])
    assert clean.exit_code == 0 and json.loads(clean.stdout)["skipped"] == []
