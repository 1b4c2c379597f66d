"""scripts/ship_model.py: the bundled model's file, and the weights scripts/gpu_stage2.sh sends back."""

import pytest
import torch

from donkey.model.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import load_script


def test_ships_without_the_discriminator_unless_asked_and_keeps_the_step(tiny_networks, tmp_path):
    ship = load_script("ship_model")
    training = {"step": 1234}
    run = save_checkpoint(tmp_path / "last.ckpt", tiny_networks, train_config={}, training=training)

    ship.main([str(run), str(tmp_path / "shipped.safetensors")])
    shipped = load_checkpoint(tmp_path / "shipped.safetensors")
    assert not any(k.startswith("discriminator.") for k in shipped.state)
    assert shipped.train_config["shipped_from_step"] == 1234

    ship.main(["--keep-discriminator", str(run), str(tmp_path / "with-d.safetensors")])
    kept = load_checkpoint(tmp_path / "with-d.safetensors")
    own = tiny_networks.state_dict()
    disc = [k for k in own if k.startswith("discriminator.")]
    assert disc and all(torch.equal(kept.state[k], own[k]) for k in disc)
    assert kept.training is None and kept.train_config["shipped_from_step"] == 1234

    # Shipping from that weights-only file keeps its step (it has no training state to read).
    ship.main([str(tmp_path / "with-d.safetensors"), str(tmp_path / "again.safetensors")])
    assert load_checkpoint(tmp_path / "again.safetensors").train_config["shipped_from_step"] == 1234


def test_a_missing_or_broken_source_is_one_line(tmp_path):
    ship = load_script("ship_model")
    with pytest.raises(SystemExit, match="missing.ckpt: no such checkpoint file"):
        ship.main([str(tmp_path / "missing.ckpt"), str(tmp_path / "out.safetensors")])
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="junk.ckpt: corrupt or not a checkpoint"):
        ship.main([str(tmp_path / "junk.ckpt"), str(tmp_path / "out.safetensors")])
    assert not (tmp_path / "out.safetensors").exists()
    with pytest.raises(SystemExit, match=r"out.pt: the output must be a .safetensors \(or .ckpt\)"):
        ship.main([str(tmp_path / "junk.ckpt"), str(tmp_path / "out.pt")])
