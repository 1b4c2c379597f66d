"""One generator forward with its losses, for each training mode, and the discriminator loss.

`Models` holds the (possibly DDP-wrapped) networks. Each DDP module is called through its
wrapper once per backward; a second call within the same backward goes to `.module`, whose
gradients still accumulate into the same parameters before DDP's all-reduce fires.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from donkey.model.config import TrainConfig
from donkey.train.losses import (
    VGG19Perceptual,
    discriminator_gan_loss,
    feature_matching_loss,
    generator_gan_loss,
)


@dataclass
class Models:
    kp_detector: nn.Module
    generator: nn.Module
    discriminator: nn.Module


def unwrap(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)


@dataclass
class GeneratorOutput:
    losses: dict[str, Tensor]  # "total" plus each term, for logging
    fake: Tensor  # predictions (N, 3, H, W), targets of the discriminator step
    real: Tensor  # matching ground-truth frames
    disc_mean: Tensor  # keypoints the discriminator sees with each image (detached)
    disc_var: Tensor
    visuals: dict[str, Tensor]


def _split(x: Tensor, n: int) -> list[Tensor]:
    return list(torch.split(x, n))


def _generator_losses(
    models: Models,
    cfg: TrainConfig,
    perceptual: VGG19Perceptual | None,
    fake: Tensor,
    real: Tensor,
    disc_mean: Tensor,
    disc_var: Tensor,
) -> dict[str, Tensor]:
    loss_cfg = cfg.loss
    n = fake.shape[0]
    feats, scores = models.discriminator(
        torch.cat([fake, real.detach()]), disc_mean.repeat(2, 1, 1), disc_var.repeat(2, 1, 1, 1)
    )
    fake_feats = [f[:n] for f in feats]
    real_feats = [f[n:] for f in feats]
    losses = {
        "rec": loss_cfg.reconstruction * (fake - real).abs().mean(),
        "fm": feature_matching_loss(
            fake_feats, real_feats, loss_cfg.feature_matching, loss_cfg.feature_matching_scales
        ),
        "gan": loss_cfg.gan * generator_gan_loss(scores[:n]),
    }
    if perceptual is not None:
        losses["perceptual"] = loss_cfg.perceptual * perceptual(fake, real)
    losses["total"] = sum(losses.values())
    return losses


def monkey_generator_step(
    models: Models, batch: dict[str, Tensor], cfg: TrainConfig, perceptual: VGG19Perceptual | None
) -> GeneratorOutput:
    """Self-reconstruction: the driving frame's keypoints move the source into the driving frame."""
    source, driving = batch["source"], batch["driving"]
    n = source.shape[0]
    means, vars_ = models.kp_detector(torch.cat([source, driving]))
    src_mean, drv_mean = _split(means, n)
    src_var, drv_var = _split(vars_, n)
    out = models.generator(source, src_mean, src_var, drv_mean, drv_var)
    fake = out["prediction"]
    disc_mean, disc_var = drv_mean.detach(), drv_var.detach()  # target == driving here
    losses = _generator_losses(models, cfg, perceptual, fake, driving, disc_mean, disc_var)
    visuals = {
        "source": source,
        "driving": driving,
        "deformed": out["deformed"],
        "prediction": fake,
    }
    return GeneratorOutput(losses, fake, driving, disc_mean, disc_var, visuals)


def dual_generator_step(
    models: Models, batch: dict[str, Tensor], cfg: TrainConfig, perceptual: VGG19Perceptual | None
) -> GeneratorOutput:
    """Donkey-Net dual reconstruction on a pair (A, B) posed alike at time t.

    prediction_B = G(source_B, kp(source_B), kp(driving_A))      -> compared with driving_B
    prediction_A = G(source_A, kp(source_A), kp(prediction_B))   -> compared with driving_A
    kp(prediction_B) is not detached: the second step pushes prediction_B to carry A's pose.
    """
    drv_a, drv_b = batch["driving_a"], batch["driving_b"]
    src_a, src_b = batch["source_a"], batch["source_b"]
    n = drv_a.shape[0]
    means, vars_ = models.kp_detector(torch.cat([src_b, drv_a, src_a, drv_b]))
    m_src_b, m_drv_a, m_src_a, m_drv_b = _split(means, n)
    v_src_b, v_drv_a, v_src_a, v_drv_b = _split(vars_, n)
    out_b = models.generator(src_b, m_src_b, v_src_b, m_drv_a, v_drv_a)
    pred_b = out_b["prediction"]
    m_pred_b, v_pred_b = unwrap(models.kp_detector)(pred_b)
    out_a = unwrap(models.generator)(src_a, m_src_a, v_src_a, m_pred_b, v_pred_b)
    pred_a = out_a["prediction"]
    if cfg.disc_keypoints == "ground_truth":
        disc_mean = torch.cat([m_drv_b, m_drv_a])
        disc_var = torch.cat([v_drv_b, v_drv_a])
    else:  # the keypoints that drove each prediction
        disc_mean = torch.cat([m_drv_a, m_pred_b])
        disc_var = torch.cat([v_drv_a, v_pred_b])
    fake = torch.cat([pred_b, pred_a])
    real = torch.cat([drv_b, drv_a])
    disc_mean, disc_var = disc_mean.detach(), disc_var.detach()
    losses = _generator_losses(models, cfg, perceptual, fake, real, disc_mean, disc_var)
    visuals = {
        "source_b": src_b,
        "driving_a": drv_a,
        "prediction_b": pred_b,
        "driving_b": drv_b,
        "source_a": src_a,
        "prediction_a": pred_a,
    }
    return GeneratorOutput(losses, fake, real, disc_mean, disc_var, visuals)


def pair_self_generator_step(
    models: Models, batch: dict[str, Tensor], cfg: TrainConfig, perceptual: VGG19Perceptual | None
) -> GeneratorOutput:
    """Self-reconstruction on a pair batch: each video drives its own source, A and B alike.

    The control for dual reconstruction: the same frames, the same number of predictions
    (2 per pair), only the cross-identity path is missing.
    """
    single = {
        "source": torch.cat([batch["source_a"], batch["source_b"]]),
        "driving": torch.cat([batch["driving_a"], batch["driving_b"]]),
    }
    return monkey_generator_step(models, single, cfg, perceptual)


def generator_step_for(batch: dict[str, Tensor], cfg: TrainConfig):
    """The step a batch calls for: pair batches (mixed or dual mode) by `cfg.pair_steps`."""
    if "driving_a" not in batch:
        return monkey_generator_step
    return dual_generator_step if cfg.pair_steps == "dual" else pair_self_generator_step


def discriminator_loss(models: Models, out: GeneratorOutput) -> Tensor:
    """LSGAN loss on real frames and detached predictions, in one discriminator call."""
    n = out.fake.shape[0]
    _, scores = models.discriminator(
        torch.cat([out.real, out.fake.detach()]),
        out.disc_mean.repeat(2, 1, 1),
        out.disc_var.repeat(2, 1, 1, 1),
    )
    return discriminator_gan_loss(scores[:n], scores[n:])
