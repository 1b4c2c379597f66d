"""What `donkey animate` makes of its inputs and outputs (fit, background, side by side, output
size, transparency), shared by single-file and batch animation and the web page: the frames
as written (`finish`) and the side-by-side composition."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from torch import Tensor

from donkey.core.vocab import OUTPUT_SIDE_CAP
from donkey.data.alpha import join_alpha, keyable
from donkey.data.canvas import (
    add_source_detail,
    fit_box,
    output_shape,
    to_output_size,
    unfit_frames,
)
from donkey.data.frames import WHITE
from donkey.data.media import SourceImage


@dataclass
class AnimateOptions:
    fit: str = "pad"
    background: tuple[int, int, int] = WHITE
    side_by_side: bool = False
    # "model" (the model's square), "source" (the picture's own size and shape, capped), or
    # the long side in pixels.
    output_size: str | int = "model"
    # A source with transparency gives a result with transparency (its alpha moved with the
    # same motion); False: everything is composited on `background`.
    keep_alpha: bool = False

    def wants_alpha(self, source: SourceImage) -> bool:
        """Side by side composes opaque panels; otherwise a transparent source keeps it."""
        return self.keep_alpha and source.alpha is not None and not self.side_by_side

    def output_hw(self, source: SourceImage, size: int) -> tuple[int, int]:
        """(height, width) of each written frame for this source at model size `size`."""
        if self.side_by_side:
            return size, 3 * size
        if self.output_size == "model":
            return size, size
        height, width = source.height, source.width
        if self.fit == "crop":  # the part of the picture the model saw
            shown = fit_box(height, width, size, "crop").shown_hw
            height, width = (max(1, round(v)) for v in shown)
        return output_shape(height, width, self.output_size, OUTPUT_SIDE_CAP)

    def wants_grids(self, source: SourceImage) -> bool:
        """Whether `finish` adds the source's own detail (it needs the motion grids)."""
        return (
            not self.side_by_side
            and self.output_size != "model"
            and self.fit != "crop"
            and source.picture is not None
        )

    def finish(
        self,
        frames: np.ndarray,
        source: SourceImage,
        driving: np.ndarray,
        grids: Tensor | None = None,
    ) -> np.ndarray:
        """The model's frames (T, S, S, 3 or 4) as written: source | driving | result at the
        model size with --side-by-side; else the fitting undone (the padding cropped back off)
        and resized (Lanczos) to the output size, unless that is the model's square. With the
        frames' motion `grids` (T, h, w, 2), the full-size source's detail is added where the
        model's result agrees with it (data/canvas.add_source_detail: sharper and closer to
        the truth than Lanczos alone, benchmarks/output-size.md)."""
        size = frames.shape[1]
        if self.side_by_side:
            return side_by_side(source.image, driving, frames[..., :3])
        if frames.shape[-1] == 4 and source.alpha is not None:
            # The background taken back out of edge colours, and (where the source has no
            # background-coloured parts) what the model filled in with it made transparent.
            key = keyable(source.image, source.alpha, self.background)
            frames = join_alpha(frames[..., :3], frames[..., 3] / 255.0, self.background, key)
        if self.output_size == "model":
            return frames
        if self.fit == "crop":
            return to_output_size(frames, fit_box(source.height, source.width, size, "crop"),
                                  self.output_size, OUTPUT_SIDE_CAP)  # fmt: skip
        box = fit_box(source.height, source.width, size, self.fit)
        out_hw = self.output_hw(source, size)
        base = unfit_frames(frames, box, out_hw, self.background)
        if grids is None or source.picture is None:
            return base
        picture = Image.fromarray(source.picture).resize(
            (out_hw[1], out_hw[0]), Image.Resampling.LANCZOS
        )
        detailed = add_source_detail(
            base[..., :3], np.array(picture), grids, box, background=self.background
        )
        if base.shape[-1] == 4:
            return np.concatenate([detailed, base[..., 3:]], axis=-1)
        return detailed


def side_by_side(source: np.ndarray, driving: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """(H, W, 3), (T, H, W, 3), (T, H, W, 3) -> (T, H, 3W, 3): source | driving | result."""
    src = np.broadcast_to(source, prediction.shape)
    return np.concatenate([src, driving, prediction], axis=2)
