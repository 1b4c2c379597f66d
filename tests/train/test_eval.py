import json

import pytest

from donkey.cli.app import app
from donkey.data.datasets import Video
from donkey.data.synthetic import synthesize
from donkey.runtime.animator import Animator
from donkey.runtime.loader import load_model
from donkey.train.evaluate import reconstruction_l1
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
