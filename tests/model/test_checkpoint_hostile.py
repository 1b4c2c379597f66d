"""Hostile checkpoints and configs: refused in one line before any weight is allocated."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from donkey.model.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from donkey.model.config import config_from_dict, config_to_dict, load_config
from donkey.model.errors import CheckpointError, ConfigError
from tests.conftest import CONFIGS, ROOT


def _tiny_dict():
    return config_to_dict(load_config(CONFIGS / "tiny.yaml").model)


def _ckpt(path, config, state=None):
    torch.save({"format": FORMAT, "version": 1, "config": config, "state": state or {}}, path)
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_kp": 0}, "model.num_kp must be an integer in [1, 128], got 0"),
        ({"image_size": -64}, "model.image_size must be an integer in [16, 512]"),
        ({"image_size": 36}, "multiple of"),
        ({"num_channels": 4}, "model.num_channels must be 3"),
        ({"heatmap_norm": float("nan")}, "model.heatmap_norm must be a number"),
        ({"kp_detector": {"temperature": 0}}, "model.kp_detector.temperature"),
        ({"kp_detector": {"scale_factor": 3.0}}, "model.kp_detector.scale_factor"),
        (
            {"generator": {"num_blocks": 40}},
            "model.generator.num_blocks must be an integer in [1, 8]",
        ),
        ({"generator": {"max_features": 10**9}}, "model.generator.max_features"),
        ({"dense_motion": {"num_group_blocks": -1}}, "num_group_blocks"),
    ],
)
def test_config_ranges_are_one_line_errors(tmp_path, change, message):
    config = _tiny_dict()
    for key, value in change.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    path = _ckpt(tmp_path / "bad.ckpt", config)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert text.startswith(f"{path}: invalid model config inside") and message in text, text
    assert "\n" not in text


def test_huge_widths_are_refused_without_allocating(tmp_path):
    """The issue's 1 KB checkpoint that asked for 9.7 GB: refused, in a small fresh process."""
    config = _tiny_dict()
    config["image_size"] = 256
    for part in ("kp_detector", "dense_motion", "generator", "discriminator"):
        config[part].update(block_expansion=2048, max_features=2048, num_blocks=5)
    path = _ckpt(tmp_path / "huge.ckpt", config)
    assert path.stat().st_size < 2048
    code = (
        "import resource, sys\n"
        "from donkey.model.checkpoint import load_checkpoint\n"
        "from donkey.model.errors import CheckpointError\n"
        "try:\n"
        "    load_checkpoint(sys.argv[1])\n"
        "except CheckpointError as e:\n"
        "    print(e)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DONKEY_MAX_PARAMETERS", None)
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, check=True
    )
    message, rss_kb = result.stdout.strip().splitlines()
    assert "M parameters, more than the 200 M limit" in message
    assert int(rss_kb) < 2 * 1024 * 1024


def test_safetensors_metadata_must_be_json_objects(tmp_path, tiny_networks):
    state = {k: v.contiguous() for k, v in tiny_networks.state_dict().items()}
    for config_text, message in (
        ("{not json", "metadata 'config' is not valid JSON"),
        ("[1, 2]", "metadata 'config' must be a JSON object, got list"),
        ('"text"', "must be a JSON object, got str"),
    ):
        path = tmp_path / "bad.safetensors"
        save_file(state, str(path), metadata={"format": FORMAT, "config": config_text})
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)
    good_config = json.dumps(config_to_dict(tiny_networks.config))
    save_file(
        state,
        str(path),
        metadata={"format": FORMAT, "config": good_config, "train_config": "{oops"},
    )
    with pytest.raises(CheckpointError, match="metadata 'train_config' is not valid JSON"):
        load_checkpoint(path)


