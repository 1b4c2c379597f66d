import copy

import torch

from donkey.model.config import LossConfig
from donkey.train.steps import (
    Models,
    discriminator_loss,
    dual_generator_step,
    monkey_generator_step,
)


def TrainConfig(**kw):  # noqa: N802 - the tiny discriminator has 2 blocks
    from donkey.model.config import TrainConfig as Real

    return Real(loss=LossConfig(feature_matching=[10.0, 1.0]), **kw)


def _models(nets):
    return Models(nets.kp_detector, nets.generator, nets.discriminator)


def _batch(n=2, seed=0):
    torch.manual_seed(seed)
    return {k: torch.rand(n, 3, 32, 32) for k in ("driving_a", "driving_b", "source_a", "source_b")}


def test_dual_step_compares_each_prediction_with_its_own_target(tiny_networks):
    nets = copy.deepcopy(tiny_networks).eval()  # running BN stats: per-sample results
    cfg = TrainConfig(mode="dual")
    batch = _batch()
    batch["driving_a"] = batch["driving_a"] * 0.2  # dark A, bright B: a swap changes the L1
    batch["driving_b"] = 0.8 + batch["driving_b"] * 0.2
    with torch.no_grad():
        out = dual_generator_step(_models(nets), batch, cfg, None)
        kp = nets.kp_detector
        pred_b = nets.generator(batch["source_b"], *kp(batch["source_b"]), *kp(batch["driving_a"]))[
            "prediction"
        ]
        pred_a = nets.generator(batch["source_a"], *kp(batch["source_a"]), *kp(pred_b))[
            "prediction"
        ]
    torch.testing.assert_close(out.fake, torch.cat([pred_b, pred_a]), atol=1e-6, rtol=0)
    assert torch.equal(out.real, torch.cat([batch["driving_b"], batch["driving_a"]]))
    expected_rec = (
        10 * torch.cat([(pred_b - batch["driving_b"]), (pred_a - batch["driving_a"])]).abs().mean()
    )
    torch.testing.assert_close(out.losses["rec"], expected_rec, atol=1e-6, rtol=0)
    with torch.no_grad():  # the test is sensitive: roles swapped give other predictions
        swapped_b = nets.generator(
            batch["source_a"], *kp(batch["source_a"]), *kp(batch["driving_b"])
        )["prediction"]
    assert (swapped_b - out.fake[:2]).abs().max() > 1e-2
    assert not torch.equal(out.real[:2], batch["driving_a"])
    # ground-truth discriminator keypoints: those of the real target frames
    torch.testing.assert_close(
        out.disc_mean, torch.cat([kp(batch["driving_b"])[0], kp(batch["driving_a"])[0]])
    )


def test_dual_step_keeps_the_second_keypoints_attached(tiny_networks):
    nets = copy.deepcopy(tiny_networks).train()
    batch = _batch(seed=1)
    out = dual_generator_step(
        _models(nets), batch, TrainConfig(mode="dual", disc_keypoints="driving"), None
    )
    pred_a = out.fake[2:]
    # prediction_A depends on prediction_B through kp(prediction_B): its gradient reaches pred_B
    grad = torch.autograd.grad(pred_a.sum(), out.visuals["prediction_b"], retain_graph=True)[0]
    assert grad.abs().sum() > 0


def test_monkey_step_and_discriminator_loss(tiny_networks):
    nets = copy.deepcopy(tiny_networks).train()
    torch.manual_seed(2)
    batch = {"source": torch.rand(3, 3, 32, 32), "driving": torch.rand(3, 3, 32, 32)}
    out = monkey_generator_step(_models(nets), batch, TrainConfig(), None)
    assert set(out.losses) == {"rec", "fm", "gan", "total"}
    total = out.losses["rec"] + out.losses["fm"] + out.losses["gan"]
    torch.testing.assert_close(out.losses["total"], total)
    assert torch.equal(out.real, batch["driving"])
    loss_d = discriminator_loss(_models(nets), out)
    loss_d.backward()
    assert nets.discriminator.conv.weight.grad is not None
    assert (
        nets.generator.appearance_encoder.down_blocks[0].conv.weight.grad is None
    )  # fake detached


def test_pair_self_step_reconstructs_each_video_from_itself(tiny_networks):
    from donkey.train.steps import generator_step_for, pair_self_generator_step

    nets = copy.deepcopy(tiny_networks).eval()
    batch = _batch(n=2, seed=3)
    cfg = TrainConfig(mode="mixed", pair_steps="self")
    with torch.no_grad():
        out = pair_self_generator_step(_models(nets), batch, cfg, None)
        kp = nets.kp_detector
        pred_a = nets.generator(batch["source_a"], *kp(batch["source_a"]), *kp(batch["driving_a"]))
    # Four predictions from two pairs: A's first, each against its own driving frame.
    assert out.fake.shape == (4, 3, 32, 32)
    assert torch.allclose(out.fake[:2], pred_a["prediction"], atol=1e-5)
    assert torch.equal(out.real, torch.cat([batch["driving_a"], batch["driving_b"]]))
    expected = 10 * (out.fake - out.real).abs().mean()
    assert torch.allclose(out.losses["rec"], expected)
    assert generator_step_for(batch, cfg) is pair_self_generator_step
    assert generator_step_for(batch, TrainConfig(mode="mixed")) is dual_generator_step
    single = {"source": batch["source_a"], "driving": batch["driving_a"]}
    assert generator_step_for(single, cfg) is monkey_generator_step
