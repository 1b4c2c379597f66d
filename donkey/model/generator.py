"""Generator: source encoder, warp of every skip by the dense-motion grid, decoder, refinement."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from donkey.model.blocks import Decoder, Encoder, ResBlock
from donkey.model.config import ModelConfig
from donkey.model.dense_motion import DenseMotion
from donkey.model.embedding import gaussian_difference
from donkey.model.geometry import resize_grid, resize_image, warp


class Generator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        g = config.generator
        self.config = config
        self.num_kp = config.num_kp
        self.embedding_size = round(config.image_size * g.embedding_scale)
        self.dense_motion_module = DenseMotion(
            config.dense_motion, config.num_kp, config.num_channels, config.heatmap_norm
        )
        self.appearance_encoder = Encoder(
            g.block_expansion, config.num_channels, g.num_blocks, g.max_features
        )
        self.video_decoder = Decoder(
            g.block_expansion,
            config.num_channels,
            g.num_blocks,
            g.max_features,
            extra_features=config.num_kp,
            attention=g.attention,
        )
        width = self.video_decoder.out_filters
        self.refinement_module = nn.Sequential()
        for i in range(g.num_refinement_blocks):
            self.refinement_module.add_module(f"r{i}", ResBlock(width))
        self.refinement_module.add_module("conv-last", nn.Conv2d(width, config.num_channels, 1))

    def encode(self, source: Tensor) -> list[Tensor]:
        """source (B, 3, H, W) -> skips [(B, C_i, H / 2^i, W / 2^i) for i = 1..N]."""
        return self.appearance_encoder(source)[1:]

    def decode(
        self,
        source: Tensor,
        skips: list[Tensor],
        grid: Tensor,
        src_mean: Tensor,
        src_var: Tensor,
        drv_mean: Tensor,
        drv_var: Tensor,
    ) -> Tensor:
        """Warps [source] + skips by grid (B, h, w, 2), adds the keypoint embedding, decodes.

        Returns the predicted frame (B, 3, H, W) in [0, 1].
        """
        size = self.embedding_size
        norm = self.config.heatmap_norm
        heat = gaussian_difference(src_mean, src_var, drv_mean, drv_var, size, norm)  # (B, K, e, e)
        joined = []
        for skip in [source, *skips]:
            side = int(skip.shape[-1])
            warped = warp(skip, resize_grid(grid, side))
            joined.append(torch.cat([warped, resize_image(heat, side / size)], dim=1))
        out = self.refinement_module(self.video_decoder(joined))
        return torch.sigmoid(out)

    def forward(
        self, source: Tensor, src_mean: Tensor, src_var: Tensor, drv_mean: Tensor, drv_var: Tensor
    ) -> dict[str, Tensor]:
        """Full motion transfer for training: prediction, deformed source and grid."""
        grid = self.dense_motion_module(source, src_mean, src_var, drv_mean, drv_var)
        prediction = self.decode(
            source, self.encode(source), grid, src_mean, src_var, drv_mean, drv_var
        )
        deformed = warp(source, resize_grid(grid, int(source.shape[-1])))
        return {"prediction": prediction, "deformed": deformed, "grid": grid}