def test_shapes_and_dtypes_are_compared_before_loading(tmp_path, tiny_networks):
    good = save_checkpoint(tmp_path / "good.ckpt", tiny_networks)
    payload = torch.load(good, weights_only=True)
    key = next(k for k, v in payload["state"].items() if v.dim() == 4)
    for value, message in (
        (torch.zeros(1, 1, 1, 1), "1 wrong shape"),
        (payload["state"][key].to(torch.int32), "1 wrong dtype"),
    ):
        state = dict(payload["state"], **{key: value})
        path = _ckpt(tmp_path / "bad.ckpt", payload["config"], state)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(path)
    path = _ckpt(tmp_path / "list.ckpt", payload["config"], state=[1, 2, 3])
    with pytest.raises(CheckpointError, match="'state' must map weight names to tensors"):
        load_checkpoint(path)
    torch.save({"format": FORMAT, "config": "not a mapping", "state": {}}, tmp_path / "c.ckpt")
    with pytest.raises(CheckpointError, match="invalid model config inside"):
        load_checkpoint(tmp_path / "c.ckpt")
    # Safetensors: same comparison, from the header, before the tensors are read.
    st = tmp_path / "bad.safetensors"
    bad = {k: v.contiguous() for k, v in payload["state"].items()}
    bad[key] = torch.zeros(2, 2)
    save_file(bad, str(st), metadata={"format": FORMAT, "config": json.dumps(payload["config"])})
    with pytest.raises(CheckpointError, match="1 wrong shape"):
        load_checkpoint(st)


def test_non_finite_weights_and_newer_versions_are_refused(tmp_path, tiny_networks):
    good = save_checkpoint(tmp_path / "good.ckpt", tiny_networks)
    payload = torch.load(good, weights_only=True)
    key = next(k for k, v in payload["state"].items() if v.dim() == 4)
    for bad_value in (float("nan"), float("inf")):
        broken = payload["state"][key].clone()
        broken[0, 0, 0, 0] = bad_value
        path = _ckpt(
            tmp_path / "nan.ckpt", payload["config"], dict(payload["state"], **{key: broken})
        )
        with pytest.raises(
            CheckpointError, match=rf"1 weight tensor\(s\) hold NaN or infinity \(first: {key}\)"
        ):
            load_checkpoint(path)
    meta = {"format": FORMAT, "config": json.dumps(payload["config"])}
    state = {k: v.contiguous() for k, v in payload["state"].items()}
    st = tmp_path / "v.safetensors"
    for version, message in (
        ("99", "written by a newer Donkey (format version 99; this one reads up to 1)"),
        ("x", "format version 'x' is not a version number"),
    ):
        save_file(state, str(st), metadata=dict(meta, version=version))
        with pytest.raises(CheckpointError, match=re.escape(message)):
            load_checkpoint(st)
    save_file(state, str(st), metadata=dict(meta, version="1"))
    assert load_checkpoint(st).model_config == tiny_networks.config
    torch.save(dict(payload, version=2), tmp_path / "v2.ckpt")
    with pytest.raises(CheckpointError, match=r"format version 2; this one reads up to 1"):
        load_checkpoint(tmp_path / "v2.ckpt")


def test_train_config_ranges():
    for key, value, message in (
        ("steps", -1, "train.steps must be an integer in [1,"),
        ("batch_size", 0, "train.batch_size"),
        ("num_workers", -1, "train.num_workers"),
        ("lr", 0, "train.lr"),
        ("checkpoint_every", 0, "train.checkpoint_every"),
        ("ema", 1.0, "train.ema must be a number in [0.0, 0.99999], got 1.0"),
        ("ema", -0.5, "train.ema"),
    ):
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            config_from_dict({"train": {key: value}})
    with pytest.raises(ConfigError, match="train.augment.scale_max"):
        config_from_dict({"train": {"augment": {"scale_min": 1.2, "scale_max": 1.1}}})


def _alias_bomb(levels: int) -> str:
    """YAML of a few hundred bytes whose value, printed, is 4**levels strings long (a hang
    at 21 levels; at 12, 112 MB in a few seconds, so a regression fails on the length)."""
    value = '&a0 ["lol", "lol", "lol", "lol"]'
    for i in range(1, levels + 1):
        value = f"&a{i} [" + ", ".join([value] + [f"*a{i - 1}"] * 3) + "]"
    return value


