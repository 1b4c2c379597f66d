"""Quantization-aware training: the rounding matches the int8 export's, state dicts stay plain,
a train.qat run saves a checkpoint that exports with every convolution in int8."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from donkey.artifacts.verify import verify_folder
from donkey.cli.app import app
from donkey.data.datasets import list_videos, load_videos
from donkey.data.synthetic import synthesize
from donkey.export.cache import cached_onnx
from donkey.model.checkpoint import build_networks, load_checkpoint
from donkey.model.config import ConfigError, config_from_dict, config_to_dict, load_config
from donkey.model.fake_quant import (
    InputRange,
    disable_fake_quant,
    enable_fake_quant,
    fake_quant_input,
    fake_quant_weight,
)
from donkey.model.provenance import describe_training, training_summary
from donkey.train.trainer import TrainOptions, train
from tests.conftest import CONFIGS


def test_input_rounding_is_uint8_over_a_range_holding_zero():
    x = torch.tensor([0.5, 1.0, 2.0, 2.55])  # all positive: the range still starts at 0
    observed = InputRange()
    q = fake_quant_input(x, observed, training=True)
    assert observed.bounds.tolist() == pytest.approx([0.5, 2.55])
    step = 2.55 / 255  # 0 is exact (zero point 0), 256 levels up to 2.55
    assert torch.allclose(q, torch.round(x / step) * step)
    # Outside the range values clip, as uint8 would.
    assert fake_quant_input(torch.tensor([5.0, -1.0]), observed, training=False).tolist() == (
        pytest.approx([2.55, 0.0])
    )


def test_the_range_is_a_moving_average_in_training_and_frozen_in_eval():
    observed = InputRange()
    fake_quant_input(torch.tensor([-1.0, 1.0]), observed, training=True)
    fake_quant_input(torch.tensor([-3.0, 3.0]), observed, training=True)
    assert observed.bounds.tolist() == pytest.approx([-1.02, 1.02])  # 1 + 0.01 * (3 - 1)
    fake_quant_input(torch.tensor([-9.0, 9.0]), observed, training=False)
    assert observed.bounds.tolist() == pytest.approx([-1.02, 1.02])


def test_weights_round_to_7_bits_per_output_channel():
    w = torch.tensor([[1.0, 0.5, -0.26], [0.01, -0.02, 0.03]]).reshape(2, 3, 1, 1)
    q = fake_quant_weight(w).reshape(2, 3)
    for row, original in zip(q, w.reshape(2, 3)):
        step = original.abs().max() / 63  # the channel's largest weight is exactly +-63 steps
        assert torch.allclose(row, torch.round(original / step) * step)


def test_convolutions_round_their_inputs_and_weights_and_keep_plain_state_dicts():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1))
    x = torch.randn(2, 3, 8, 8)
    plain = net(x)
    keys = list(net.state_dict())
    assert enable_fake_quant(net) == 2 and enable_fake_quant(net) == 0  # idempotent
    net.train()
    rounded = net(x)
    error = (rounded - plain).abs().max().item()
    assert 1e-4 < error < 0.05  # rounded, but close
    expected = nn.functional.conv2d(
        fake_quant_input(x, InputRange(), True),
        fake_quant_weight(net[0].weight),
        net[0].bias,
        padding=1,
    )
    assert torch.allclose(net[0](x), expected, atol=1e-6)
    rounded.square().sum().backward()  # straight-through: every weight gets a gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert list(net.state_dict()) == keys
    disable_fake_quant(net)
    assert torch.equal(net(x), plain)


def _qat_run(tmp_path, **train_settings):
    """A few tiny QAT steps on synthetic videos; the config and the saved checkpoint."""
    synthesize(tmp_path / "videos", 6, size=32, seed=3, frames=(4, 6))
    videos, _ = load_videos(list_videos(tmp_path / "videos"), 32)
    data = config_to_dict(load_config(CONFIGS / "tiny.yaml"))
    data["train"].update(qat=True, checkpoint_every=100, **train_settings)
    cfg = config_from_dict(data)
    train(cfg, videos, None, TrainOptions(run_dir=tmp_path / "run", device="cpu"))
    return cfg, load_checkpoint(tmp_path / "run" / "last.ckpt")


def test_a_qat_run_saves_a_plain_checkpoint_that_exports_every_convolution_int8(tmp_path, runner):
    cfg, ckpt = _qat_run(tmp_path, steps=4)
    assert ckpt.train_config["qat"] is True
    build_networks(ckpt)  # plain networks load it: no extra keys
    summary = training_summary(cfg.model, ckpt.train_config, ckpt.training)
    assert "quantization-aware" in describe_training(summary)
    out = tmp_path / "int8"
    args = ["export", "--model", str(tmp_path / "run" / "last.ckpt"), "-o", str(out), "--int8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # `--engine ort --precision int8` on the checkpoint builds the same recipe into the cache.
    cached = cached_onnx(tmp_path / "run" / "last.ckpt", int8=True)
    for folder in (out, cached):
        manifest = verify_folder(folder)
        assert manifest.precision["kp_detector"] == "int8"  # fp32 for models not trained for it
        assert manifest.quantization.float_convs == {
            "kp_detector": 0,
            "dense_motion": 0,
            "source_encoder": 0,
            "generator": 0,
        }


def test_qat_float_keeps_the_keypoint_detector_fp32_in_the_int8_export(tmp_path, runner):
    cfg, ckpt = _qat_run(tmp_path, steps=2, qat_float=["kp_detector"])
    assert ckpt.train_config["qat_float"] == ["kp_detector"]
    summary = training_summary(cfg.model, ckpt.train_config, ckpt.training)
    assert "outside the kp_detector, which stays float" in describe_training(summary)
    out = tmp_path / "int8"
    args = ["export", "--model", str(tmp_path / "run" / "last.ckpt"), "-o", str(out), "--int8"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = verify_folder(out)
    assert manifest.precision["kp_detector"] == "fp32"
    assert manifest.precision["generator"] == "int8"
    assert manifest.quantization.float_convs == {
        "dense_motion": 0,
        "source_encoder": 0,
        "generator": 0,
    }


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"qat": True, "qat_float": ["generator"]}, "train.qat_float takes distinct names"),
        ({"qat": True, "qat_float": ["kp_detector", "kp_detector"]}, "distinct names"),
        ({"qat": False, "qat_float": ["kp_detector"]}, "set qat: true"),
    ],
)
def test_bad_qat_float_is_a_config_error(train, message):
    data = config_to_dict(load_config(CONFIGS / "tiny.yaml"))
    data["train"].update(train)
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


@pytest.mark.parametrize("kept", [5, "kp_detector", ["generator"], [["kp_detector"]]])
def test_a_checkpoints_qat_float_is_checked_not_trusted(kept):
    """A checkpoint's config comes from its file: a string was split into graph names."""
    from donkey.export.int8 import int8_settings_for
    from donkey.model.errors import DonkeyError

    assert int8_settings_for({"qat": True, "qat_float": ["kp_detector"]}).fp32_graphs == (
        "kp_detector",
    )
    with pytest.raises(DonkeyError, match=r"^m\.ckpt: train\.qat_float must be a list of names"):
        int8_settings_for({"qat": True, "qat_float": kept}, "m.ckpt")
    model = load_config(CONFIGS / "tiny.yaml").model
    summary = training_summary(model, {"qat": True, "qat_float": kept}, {})
    names = isinstance(kept, list) and all(isinstance(n, str) for n in kept)
    assert summary.get("quantization_float") == (kept if names else None)  # info never crashes
