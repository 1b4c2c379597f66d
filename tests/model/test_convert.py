import torch

from donkey.cli.app import app
from donkey.model.checkpoint import load_networks
from donkey.model.config import load_config
from donkey.model.convert import convert_monkeynet_state, official_layout
from donkey.model.networks import Networks
from tests.conftest import CONFIGS


def _outputs(nets, seed=0):
    torch.manual_seed(seed)
    src, drv = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        sm, sv = nets.kp_detector(src)
        dm, dv = nets.kp_detector(drv)
        pred = nets.generator(src, sm, sv, dm, dv)["prediction"]
        _, score = nets.discriminator(pred, dm, dv)
    return pred, score


def _plain_tiny():
    cfg = load_config(CONFIGS / "tiny.yaml").model
    for part in (cfg.dense_motion, cfg.generator, cfg.discriminator):
        part.attention = False
    return cfg


def test_official_layout_has_3d_convs_and_official_names():
    torch.manual_seed(0)
    official = official_layout(Networks(_plain_tiny()))
    w = official["kp_detector"]["predictor.encoder.down_blocks.0.conv.weight"]
    assert w.dim() == 5 and w.shape[2] == 1
    assert "dense_motion_module.hourglass.decoder.conv.weight" in official["generator"]
    assert "refinement_module.conv-last.weight" in official["generator"]
    assert "down_blocks.1.norm.weight" in official["discriminator"]


def test_convert_reproduces_the_model_and_starts_attention_at_zero(tmp_path, runner):
    torch.manual_seed(0)
    reference = Networks(_plain_tiny()).eval()
    with torch.no_grad():
        reference.generator.dense_motion_module.hourglass.decoder.conv.weight.normal_(0, 0.1)
    official = official_layout(reference)
    official["optimizer_generator"] = {"state": {}, "param_groups": []}
    official["generator"]["some_future_module.weight"] = torch.zeros(3)
    path = tmp_path / "moving-gif.pth.tar"
    torch.save(official, path)

    # into the same architecture: identical outputs
    state, report = convert_monkeynet_state(
        torch.load(path, weights_only=True), Networks(_plain_tiny())
    )
    assert report.unmapped == ["generator.some_future_module.weight"]
    converted = Networks(_plain_tiny())
    converted.load_state_dict(state)
    converted.eval()
    for a, b in zip(_outputs(reference), _outputs(converted)):
        assert torch.equal(a, b)

    # through the CLI into the attention config: gates at 0, same outputs
    donkey_cfg = tmp_path / "tiny-attention.yaml"
    donkey_cfg.write_text((CONFIGS / "tiny.yaml").read_text())
    out = tmp_path / "converted.ckpt"
    result = runner.invoke(app, ["convert", str(path), "-o", str(out), "--config", str(donkey_cfg)])
    assert result.exit_code == 0, result.output
    assert "unmapped" in result.output and "some_future_module" in result.output
    nets = load_networks(out)
    gates = [p for n, p in nets.named_parameters() if n.endswith("gate")]
    assert gates and all(g.item() == 0.0 for g in gates)
    for a, b in zip(_outputs(reference), _outputs(nets)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_convert_rejects_files_that_are_not_monkeynet(tmp_path, runner):
    path = tmp_path / "other.pth"
    torch.save({"model": {}}, path)
    result = runner.invoke(app, ["convert", str(path), "-o", str(tmp_path / "x.ckpt")])
    assert result.exit_code == 1 and "not a Monkey-Net checkpoint" in result.output


def test_the_report_names_required_tensors_the_file_leaves_unfilled():
    """Attention, BatchNorm step counters and an absent discriminator need not come from the
    file; every other tensor does, or the converted model is partly random."""
    torch.manual_seed(0)
    official = official_layout(Networks(_plain_tiny()))
    for part in official.values():
        if isinstance(part, dict):
            for key in [k for k in part if k.endswith("num_batches_tracked")]:
                del part[key]  # PyTorch before 0.4.1 did not save them
    del official["discriminator"]  # fine-tuning starts a fresh one
    _, report = convert_monkeynet_state(
        official, Networks(load_config(CONFIGS / "tiny.yaml").model)
    )
    assert report.missing == [] and report.required > 0

    del official["generator"]["refinement_module.conv-last.weight"]
    _, report = convert_monkeynet_state(official, Networks(_plain_tiny()))
    assert report.missing == ["generator.refinement_module.conv-last.weight"]

    official = official_layout(Networks(_plain_tiny()))
    official["discriminator"]["down_blocks.0.conv.weight"] = torch.zeros(1, 1, 1, 1, 1)
    _, report = convert_monkeynet_state(official, Networks(_plain_tiny()))
    assert report.missing == ["discriminator.down_blocks.0.conv.weight"]
