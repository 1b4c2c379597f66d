"""Dense motion: keypoint movement embedding -> hourglass -> masks + residual -> sampling grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from donkey.model.blocks import Hourglass, SameBlock
from donkey.model.config import DenseMotionConfig
from donkey.model.embedding import keypoint_offsets, movement_embedding
from donkey.model.geometry import make_coordinate_grid, resize_image


class DenseMotion(nn.Module):
    def __init__(
        self, config: DenseMotionConfig, num_kp: int, num_channels: int, heatmap_norm: float
    ) -> None:
        super().__init__()
        self.config = config
        self.num_kp = num_kp
        self.heatmap_norm = heatmap_norm
        slots = num_kp + 1
        width = slots * (3 + num_channels)
        self.group_blocks = nn.ModuleList(
            SameBlock(width, width, groups=slots) for _ in range(config.num_group_blocks)
        )
        self.hourglass = Hourglass(
            block_expansion=config.block_expansion,
            in_features=width,
            out_features=slots + 2,
            num_blocks=config.num_blocks,
            max_features=config.max_features,
            attention=config.attention,
        )
        # Start as "mostly background, no residual": the grid begins near identity.
        last = self.hourglass.decoder.conv
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.zero_()
            last.bias[0] = config.bg_init

    def forward(
        self, source: Tensor, src_mean: Tensor, src_var: Tensor, drv_mean: Tensor, drv_var: Tensor
    ) -> Tensor:
        """source (B, 3, H, W), keypoints (B, K, 2) / (B, K, 2, 2) -> grid (B, h, w, 2)."""
        small = resize_image(source, self.config.scale_factor)
        x = movement_embedding(small, src_mean, src_var, drv_mean, drv_var, self.heatmap_norm)
        for block in self.group_blocks:
            x = block(x)
        prediction = self.hourglass(x).float()  # (B, K+3, h, w)
        slots = self.num_kp + 1
        mask = F.softmax(prediction[:, :slots], dim=1)  # (B, K+1, h, w)
        residual = prediction[:, slots:].permute(0, 2, 3, 1)  # (B, h, w, 2)
        offsets = keypoint_offsets(src_mean, drv_mean)  # (B, K+1, 2)
        flow = (mask.unsqueeze(-1) * offsets[:, :, None, None, :]).sum(dim=1)  # (B, h, w, 2)
        h, w = int(small.shape[2]), int(small.shape[3])
        return make_coordinate_grid(h, w, flow) + flow + residual
