"""Patch discriminator on image + keypoint gaussians; returns every feature map for matching."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from donkey.model.attention import BAM
from donkey.model.config import ModelConfig
from donkey.model.geometry import keypoints_to_gaussians


class DiscriminatorBlock(nn.Module):
    """conv4x4 (no padding) - InstanceNorm (optional) - LeakyReLU 0.2 - avgpool 2."""

    def __init__(self, in_features: int, out_features: int, norm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=4)
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        return F.avg_pool2d(F.leaky_relu(out, 0.2), kernel_size=2)


class Discriminator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.discriminator
        self.heatmap_norm = config.heatmap_norm
        widths = [
            min(d.max_features, d.block_expansion * 2 ** (i + 1)) for i in range(d.num_blocks)
        ]
        ins = [config.num_channels + config.num_kp] + widths[:-1]
        self.down_blocks = nn.ModuleList(
            DiscriminatorBlock(i, o, norm=n > 0) for n, (i, o) in enumerate(zip(ins, widths))
        )
        self.attention = nn.ModuleList(BAM(w) for w in widths[:-1]) if d.attention else None
        self.conv = nn.Conv2d(widths[-1], 1, kernel_size=1)

    def forward(
        self, image: Tensor, kp_mean: Tensor, kp_var: Tensor
    ) -> tuple[list[Tensor], Tensor]:
        """image (B, 3, H, W), keypoints (B, K, 2) / (B, K, 2, 2).

        Returns the feature maps after each block (after BAM where switched on) and the
        LSGAN score map (B, 1, h, w).
        """
        h, w = image.shape[2:]
        heat = keypoints_to_gaussians(kp_mean, kp_var, h, w) / self.heatmap_norm
        x = torch.cat([image, heat.to(image.dtype)], dim=1)
        features = []
        for i, block in enumerate(self.down_blocks):
            x = block(x)
            if self.attention is not None and i < len(self.attention):
                x = self.attention[i](x)
            features.append(x)
        return features, self.conv(x)
