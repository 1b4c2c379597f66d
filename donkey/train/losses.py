"""Losses: LSGAN, pixel L1, (multi-scale) discriminator feature matching, multi-scale VGG-19."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from donkey.model.checkpoint import load_matching, load_state_dict_file
from donkey.model.errors import DonkeyError

# relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in torchvision's vgg19().features
VGG19_SLICES = (2, 7, 12, 21, 30)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def generator_gan_loss(score_fake: Tensor) -> Tensor:
    """LSGAN: the generator wants D(fake) = 1."""
    return ((1.0 - score_fake) ** 2).mean()


def discriminator_gan_loss(score_real: Tensor, score_fake: Tensor) -> Tensor:
    """LSGAN: D(real) -> 1, D(fake) -> 0."""
    return ((1.0 - score_real) ** 2).mean() + (score_fake**2).mean()


def _rescale(x: Tensor, scale: float) -> Tensor:
    if scale == 1.0:
        return x
    size = [max(1, int(round(s * scale))) for s in x.shape[-2:]]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def feature_matching_loss(
    fake: list[Tensor], real: list[Tensor], weights: list[float], scales: list[float]
) -> Tensor:
    """sum over scales s and layers i of w_i * L1(resize(fake_i, s), resize(real_i, s)).

    `real` features are targets (detached here).
    """
    if len(weights) != len(fake):
        raise DonkeyError(
            f"train.loss.feature_matching has {len(weights)} weights for {len(fake)} discriminator blocks"
        )
    total = fake[0].new_zeros(())
    for scale in scales:
        for weight, f, r in zip(weights, fake, real):
            if weight:
                total = (
                    total + weight * (_rescale(f, scale) - _rescale(r.detach(), scale)).abs().mean()
                )
    return total


class VGG19Perceptual(nn.Module):
    """L1 between VGG-19 relu{1..5}_1 features at several image scales (frozen network)."""

    def __init__(self, weights_path: str | Path, layer_weights: list[float], scales: list[float]):
        super().__init__()
        from torchvision.models import vgg19

        features = vgg19(weights=None).features
        state = load_vgg_state(weights_path)
        missing = load_matching(features, state, Path(weights_path), "VGG-19 weights")
        if missing:
            raise DonkeyError(
                f"{weights_path}: not VGG-19 weights (missing {', '.join(missing[:3])})"
            )
        self.slices = nn.ModuleList()
        start = 0
        for end in VGG19_SLICES:
            self.slices.append(nn.Sequential(*[features[i] for i in range(start, end)]))
            start = end
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        self.layer_weights = layer_weights
        self.scales = scales
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> VGG19Perceptual:
        return super().train(False)  # always frozen, BN-free anyway

    def _features(self, x: Tensor) -> list[Tensor]:
        x = (x - self.mean) / self.std
        out = []
        for block in self.slices:
            x = block(x)
            out.append(x)
        return out

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        total = prediction.new_zeros(())
        for scale in self.scales:
            fp = self._features(_rescale(prediction, scale))
            with torch.no_grad():
                ft = self._features(_rescale(target, scale))
            for w, a, b in zip(self.layer_weights, fp, ft):
                if w:
                    total = total + w * (a - b).abs().mean()
        return total


def load_vgg_state(path: str | Path) -> dict[str, Tensor]:
    """A torchvision VGG-19 state dict (full model or features only), loaded weights-only."""
    path = Path(path)
    if not path.is_file():
        raise DonkeyError(f"{path}: no such VGG-19 weights file")
    state = load_state_dict_file(path, "VGG-19 weights")
    return {
        k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")
    }


def build_perceptual(
    weight: float, weights_path: str | Path | None, layer_weights: list[float], scales: list[float]
) -> VGG19Perceptual | None:
    if weight == 0:
        return None
    if weights_path is None:
        raise DonkeyError(
            "train.loss.perceptual is non-zero but no --vgg19-weights file was given "
            "(ImageNet VGG-19 in torchvision state-dict format; nothing is downloaded)"
        )
    return VGG19Perceptual(weights_path, layer_weights, scales)
