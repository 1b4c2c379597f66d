"""Unsupervised keypoint detector: hourglass heatmaps -> spatial softmax -> mean and covariance."""

from __future__ import annotations

from torch import Tensor, nn

from donkey.model.blocks import Hourglass
from donkey.model.config import KeypointDetectorConfig
from donkey.model.geometry import heatmap_to_keypoints, resize_image, spatial_softmax


class KeypointDetector(nn.Module):
    def __init__(self, config: KeypointDetectorConfig, num_kp: int, num_channels: int = 3) -> None:
        super().__init__()
        self.config = config
        self.predictor = Hourglass(
            block_expansion=config.block_expansion,
            in_features=num_channels,
            out_features=num_kp,
            num_blocks=config.num_blocks,
            max_features=config.max_features,
        )

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """image (B, 3, H, W) in [0, 1] -> mean (B, K, 2) in [-1, 1], var (B, K, 2, 2)."""
        x = resize_image(image, self.config.scale_factor)
        heatmap = spatial_softmax(self.predictor(x).float(), self.config.temperature)
        return heatmap_to_keypoints(heatmap, self.config.clip_variance)