@pytest.mark.parametrize("key", ["model:\n  image_size", "train:\n  betas", "train:\n  freeze"])
def test_a_value_that_prints_as_gigabytes_is_echoed_in_brief(tmp_path, key):
    # Before, the message printed the whole value: a 470-byte config hung donkey train.
    path = tmp_path / "bomb.yaml"
    path.write_text(f"{key}: {_alias_bomb(12)}\n")
    assert path.stat().st_size < 1000
    with pytest.raises(
        ConfigError, match=r"must be (an integer|a number|a string), got \[\[\["
    ) as exc:
        load_config(path)
    assert len(str(exc.value)) < 300


def test_an_integer_too_long_to_print_is_described(tmp_path):
    # repr() of an int over 4300 digits raises ValueError: the message itself was a traceback.
    path = tmp_path / "hex.yaml"
    path.write_text("model:\n  image_size: 0x" + "f" * 4000 + "\n")
    with pytest.raises(
        ConfigError,
        match=r"image_size must be an integer in \[16, 512\], got <integer of 16000 bits>",
    ):
        load_config(path)


def test_a_checkpoint_whose_config_prints_as_gigabytes_is_refused_in_brief(tmp_path, tiny_networks):
    save_checkpoint(tmp_path / "ok.ckpt", tiny_networks)
    payload = torch.load(tmp_path / "ok.ckpt", weights_only=True)
    value = ["lol"] * 4
    for _ in range(11):
        value = [value] * 4  # pickle keeps the shared references: a small file
    payload["config"]["image_size"] = value
    torch.save(payload, tmp_path / "bomb.ckpt")
    with pytest.raises(
        CheckpointError,
        match="invalid model config inside .config key 'model.image_size' must be an integer",
    ) as exc:
        load_checkpoint(tmp_path / "bomb.ckpt")
    assert len(str(exc.value)) < 400


class _ShellGadget:
    """What a hostile .ckpt carries: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_carrying_files_are_refused_as_code_everywhere(tmp_path):
    """A pickled os.system was reported as 'corrupt' with torch's advice to load it with
    weights_only=False; every weights file we read now says it was refused, and nothing runs."""
    from donkey.data.features import vgg11_features
    from donkey.model.checkpoint import load_weights_only
    from donkey.model.errors import DonkeyError
    from donkey.train.losses import load_vgg_state

    marker = tmp_path / "ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"format": FORMAT, "state": _ShellGadget(marker)}, evil)
    expected = f"{evil}: refused to load, it would need to run code (global posix.system)"
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(evil)
    assert str(info.value) == expected
    for load in (load_vgg_state, lambda p: vgg11_features(p, None)):
        with pytest.raises(DonkeyError) as info:
            load(evil)
        assert str(info.value) == expected
    with pytest.raises(CheckpointError) as info:
        load_weights_only(evil, "x")
    # torch's own message advises weights_only=False, which would run the gadget: not repeated.
    assert str(info.value) == expected and "weights_only" not in str(info.value)
    assert not marker.exists()


def test_a_raw_pickle_is_one_line_without_warnings(tmp_path, recwarn):
    """A plain pickle (protocol 4) made torch print a two-line UserWarning before the error."""
    import pickle

    path = tmp_path / "raw.ckpt"
    path.write_bytes(pickle.dumps({"format": FORMAT, "state": {}}, protocol=4))
    not_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], not_dict)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: corrupt or not a checkpoint (")
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]

    from donkey.data.features import vgg11_features
    from donkey.model.errors import DonkeyError
    from donkey.train.losses import load_vgg_state

    for load, name in ((load_vgg_state, "VGG-19"), (lambda p: vgg11_features(p, None), "VGG-11")):
        with pytest.raises(DonkeyError) as info:
            load(not_dict)
        assert str(info.value) == f"{not_dict}: expected a state dict of {name} weights"
