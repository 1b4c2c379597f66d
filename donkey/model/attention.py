"""Donkey-Net attention: ECA channel attention, CBAM and BAM built on it.

CBAM and BAM are residual with a learnable scalar gate initialised at 0
(F + g * attention(F)), so switching attention on leaves a trained Monkey-Net unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def eca_kernel_size(channels: int) -> int:
    """ECA's adaptive kernel: t = int((log2(C) + 1) / 2), made odd."""
    t = int((math.log2(channels) + 1) / 2)
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """Efficient channel attention: pooled channel vector -> 1-D conv across channels -> logits."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        k = eca_kernel_size(channels)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=k // 2, bias=False)

    def logits(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, 1, 1) channel logits (before the sigmoid)."""
        pooled = x.mean(dim=(2, 3)).unsqueeze(1)  # (B, 1, C)
        return self.conv(pooled).transpose(1, 2).unsqueeze(-1)  # (B, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.logits(x))


class CBAM(nn.Module):
    """ECA channel attention, then 7x7 spatial attention; added through a zero gate."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channel = ECA(channels)
        self.spatial = nn.Conv2d(2, 1, kernel_size=7, padding=3)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        y = self.channel(x)
        pooled = torch.cat([y.mean(dim=1, keepdim=True), y.amax(dim=1, keepdim=True)], dim=1)
        y = y * torch.sigmoid(self.spatial(pooled))
        return x + self.gate * y


class BAM(nn.Module):
    """Parallel ECA channel and dilated spatial branches: F + g * F * sigmoid(Mc + Ms)."""

    def __init__(self, channels: int, reduction: int = 16, dilation: int = 4) -> None:
        super().__init__()
        hidden = max(channels // reduction, 8)  # narrower ReLU branches die easily
        self.channel = ECA(channels)
        self.reduce = nn.Conv2d(channels, hidden, kernel_size=1)
        self.dilated = nn.ModuleList(
            nn.Conv2d(hidden, hidden, kernel_size=3, padding=dilation, dilation=dilation)
            for _ in range(2)
        )
        self.project = nn.Conv2d(hidden, 1, kernel_size=1)
        self.gate = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        ms = F.relu(self.reduce(x))
        for conv in self.dilated:
            ms = F.relu(conv(ms))
        ms = self.project(ms)  # (B, 1, H, W)
        mc = self.channel.logits(x)  # (B, C, 1, 1)
        return x + self.gate * x * torch.sigmoid(mc + ms)
