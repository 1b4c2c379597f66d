"""Quality gate of reduced precision (int8, bf16) against fp32 PyTorch, on whole animations.

Per-graph tolerances (runtime/parity.py) suit fp32 and fp16; int8 and bf16 errors are judged
where users see them: PSNR of animated frames, and the keypoints the detector returns. Every
clip's source is driven by the next clip's frames (relative motion, as `donkey animate`
runs), on real frames when a folder is given (its held-out split) and synthetic ones always.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from donkey.data.calibration import ClipSet
from donkey.data.frames import frames_to_tensor
from donkey.model.errors import DonkeyError
from donkey.runtime.animator import Animator
from donkey.runtime.loader import LoadedModel

# The targets for the default model (docs/architecture.md, "Reduced precision").
PSNR_MIN_DB = 35.0
KP_MAX_ABS = 0.01


class QualityError(DonkeyError):
    pass


@dataclass
class QualityReport:
    psnr_db: float  # over every animated frame of every clip (one mean squared error)
    worst_clip_psnr_db: float
    kp_max_abs: float  # keypoint means, [-1, 1] image units, over every frame
    kp_mean_abs: float
    frames: int
    clips: int
    sources: list[str]

    def line(self) -> str:
        return (
            f"PSNR {self.psnr_db:.1f} dB (worst clip {self.worst_clip_psnr_db:.1f}), keypoints "
            f"max abs {self.kp_max_abs:.4f} (mean {self.kp_mean_abs:.5f}) over {self.frames} "
            f"frames of {self.clips} clips"
        )


def _psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def measure_quality(
    reference: LoadedModel, other: LoadedModel, clips: ClipSet, batch_size: int = 8
) -> QualityReport:
    """`other` against `reference` on every clip of `clips` (at least two clips)."""
    if len(clips.clips) < 2:
        raise DonkeyError("the quality check needs at least two clips")
    animators = [
        Animator(m, batch_size=batch_size, mode="relative", smooth=0.0) for m in (reference, other)
    ]
    squared, count, worst = 0.0, 0, math.inf
    kp_max, kp_sum, kp_count = 0.0, 0.0, 0
    tensors = [frames_to_tensor(c) for c in clips.clips]
    for index, frames in enumerate(tensors):
        source = tensors[index - 1][:1]  # the previous clip's first frame: another identity
        outputs, keypoints = [], []
        for animator in animators:
            driving = animator.driving_keypoints(frames)  # its keypoints are compared too
            outputs.append(animator.animate(source, driving).cpu())
            keypoints.append(driving.kp_mean.cpu())
        diff = (outputs[0].double() - outputs[1].double()) ** 2
        squared += float(diff.sum())
        count += diff.numel()
        worst = min(worst, _psnr(float(diff.mean())))
        kp_diff = (keypoints[0] - keypoints[1]).abs()
        kp_max = max(kp_max, float(kp_diff.max()))
        kp_sum += float(kp_diff.sum())
        kp_count += kp_diff.numel()
    return QualityReport(
        psnr_db=_psnr(squared / count),
        worst_clip_psnr_db=worst,
        kp_max_abs=kp_max,
        kp_mean_abs=kp_sum / kp_count,
        frames=sum(len(c) for c in clips.clips),
        clips=len(clips.clips),
        sources=list(clips.sources),
    )


def assert_quality(
    report: QualityReport, label: str, psnr_min: float = PSNR_MIN_DB, kp_max: float = KP_MAX_ABS
) -> None:
    """One line naming what missed its threshold."""
    missed = []
    if not report.psnr_db >= psnr_min:
        missed.append(f"PSNR {report.psnr_db:.1f} dB < {psnr_min:g} dB")
    if not report.kp_max_abs <= kp_max:
        missed.append(f"keypoint error {report.kp_max_abs:.4f} > {kp_max:g}")
    if missed:
        raise QualityError(
            f"{label} fails the quality gate against fp32 PyTorch: {'; '.join(missed)} "
            f"({report.frames} frames of {report.clips} clips)"
        )
