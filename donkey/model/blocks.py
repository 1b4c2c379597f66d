"""Building blocks shared by the networks: conv blocks, U-Net encoder/decoder, hourglass.

Module names follow Monkey-Net's (down_blocks, up_blocks, conv, norm), which keeps the
mapping of official checkpoints in `donkey.model.convert` to a rename of the time axis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from donkey.model.attention import CBAM


class DownBlock(nn.Module):
    """conv3x3 - BatchNorm - ReLU - avgpool 2."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), kernel_size=2)


class UpBlock(nn.Module):
    """nearest x2 - conv3x3 - BatchNorm - ReLU."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.conv(x)))


class SameBlock(nn.Module):
    """conv - BatchNorm - ReLU at constant resolution (grouped 1x1 in the dense motion)."""

    def __init__(self, in_features: int, out_features: int, groups: int = 1, kernel_size: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(
            in_features, out_features, kernel_size, padding=kernel_size // 2, groups=groups
        )
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class ResBlock(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv-BN-ReLU-conv + x."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(features, affine=True)
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.norm2 = nn.BatchNorm2d(features, affine=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * (2**level))


class Encoder(nn.Module):
    """U-Net encoder; returns [input, block 1 output, ..., block N output]."""

    def __init__(
        self, block_expansion: int, in_features: int, num_blocks: int, max_features: int
    ) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock(
                in_features if i == 0 else _width(block_expansion, max_features, i),
                _width(block_expansion, max_features, i + 1),
            )
            for i in range(num_blocks)
        )

    def channels(self) -> list[int]:
        first = self.down_blocks[0].conv.in_channels
        return [first] + [block.conv.out_channels for block in self.down_blocks]

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """U-Net decoder over encoder skips; optional CBAM between consecutive up blocks.

    `extra_features` is added to every skip's width (the generator concatenates a keypoint
    embedding to each skip). Output width: block_expansion + in_features + extra_features,
    or `out_features` through a final 3x3 conv when given.
    """

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        num_blocks: int,
        max_features: int,
        out_features: int | None = None,
        extra_features: int = 0,
        attention: bool = False,
    ) -> None:
        super().__init__()
        up_blocks = []
        attn = []
        for i in reversed(range(num_blocks)):
            width_in = _width(block_expansion, max_features, i + 1)
            multiplier = 1 if i == num_blocks - 1 else 2
            out = _width(block_expansion, max_features, i)
            up_blocks.append(UpBlock(multiplier * width_in + extra_features, out))
            if attention and i > 0:
                attn.append(CBAM(2 * out + extra_features))
        self.up_blocks = nn.ModuleList(up_blocks)
        self.attention = nn.ModuleList(attn) if attention else None
        self.out_filters = block_expansion + in_features + extra_features
        self.conv = (
            nn.Conv2d(self.out_filters, out_features, kernel_size=3, padding=1)
            if out_features is not None
            else None
        )

    def forward(self, skips: list[Tensor]) -> Tensor:
        skips = list(skips)
        out = skips.pop()
        last = len(self.up_blocks) - 1
        for i, block in enumerate(self.up_blocks):
            out = torch.cat([block(out), skips.pop()], dim=1)
            if self.attention is not None and i < last:
                out = self.attention[i](out)
        return self.conv(out) if self.conv is not None else out


class Hourglass(nn.Module):
    """Encoder + decoder with a final 3x3 conv to `out_features` maps."""

    def __init__(
        self,
        block_expansion: int,
        in_features: int,
        out_features: int,
        num_blocks: int,
        max_features: int,
        attention: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(
            block_expansion,
            in_features,
            num_blocks,
            max_features,
            out_features=out_features,
            attention=attention,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))
