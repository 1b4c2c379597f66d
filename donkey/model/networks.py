"""The three trainable networks of a Donkey-Net model, built from one ModelConfig."""

from __future__ import annotations

import os

import torch
from torch import nn

from donkey.model.config import ModelConfig
from donkey.model.discriminator import Discriminator
from donkey.model.errors import ConfigError
from donkey.model.generator import Generator
from donkey.model.keypoint_detector import KeypointDetector

NETWORK_NAMES = ("kp_detector", "generator", "discriminator")


class Networks(nn.Module):
    """kp_detector, generator (owning the dense motion module) and discriminator."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if torch.empty(0).device.type != "meta":  # check_model_size builds on the meta device
            check_model_size(config)
        self.config = config
        self.kp_detector = KeypointDetector(config.kp_detector, config.num_kp, config.num_channels)
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


MAX_PARAMETERS = 200_000_000  # 800 MB of float32 weights; the paper-size model has 68 M


def check_model_size(config: ModelConfig, source: str = "config") -> int:
    """Counts the parameters on the meta device (nothing allocated); refuses too many.

    DONKEY_MAX_PARAMETERS raises the limit for deliberately larger models.
    """
    limit = MAX_PARAMETERS
    text = os.environ.get("DONKEY_MAX_PARAMETERS")
    if text:
        try:
            limit = int(float(text))
        except ValueError:
            raise ConfigError(f"DONKEY_MAX_PARAMETERS must be a number, got {text!r}") from None
    with torch.device("meta"):
        count = count_parameters(Networks(config))
    if count > limit:
        raise ConfigError(
            f"{source + ': ' if source else ''}the model would have {count / 1e6:.0f} M parameters, more than the "
            f"{limit / 1e6:.0f} M limit (raise it with DONKEY_MAX_PARAMETERS)"
        )
    return count
