"""Evaluation through the runtime's Animator, so every engine is measured the same way.

Reconstruction L1: frame 0 is the source, every frame drives (absolute keypoints); mean
per video, then over videos. Transfer L1 (pairs): B's frame posed like A[0] is the source, A
drives, B (resampled to A) is the target. The identity baseline (output = source) is
reported beside each.

With an evaluation size (`donkey eval --size N`) targets are read from the files at N and
predictions are resized to N, so models of different sizes are compared on the same pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from donkey.data.budget import Budget
from donkey.data.datasets import Video
from donkey.data.frames import frames_to_tensor
from donkey.data.manifest import PairsManifest, check_pair_lengths
from donkey.data.media import MediaError, read_video
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
    return animator.animate(source, driving).cpu()


def resize_frames(frames: Tensor, size: int) -> Tensor:
    """(T, 3, h, w) -> (T, 3, size, size), bilinear (antialiased when shrinking), clamped to [0, 1]."""
    if frames.shape[-1] == size and frames.shape[-2] == size:
        return frames
    shrink = size < frames.shape[-1]
    out = F.interpolate(
        frames, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )
    return out.clamp_(0.0, 1.0)


def reconstruction_l1(
    animator: Animator,
    videos: Sequence[Video],
    progress: Progress | None = None,
    targets: Sequence[Video] | None = None,
) -> EvalResult:
    """Per-video mean |prediction - frame| with frame 0 as source; animator mode should be absolute.

    `targets`, when given, are the same videos read at the evaluation size (same order): the
    model still sees `videos` at its own size, its predictions are resized to the targets' size.
    """
    if targets is not None and [t.name for t in targets] != [v.name for v in videos]:
        raise ValueError("targets must hold the same videos as videos, in the same order")
    per_video = []
    for i, video in enumerate(videos):
        frames = frames_to_tensor(video.frames)
        prediction = _animate(animator, frames[:1], frames)
        if targets is not None:
            frames = frames_to_tensor(targets[i].frames)
            prediction = resize_frames(prediction, frames.shape[-1])
        l1 = (prediction - frames).abs().mean().item()
        ident = (frames[:1] - frames).abs().mean().item()
        per_video.append({"video": video.name, "l1": l1, "identity_l1": ident})
        if progress is not None:
            progress(i + 1, len(videos))
    return summarize_videos(per_video)


def summarize_videos(per_video: Sequence[dict]) -> EvalResult:
    """Means over the per-video numbers, summed in the order given (a sharded evaluation merges
    its ranks' numbers back into file order first, so its means equal one process's)."""
    result = EvalResult(per_video=list(per_video), videos=len(per_video))
    if per_video:
        result.l1 = sum(v["l1"] for v in per_video) / len(per_video)
        result.identity_l1 = sum(v["identity_l1"] for v in per_video) / len(per_video)
    return result


def transfer_l1(
    animator: Animator,
    manifest: PairsManifest,
    size: int,
    progress: Progress | None = None,
    eval_size: int | None = None,
    budget: Budget | None = None,
) -> tuple[float, float, int]:
    """(model L1, identity L1, pairs): B posed like A[0] as source, A drives, B[b_for_a] targets.

    The model works at `size`; with `eval_size` targets (and the identity source) are read at
    that size and predictions resized to it.
    """
    return summarize_pairs(
        transfer_items(animator, manifest, size, progress, eval_size, budget=budget)
    )


def transfer_items(
    animator: Animator,
    manifest: PairsManifest,
    size: int,
    progress: Progress | None = None,
    eval_size: int | None = None,
    skipped: list[str] | None = None,
    budget: Budget | None = None,
) -> list[tuple[float, float] | None]:
    """(model L1, identity L1) of each pair of the manifest, in its order. Given a `skipped`
    list, a pair with an unreadable file is None and its reason is added there; without one
    the error propagates. Files are read within `budget` (None: the environment's)."""
    items: list[tuple[float, float] | None] = []
    for i, pair in enumerate(manifest.pairs):
        try:
            a = frames_to_tensor(read_video(manifest.path_of(pair.a), size, budget=budget).frames)
            b = frames_to_tensor(read_video(manifest.path_of(pair.b), size, budget=budget).frames)
        except MediaError as exc:
            if skipped is None:
                raise
            skipped.append(f"pair {pair.a} / {pair.b}: {exc}")
            items.append(None)
            continue
        check_pair_lengths(pair, len(a), len(b), manifest.source)
        target = b[pair.b_for_a]
        prediction = _animate(animator, target[:1], a)
        if eval_size is not None and eval_size != size:
            b = frames_to_tensor(
                read_video(manifest.path_of(pair.b), eval_size, budget=budget).frames
            )
            target = b[pair.b_for_a]
            prediction = resize_frames(prediction, eval_size)
        items.append(
            ((prediction - target).abs().mean().item(), (target[:1] - target).abs().mean().item())
        )
        if progress is not None:
            progress(i + 1, len(manifest.pairs))
    return items


def summarize_pairs(items: Sequence[Sequence[float]]) -> tuple[float, float, int]:
    """(mean model L1, mean identity L1, count), summed in the order given."""
    n = len(items)
    if n == 0:
        return float("nan"), float("nan"), 0
    return sum(m for m, _ in items) / n, sum(i for _, i in items) / n, n
