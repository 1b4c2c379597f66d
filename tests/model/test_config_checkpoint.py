import io
import os
import pickle
import stat

import numpy as np
import pytest
import torch

from donkey.model.checkpoint import build_networks, load_checkpoint, save_checkpoint
from donkey.model.config import Config, apply_overrides, config_from_dict, load_config
from donkey.model.errors import CheckpointError, ConfigError
from donkey.model.networks import Networks
from tests.conftest import CONFIGS


def test_every_shipped_config_loads():
    for path in sorted(CONFIGS.glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.model.image_size % 2**cfg.model.generator.num_blocks == 0, path
        assert len(cfg.train.loss.feature_matching) == cfg.model.discriminator.num_blocks, path


def test_default_model_config_is_the_paper_model():
    # `donkey convert` relies on this when no --config is given (installed packages have no configs/)
    assert Config().model == load_config(CONFIGS / "mgif.yaml").model


def test_unknown_key_is_an_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'model.generator.blocks'"):
        config_from_dict({"model": {"generator": {"blocks": 3}}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'train.stepz'"):
        load_config(bad)


def test_wrong_types_are_errors():
    with pytest.raises(ConfigError, match="'model.num_kp' must be an integer"):
        config_from_dict({"model": {"num_kp": "ten"}})
    with pytest.raises(ConfigError, match="train.mode must be 'monkey', 'dual' or 'mixed'"):
        config_from_dict({"train": {"mode": "donkey"}})


def test_overrides_apply_dotted_keys():
    data = apply_overrides({}, ["train.steps=12", "model.generator.attention=true"])
    cfg = config_from_dict(data)
    assert cfg.train.steps == 12 and cfg.model.generator.attention is True


def test_exponent_numbers_read_as_numbers_in_files_and_overrides(tmp_path):
    # PyYAML's YAML 1.1 would keep `1e-4` a string and the config would be refused.
    path = tmp_path / "c.yaml"
    path.write_text("train: {lr: 2e-4, betas: [0.5, 9.99E-1]}\nmodel: {num_kp: 10}\n")
    cfg = load_config(path, ["train.steps=12", "train.lr=1e-4"])
    assert cfg.train.lr == pytest.approx(1e-4)
    assert cfg.train.betas == pytest.approx((0.5, 0.999))
    assert cfg.train.steps == 12 and isinstance(cfg.train.steps, int)
    assert apply_overrides({}, ["a=1_000", "b=-3E+2", "c=e5"]) == {
        "a": 1000,
        "b": -300.0,
        "c": "e5",
    }


def test_a_model_or_binary_or_huge_file_given_as_config_is_one_config_error(tmp_path):
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"\xb8\x01" + bytes(100))
    with pytest.raises(
        ConfigError,
        match=r"m.safetensors: not a YAML config \(binary, not UTF-8 text; for a model use --model\)",
    ):
        load_config(model)
    big = tmp_path / "big.yaml"
    big.write_text("a" * 1_000_001)  # read no further than the bound, whatever the file's size
    with pytest.raises(ConfigError, match=r"big.yaml: not a YAML config \(over 1000 kB\)"):
        load_config(big)


def test_an_override_that_is_not_yaml_is_one_config_error():
    with pytest.raises(ConfigError, match=r"--set train.lr: '\[' is not a YAML value"):
        apply_overrides({}, ["train.lr=["])


@pytest.mark.parametrize("suffix", [".ckpt", ".safetensors"])
def test_save_load_gives_bit_identical_outputs(tiny_networks, tmp_path, suffix):
    path = save_checkpoint(tmp_path / f"m{suffix}", tiny_networks)
    loaded = build_networks(load_checkpoint(path))
    torch.manual_seed(0)
    src, drv = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        outs = []
        for nets in (tiny_networks, loaded):
            sm, sv = nets.kp_detector(src)
            dm, dv = nets.kp_detector(drv)
            outs.append(nets.generator(src, sm, sv, dm, dv)["prediction"])
    assert torch.equal(outs[0], outs[1])
    assert loaded.config == tiny_networks.config
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's/safetensors' 0600


def test_training_state_round_trips(tiny_networks, tmp_path):
    training = {"step": 7, "rng": {"torch": torch.get_rng_state()}, "note": [1, 2.5, "x"]}
    path = save_checkpoint(tmp_path / "t.ckpt", tiny_networks, {"steps": 9}, training)
    ckpt = load_checkpoint(path)
    assert ckpt.training["step"] == 7 and ckpt.train_config == {"steps": 9}
    assert torch.equal(ckpt.training["rng"]["torch"], training["rng"]["torch"])


def test_empty_corrupt_wrong_and_missing_files_give_one_line_errors(tiny_ckpt, tmp_path):
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(tiny_ckpt.read_bytes()[:500])
    wrong = tmp_path / "wrong.ckpt"
    torch.save({"weights": torch.zeros(3)}, wrong)
    gif = tmp_path / "a gif.ckpt"
    gif.write_bytes(b"GIF89a")  # broke the unpickler with struct.error, a traceback
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    cases = {
        gif: "corrupt or not a checkpoint",
        noise: "corrupt or not a checkpoint",
        empty: "empty file",
        truncated: "corrupt or not a checkpoint",
        wrong: "not a Donkey checkpoint",
        tmp_path / "nope.ckpt": "no such checkpoint file",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        text = str(info.value)
        assert message in text and str(path) in text and "\n" not in text


class _Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def test_loading_never_executes_code(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    buffer = io.BytesIO()
    torch.save({"format": "donkey", "payload": _Exploit()}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(path)
    assert "code ran" not in capsys.readouterr().out
    assert pickle  # the exploit class is a real pickle gadget


def test_weights_that_do_not_fit_the_config(tiny_networks, tmp_path, tiny_config):
    import copy

    path = save_checkpoint(tmp_path / "m.ckpt", tiny_networks)
    ckpt = load_checkpoint(path)
    ckpt.model_config = copy.deepcopy(tiny_config.model)
    ckpt.model_config.num_kp = 5
    with pytest.raises(CheckpointError, match="weights do not fit the model config"):
        build_networks(ckpt)


def test_networks_built_from_config_only(tiny_config):
    nets = Networks(tiny_config.model)
    assert set(dict(nets.named_children())) == {"kp_detector", "generator", "discriminator"}
