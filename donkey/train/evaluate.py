"""Evaluation through the runtime's Animator, so every engine is measured the same way.

Reconstruction L1: frame 0 is the source, every frame drives (absolute keypoints); mean
per video, then over videos. Transfer L1 (pairs): B's frame posed like A[0] is the source, A
drives, B (resampled to A) is the target. The identity baseline (output = source) is
reported beside each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch

from donkey.data.datasets import Video
from donkey.data.frames import frames_to_tensor
from donkey.data.manifest import PairsManifest, check_pair_lengths
from donkey.data.media import read_video
from donkey.runtime.animator import Animator

Progress = Callable[[int, int], None]


@dataclass
class EvalResult:
    l1: float | None = None
    identity_l1: float | None = None
    videos: int | None = None
    transfer_l1: float | None = None
    transfer_identity_l1: float | None = None
    pairs: int | None = None
    per_video: list[dict] = field(default_factory=list)

    def as_dict(self, with_details: bool = False) -> dict:
        data = asdict(self)
        if not with_details:
            data.pop("per_video")
        return {k: v for k, v in data.items() if v is not None}


def _animate(animator: Animator, source, driving) -> torch.Tensor:
    state = animator.prepare_source(source)
    kp = animator.driving_keypoints(driving)
    return torch.cat(list(animator.render_batches(state, kp))).cpu()


def reconstruction_l1(
    animator: Animator, videos: Sequence[Video], progress: Progress | None = None
) -> EvalResult:
    """Per-video mean |prediction - frame| with frame 0 as source; animator mode should be absolute."""
    result = EvalResult()
    model_l1, ident_l1 = [], []
    for i, video in enumerate(videos):
        frames = frames_to_tensor(video.frames)
        prediction = _animate(animator, frames[:1], frames)
        l1 = (prediction - frames).abs().mean().item()
        ident = (frames[:1] - frames).abs().mean().item()
        model_l1.append(l1)
        ident_l1.append(ident)
        result.per_video.append({"video": video.name, "l1": l1, "identity_l1": ident})
        if progress is not None:
            progress(i + 1, len(videos))
    result.videos = len(videos)
    if videos:
        result.l1 = sum(model_l1) / len(model_l1)
        result.identity_l1 = sum(ident_l1) / len(ident_l1)
    return result


def transfer_l1(
    animator: Animator, manifest: PairsManifest, size: int, progress: Progress | None = None
) -> tuple[float, float, int]:
    """(model L1, identity L1, pairs): B posed like A[0] as source, A drives, B[b_for_a] targets."""
    model_l1, ident_l1 = [], []
    for i, pair in enumerate(manifest.pairs):
        a = frames_to_tensor(read_video(manifest.path_of(pair.a), size).frames)
        b = frames_to_tensor(read_video(manifest.path_of(pair.b), size).frames)
        check_pair_lengths(pair, len(a), len(b), manifest.source)
        target = b[pair.b_for_a]
        source = target[:1]
        prediction = _animate(animator, source, a)
        model_l1.append((prediction - target).abs().mean().item())
        ident_l1.append((source - target).abs().mean().item())
        if progress is not None:
            progress(i + 1, len(manifest.pairs))
    n = len(model_l1)
    if n == 0:
        return float("nan"), float("nan"), 0
    return sum(model_l1) / n, sum(ident_l1) / n, n
