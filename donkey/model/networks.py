"""The three trainable networks of a Donkey-Net model, built from one ModelConfig."""

from __future__ import annotations

from torch import nn

from donkey.model.config import ModelConfig
from donkey.model.discriminator import Discriminator
from donkey.model.generator import Generator
from donkey.model.keypoint_detector import KeypointDetector

NETWORK_NAMES = ("kp_detector", "generator", "discriminator")


class Networks(nn.Module):
    """kp_detector, generator (owning the dense motion module) and discriminator."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.kp_detector = KeypointDetector(config.kp_detector, config.num_kp, config.num_channels)
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
