"""scripts/average_weights.py: weighted means of checkpoints' inference weights."""

import copy

import pytest
import torch

from donkey.model.checkpoint import load_checkpoint, save_checkpoint
from donkey.model.config import TrainConfig, config_to_dict
from donkey.model.networks import Networks
from donkey.model.provenance import describe_training, training_summary
from tests.conftest import load_script


def _shifted(networks: Networks, by: float) -> Networks:
    moved = copy.deepcopy(networks)
    with torch.no_grad():
        for value in moved.state_dict().values():
            if value.is_floating_point():
                value.add_(by)
    return moved


def test_weighted_mean_of_the_inference_weights(tiny_networks, tmp_path):
    script = load_script("average_weights")
    train = config_to_dict(TrainConfig())
    a = save_checkpoint(tmp_path / "a.ckpt", tiny_networks, train, training={"step": 100})
    b = save_checkpoint(
        tmp_path / "b.safetensors",
        _shifted(tiny_networks, 3.0),
        {**train, "shipped_from_step": 700},
        inference_only=True,
    )
    out = tmp_path / "avg.safetensors"
    script.main([str(out), str(a), str(b), "--weights", "2,1"])
    avg = load_checkpoint(out)
    own = tiny_networks.state_dict()
    assert not any(k.startswith("discriminator.") for k in avg.state)
    for key, value in avg.state.items():
        if value.is_floating_point():  # 2/3 * w + 1/3 * (w + 3) = w + 1
            torch.testing.assert_close(value, own[key] + 1.0, rtol=0, atol=1e-5)
        else:
            assert torch.equal(value, own[key])
    origins = avg.train_config["averaged_from"]
    assert [(o["file"], o["step"]) for o in origins] == [("a.ckpt", 100), ("b.safetensors", 700)]
    assert [o["weight"] for o in origins] == pytest.approx([2 / 3, 1 / 3], abs=1e-6)
    line = describe_training(training_summary(avg.model_config, avg.train_config, avg.training))
    assert "weights averaged from 2 checkpoints (steps 100, 700)" in line


def test_refuses_other_networks_and_bad_weights(tiny_networks, tmp_path):
    script = load_script("average_weights")
    a = save_checkpoint(tmp_path / "a.ckpt", tiny_networks)
    other_config = copy.deepcopy(tiny_networks.config)
    other_config.num_kp = tiny_networks.config.num_kp + 1
    b = save_checkpoint(tmp_path / "b.ckpt", Networks(other_config))
    out = tmp_path / "avg.safetensors"
    for args, message in (
        ([str(a), str(b)], "b.ckpt: its model config differs from"),
        ([str(a), str(a), "--weights", "1"], "give 2 numbers >= 0"),
        ([str(a), str(a), "--weights", "1,x"], "give 2 numbers separated by commas"),
        ([str(a), str(a), "--weights", "0,0"], "at least one must be above 0"),
        ([str(a), str(a), "--weights", "1e308,1e308"], "the sum finite"),
        ([str(a), str(a), "--weights", ""], "give 2 numbers"),
        ([str(a), str(tmp_path / "missing.ckpt")], "missing.ckpt"),
    ):
        with pytest.raises(SystemExit, match=message):
            script.main([str(out), *args])
        assert not out.exists()


def test_never_replaces_an_existing_file_unless_asked(tiny_networks, tmp_path):
    script = load_script("average_weights")
    train = config_to_dict(TrainConfig())
    a = save_checkpoint(tmp_path / "a.ckpt", tiny_networks, train, training={"step": 5})
    b = save_checkpoint(tmp_path / "b.ckpt", _shifted(tiny_networks, 1.0), train)
    before = a.read_bytes()
    # The output first: a forgotten OUT would otherwise turn a.ckpt into the mean of the others.
    with pytest.raises(SystemExit, match=r"a.ckpt: exists; the output comes first"):
        script.main([str(a), str(b), str(b)])
    assert a.read_bytes() == before
    script.main([str(a), str(a), str(b), "--overwrite"])  # replaced after the inputs are read
    assert load_checkpoint(a).train_config["averaged_from"][0]["step"] == 5
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    with pytest.raises(SystemExit, match="folder.safetensors: cannot write"):
        script.main([str(folder), str(b), str(b), "--overwrite"])
    with pytest.raises(SystemExit, match=r"x.onnx: the output must be a .safetensors \(or .ckpt\)"):
        script.main([str(tmp_path / "x.onnx"), str(b), str(b)])
    assert not (tmp_path / "x.onnx").exists()
    qat = save_checkpoint(tmp_path / "qat.ckpt", tiny_networks, {**train, "qat": True})
    with pytest.raises(SystemExit, match="qat.ckpt: trained with another quantization-aware"):
        script.main([str(tmp_path / "q.safetensors"), str(b), str(qat)])
