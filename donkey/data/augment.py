"""Training augmentation, identical for every frame of one sample.

Time flip (order of the sample's frames), horizontal flip, resize 0.9-1.1 with crop or
replicate-pad back to size, and hue jitter: Monkey-Net's recipe. Randomness comes from the
numpy Generator passed in, so a sample is a pure function of its seed.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.functional import adjust_hue

from donkey.model.config import AugmentConfig


def augment_frames(frames: Tensor, config: AugmentConfig, rng: np.random.Generator) -> Tensor:
    """frames (N, 3, S, S) float in [0, 1]: the frames of one sample, transformed alike."""
    n, _, size, _ = frames.shape
    if rng.random() < config.flip_time:
        frames = frames.flip(0)
    if rng.random() < config.flip_horizontal:
        frames = frames.flip(3)
    scale = rng.uniform(config.scale_min, config.scale_max)
    side = int(round(size * scale))
    if side != size:
        frames = F.interpolate(frames, size=(side, side), mode="bilinear", align_corners=False)
        if side > size:
            top, left = rng.integers(0, side - size + 1, size=2)
            frames = frames[:, :, top : top + size, left : left + size]
        else:
            extra = size - side
            top, left = rng.integers(0, extra + 1, size=2)
            pad = (int(left), int(extra - left), int(top), int(extra - top))
            frames = F.pad(frames, pad, mode="replicate")
    if config.hue > 0:
        frames = adjust_hue(frames.clamp(0, 1), float(rng.uniform(-config.hue, config.hue)))
    return frames.clamp(0, 1).contiguous()
