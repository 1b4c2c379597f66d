"""Motion transfer over batches on any backend; no file handling here.

Per source: keypoints and encoder skips, computed once. Per driving video: keypoints for all
frames, computed once in batches. Per output frame: dense motion + generator, in batches.
Tensors stay on the backend's device between graphs.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from donkey.core.vocab import (
    DEFAULT_REFERENCE,
    DEFAULT_SMOOTH,
    MOTION_SCALE_MAX,
    SMOOTH_MAX,
    check_fraction,
    parse_reference,
)
from donkey.data.alpha import warp_alpha
from donkey.data.frames import frames_to_tensor, tensor_to_frames
from donkey.model.errors import DonkeyError, brief
from donkey.model.spec import KP_DRIVING, KP_SOURCE, skip_names
from donkey.runtime.loader import LoadedModel
from donkey.runtime.motion import MOTION_MODES
from donkey.runtime.reference import pick_reference, relative_motion, smooth_track


@dataclass
class SourceState:
    """Per-source work done once: the image (1, 3, H, W), its keypoints and encoder skips."""

    image: Tensor
    kp_mean: Tensor
    kp_var: Tensor
    skips: dict[str, Tensor]


@dataclass
class DrivingState:
    """Keypoints of every driving frame: mean (T, K, 2), var (T, K, 2, 2)."""

    kp_mean: Tensor
    kp_var: Tensor

    def __len__(self) -> int:
        return self.kp_mean.shape[0]


class Animator:
    def __init__(
        self,
        model: LoadedModel,
        batch_size: int = 8,
        mode: str = "relative",
        adapt_scale: bool = False,
        reference: str | int = DEFAULT_REFERENCE,
        smooth: float = DEFAULT_SMOOTH,
        motion_scale: float = 1.0,
    ) -> None:
        """`reference` (relative mode): the driving frame motion is measured from: "auto" (the
        frame whose keypoint layout is most like the source's), "first" or a frame number.
        `smooth`: std in frames of the zero-phase filter over the driving keypoints (0: off).
        `motion_scale`: the share of the driving's movement the source makes (relative mode).
        """
        # "relative" by default, as donkey animate, donkey.animate and the web page.
        if not isinstance(model, LoadedModel):
            raise DonkeyError(
                f"model: expected what donkey.load_model returns, got {type(model).__name__}"
            )
        if not isinstance(mode, str) or mode not in MOTION_MODES:
            raise DonkeyError(
                f"mode must be one of {', '.join(sorted(MOTION_MODES))}, got {brief(mode)}"
            )
        if not isinstance(adapt_scale, bool):
            raise DonkeyError(f"adapt_scale must be True or False, got {brief(adapt_scale)}")
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, numbers.Integral)
            or batch_size < 1
        ):
            raise DonkeyError(f"batch size must be an integer >= 1, got {brief(batch_size)}")
        try:
            self.reference = parse_reference(reference)
            self.smooth = check_fraction(_number(smooth, "smooth"), "smooth", SMOOTH_MAX)
            self.motion_scale = check_fraction(
                _number(motion_scale, "motion scale"), "motion scale", MOTION_SCALE_MAX
            )
        except ValueError as exc:
            raise DonkeyError(str(exc)) from None
        self.model = model
        self.graphs = model.graphs
        self.batch_size = batch_size
        self.mode = mode
        self.adapt_scale = adapt_scale
        self.skip_names = skip_names(model.config)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def _batches(self, total: int) -> Iterator[slice]:
        for start in range(0, total, self.batch_size):
            yield slice(start, min(start + self.batch_size, total))

    def prepare_source(self, image: Tensor) -> SourceState:
        """image (1, 3, H, W) in [0, 1]."""
        image = image.to(self.device)
        kp = self.graphs["kp_detector"].infer({"image": image})
        skips = self.graphs["source_encoder"].infer({"source": image})
        return SourceState(image, kp["kp_mean"], kp["kp_var"], skips)

    def driving_keypoints(self, frames: Tensor) -> DrivingState:
        """frames (T, 3, H, W) in [0, 1] -> keypoints of every frame."""
        means, vars_ = [], []
        for part in self._batches(frames.shape[0]):
            kp = self.graphs["kp_detector"].infer({"image": frames[part].to(self.device)})
            means.append(kp["kp_mean"])
            vars_.append(kp["kp_var"])
        return DrivingState(torch.cat(means), torch.cat(vars_))

    def track(self, driving: DrivingState) -> DrivingState:
        """The driving keypoints after `smooth` (the same object when smoothing is off)."""
        if not self.smooth:
            return driving
        return DrivingState(*smooth_track(driving.kp_mean, driving.kp_var, self.smooth))

    def reference_for(self, source: SourceState, driving: DrivingState) -> int:
        """The driving frame relative motion is measured from, for this source (relative mode).
        auto compares the source with the driving's own keypoints, not the smoothed track: the
        source is posed like a frame, not like an average of frames."""
        if self.reference == "first":
            return 0
        if self.reference == "auto":
            return pick_reference(source.kp_mean, source.kp_var, driving.kp_mean, driving.kp_var)
        if self.reference >= len(driving):
            raise DonkeyError(
                f"reference frame {self.reference}: the driving has {len(driving)} frame"
                f"{'s' if len(driving) != 1 else ''} (0 to {len(driving) - 1})"
            )
        return self.reference

    def motion(self, source: SourceState, driving: DrivingState) -> tuple[Tensor, Tensor]:
        """Driving keypoints as the generator should see them for this source."""
        tracked = self.track(driving)
        if self.mode == "absolute":
            return tracked.kp_mean, tracked.kp_var
        return relative_motion(
            source.kp_mean,
            source.kp_var,
            tracked.kp_mean,
            tracked.kp_var,
            reference=self.reference_for(source, driving),
            motion_scale=self.motion_scale,
            adapt_scale=self.adapt_scale,
        )

    def render_batches(self, source: SourceState, driving: DrivingState) -> Iterator[Tensor]:
        """Yields predicted frames (b, 3, H, W) batch by batch, on the device."""
        for prediction, _grid in self._render(source, driving):
            yield prediction

    def _render(
        self, source: SourceState, driving: DrivingState
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """(prediction (b, 3, H, W), sampling grid (b, h, w, 2)) batch by batch."""
        drv_mean, drv_var = self.motion(source, driving)
        for part in self._batches(len(driving)):
            n = part.stop - part.start
            feeds = {
                "source": source.image.expand(n, -1, -1, -1),
                KP_SOURCE[0]: source.kp_mean.expand(n, -1, -1),
                KP_SOURCE[1]: source.kp_var.expand(n, -1, -1, -1),
                KP_DRIVING[0]: drv_mean[part],
                KP_DRIVING[1]: drv_var[part],
            }
            grid = self.graphs["dense_motion"].infer(feeds)["grid"]
            feeds["grid"] = grid
            for name in self.skip_names:
                skip = source.skips[name]
                feeds[name] = skip.expand(n, *skip.shape[1:])
            yield self.graphs["generator"].infer(feeds)["prediction"], grid

    def stream(
        self,
        source: Tensor | SourceState,
        driving: Tensor | DrivingState,
        progress: Progress | None = None,
    ) -> Iterator[Tensor]:
        """The one animation path: source (1, 3, H, W) or its state, driving (T, 3, H, W) or
        its keypoints -> predicted frames (b, 3, H, W) in [0, 1], batch by batch, on the
        device. `progress(n)` after each batch of n frames. States passed in are reused, so a
        batch of many sources and drivings computes each once."""
        state = source if isinstance(source, SourceState) else self.prepare_source(source)
        motion = driving if isinstance(driving, DrivingState) else self.driving_keypoints(driving)
        for batch in self.render_batches(state, motion):
            if progress is not None:
                progress(batch.shape[0])
            yield batch

    def animate(
        self,
        source: Tensor | SourceState,
        driving: Tensor | DrivingState,
        progress: Progress | None = None,
    ) -> Tensor:
        """`stream`, gathered: prediction (T, 3, H, W) on the device."""
        return torch.cat(list(self.stream(source, driving, progress)))

    def animate_frames(
        self,
        source: np.ndarray | SourceState,
        driving: np.ndarray | DrivingState,
        progress: Progress | None = None,
        alpha: np.ndarray | None = None,
        grids: list[Tensor] | None = None,
    ) -> np.ndarray:
        """`stream` for uint8 frames already fitted to the model's size: source (S, S, 3),
        driving (T, S, S, 3) -> (T, S, S, 3) uint8. Each batch goes to host memory as it is
        done, so the device holds one batch of output frames at a time.

        `alpha`: the source's alpha (S, S) in [0, 1], fitted like its colours. It moves with
        the same motion as the colours (the dense motion's sampling grid), and the result is
        (T, S, S, 4) RGBA. `grids`: a list that receives each batch's sampling grid (b, h, w,
        2) on the CPU (for a result larger than the model's, data/canvas.add_source_detail)."""
        if isinstance(source, np.ndarray):
            source = frames_to_tensor(source[None])
        if isinstance(driving, np.ndarray):
            driving = frames_to_tensor(driving)
        state = source if isinstance(source, SourceState) else self.prepare_source(source)
        motion = driving if isinstance(driving, DrivingState) else self.driving_keypoints(driving)
        plane = None
        if alpha is not None:
            plane = torch.from_numpy(np.ascontiguousarray(alpha, dtype=np.float32))
        parts = []
        for prediction, grid in self._render(state, motion):
            rgb = tensor_to_frames(prediction)
            if plane is not None:
                moved = warp_alpha(plane, grid.float()).clamp(0, 1)  # (b, S, S)
                a = (moved * 255.0).round().byte().cpu().numpy()
                rgb = np.concatenate([rgb, a[..., None]], axis=-1)
            if grids is not None:
                grids.append(grid.float().cpu())
            parts.append(rgb)
            if progress is not None:
                progress(prediction.shape[0])
        return np.concatenate(parts)


Progress = Callable[[int], None]  # frames just rendered


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DonkeyError(f"{name} must be a number, got {brief(value)}")
    return float(value)
