"""Batched keypoints and appearance features over many videos (for `donkey pairs`): what the
pairing in this package clusters on. The model is passed in; this module never loads one."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from donkey.data.frames import frames_to_tensor
from donkey.model.checkpoint import load_matching, load_state_dict_file
from donkey.model.config import ModelConfig
from donkey.model.errors import DonkeyError
from donkey.model.spec import skip_names

Progress = Callable[[int, int], None]


class Graph(Protocol):
    def infer(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]: ...


class GraphModel(Protocol):
    """What these functions need of a loaded model (runtime's LoadedModel is one)."""

    config: ModelConfig
    device: torch.device
    graphs: Mapping[str, Graph]


def video_keypoints(
    model: GraphModel,
    videos: Sequence[np.ndarray],
    batch_size: int = 64,
    progress: Progress | None = None,
) -> list[np.ndarray]:
    """Keypoint means (T, K, 2) of every frame of every video, in one batched pass."""
    lengths = [len(v) for v in videos]
    flat = np.concatenate(list(videos))
    detector = model.graphs["kp_detector"]
    means = []
    for start in range(0, len(flat), batch_size):
        batch = frames_to_tensor(flat[start : start + batch_size]).to(model.device)
        means.append(detector.infer({"image": batch})["kp_mean"].cpu().numpy())
        if progress is not None:
            progress(min(start + batch_size, len(flat)), len(flat))
    all_means = np.concatenate(means)
    return np.split(all_means, np.cumsum(lengths)[:-1])


def encoder_features(model: GraphModel, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(N, S, S, 3) -> (N, D): the two deepest source-encoder skips, average-pooled."""
    names = skip_names(model.config)[-2:]
    out = []
    for start in range(0, len(images), batch_size):
        batch = frames_to_tensor(images[start : start + batch_size]).to(model.device)
        skips = model.graphs["source_encoder"].infer({"source": batch})
        out.append(torch.cat([skips[n].mean(dim=(2, 3)) for n in names], dim=1).cpu().numpy())
    return np.concatenate(out)


def vgg11_features(weights: str | Path, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """(N, S, S, 3) -> (N, 512): VGG-11 conv features (ImageNet weights from a local file)."""
    from torchvision.models import vgg11

    path = Path(weights)
    if not path.is_file():
        raise DonkeyError(f"{path}: no such VGG-11 weights file")
    state = load_state_dict_file(path, "VGG-11 weights")
    features = vgg11(weights=None).features
    state = {
        k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")
    }
    missing = load_matching(features, state, path, "VGG-11 weights")
    if missing:
        raise DonkeyError(f"{path}: not VGG-11 weights (missing {', '.join(missing[:3])})")
    features.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            x = (frames_to_tensor(images[start : start + batch_size]) - mean) / std
            out.append(features(x).mean(dim=(2, 3)).numpy())
    return np.concatenate(out)
