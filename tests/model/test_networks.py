import copy

import pytest
import torch

from donkey.model.attention import BAM, CBAM, ECA, eca_kernel_size
from donkey.model.complexity import model_complexity
from donkey.model.config import load_config
from donkey.model.geometry import make_coordinate_grid, warp
from donkey.model.graphs import build_graphs, run_graph
from donkey.model.networks import Networks
from tests.conftest import CONFIGS


def test_eca_kernel_size_rule():
    # t = int((log2 C + 1) / 2), odd t kept, even t made odd
    assert eca_kernel_size(64) == 3  # t = 3
    assert eca_kernel_size(256) == 5  # t = 4 -> 5
    assert eca_kernel_size(1024) == 5  # t = 5
    assert eca_kernel_size(13) == 3  # works for any channel count


def test_attention_blocks_keep_shape_and_start_as_identity():
    x = torch.randn(2, 13, 8, 8)
    for block in (CBAM(13), BAM(13)):
        torch.testing.assert_close(block(x), x)
        with torch.no_grad():
            block.gate.fill_(1.0)
        assert block(x).shape == x.shape
        assert not torch.allclose(block(x), x)
    assert ECA(13)(x).shape == x.shape


def test_identical_keypoints_give_identity_grid_at_init(tiny_config):
    torch.manual_seed(0)
    nets = Networks(tiny_config.model).eval()
    src = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        mean, var = nets.kp_detector(src)
        out = nets.generator(src, mean, var, mean, var)
    m = tiny_config.model.motion_size
    identity = make_coordinate_grid(m, m, src).expand(2, m, m, 2)
    torch.testing.assert_close(out["grid"], identity, atol=1e-6, rtol=0)
    torch.testing.assert_close(out["deformed"], src, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_attention_with_zero_gates_equals_no_attention(name):
    cfg = load_config(CONFIGS / f"{name}.yaml").model
    on = copy.deepcopy(cfg)
    off = copy.deepcopy(cfg)
    for part in (on.dense_motion, on.generator, on.discriminator):
        part.attention = True
    for part in (off.dense_motion, off.generator, off.discriminator):
        part.attention = False
    torch.manual_seed(0)
    plain = Networks(off).eval()
    attn = Networks(on).eval()
    missing, unexpected = attn.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".attention." in k for k in missing)
    with torch.no_grad():
        plain.generator.dense_motion_module.hourglass.decoder.conv.weight.normal_(0, 0.1)
        attn.load_state_dict(plain.state_dict(), strict=False)
    s = cfg.image_size
    torch.manual_seed(1)
    src, drv = torch.rand(2, 3, s, s), torch.rand(2, 3, s, s)
    with torch.no_grad():
        outs = []
        for nets in (plain, attn):
            sm, sv = nets.kp_detector(src)
            dm, dv = nets.kp_detector(drv)
            pred = nets.generator(src, sm, sv, dm, dv)["prediction"]
            feats, score = nets.discriminator(pred, dm, dv)
            outs.append((pred, feats, score))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=0, rtol=0)
    torch.testing.assert_close(outs[0][2], outs[1][2], atol=0, rtol=0)
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_gradients_reach_every_trainable_parameter(tiny_networks):
    nets = copy.deepcopy(tiny_networks).train()
    torch.manual_seed(0)
    src, drv = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    sm, sv = nets.kp_detector(src)
    dm, dv = nets.kp_detector(drv)
    pred = nets.generator(src, sm, sv, dm, dv)["prediction"]
    feats, score = nets.discriminator(pred, dm, dv)
    loss = (pred - drv).abs().mean() + score.mean() + sum(f.mean() for f in feats)
    loss.backward()
    dead = [n for n, p in nets.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert dead == []


def test_mgif_parameter_counts_match_the_paper_model():
    stats = model_complexity(load_config(CONFIGS / "mgif.yaml").model)
    expected = {
        "kp_detector": 14.1e6,
        "dense_motion": 14.2e6,
        "generator": 38e6,
        "discriminator": 1.7e6,
    }
    for name, value in expected.items():
        assert abs(stats[name]["params"] - value) / value < 0.03, (name, stats[name])
    gmac = {"kp_detector": 1.0, "dense_motion": 1.2, "generator": 7.0}
    for name, value in gmac.items():
        assert abs(stats[name]["gmac"] - value) / value < 0.05, (name, stats[name])


def test_graph_wrappers_give_the_same_frames_as_the_modules(tiny_networks):
    nets = tiny_networks
    graphs = build_graphs(nets)
    torch.manual_seed(4)
    src, drv = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        sm, sv = nets.kp_detector(src)
        dm, dv = nets.kp_detector(drv)
        expected = nets.generator(src, sm, sv, dm, dv)["prediction"]
        kp = run_graph(*graphs["kp_detector"], {"image": drv})
        torch.testing.assert_close(kp["kp_mean"], dm, atol=0, rtol=0)
        feeds = {
            "source": src,
            "kp_source_mean": sm,
            "kp_source_var": sv,
            "kp_driving_mean": dm,
            "kp_driving_var": dv,
        }
        feeds.update(run_graph(*graphs["source_encoder"], {"source": src}))
        feeds.update(run_graph(*graphs["dense_motion"], feeds))
        got = run_graph(*graphs["generator"], feeds)["prediction"]
    torch.testing.assert_close(got, expected, atol=0, rtol=0)
    spec = graphs["generator"][1]
    assert spec.output_names == ["prediction"]
    assert spec.input_names[0] == "source" and "grid" in spec.input_names


def test_spec_rejects_wrong_shapes(tiny_networks):
    from donkey.model.errors import DonkeyError

    spec = build_graphs(tiny_networks)["kp_detector"][1]
    spec.check_inputs({"image": torch.zeros(5, 3, 32, 32)})
    with pytest.raises(DonkeyError, match="image: expected shape batchx3x32x32, got 5x3x64x64"):
        spec.check_inputs({"image": torch.zeros(5, 3, 64, 64)})
    with pytest.raises(DonkeyError, match="missing inputs image"):
        spec.check_inputs({})


def test_warp_of_shifted_grid_moves_content():
    img = torch.zeros(1, 1, 5, 5)
    img[0, 0, 2, 3] = 1.0
    grid = make_coordinate_grid(5, 5, img)[None].clone()
    grid[..., 0] += 0.5  # sample one pixel to the right
    out = warp(img, grid)
    assert out[0, 0, 2, 2].item() == pytest.approx(1.0)
