"""The Python API: load a model (any engine), animate numpy arrays, read and write media.

`import donkey` stays light; `donkey.load_model`, `donkey.animate`, ... load this module (and
PyTorch) on first use. docs/python-api.md shows it in use; its examples run as tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from donkey.app.models import load_model as _load_model
from donkey.core.vocab import parse_output_size
from donkey.data.colours import as_rgb
from donkey.data.frames import FIT_MODES, WHITE, frames_to_tensor, prepare_frames
from donkey.data.media import read_image, read_video, source_from_array
from donkey.data.writers import write_video
from donkey.model.errors import DonkeyError
from donkey.runtime.animate_options import AnimateOptions
from donkey.runtime.animator import Animator
from donkey.runtime.batch import render
from donkey.runtime.loader import LoadedModel

__all__ = [
    "Animator",
    "DonkeyError",
    "LoadedModel",
    "animate",
    "load_model",
    "read_image",
    "read_video",
    "write_video",
]


def load_model(
    model: str | Path | None = None,
    engine: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    *,
    allow_slow_precision: bool = False,
) -> LoadedModel:
    """A checkpoint, ONNX folder or TensorRT engine folder (default: the bundled model) on
    `engine` ("torch", "ort", "trt", "openvino"; default: what `model` is). A checkpoint asked
    to run on ort, trt or openvino is exported (and engines built) once into the cache, as
    `donkey animate` does.
    bf16/int8 on a CPU that would emulate them is refused unless `allow_slow_precision`."""
    from donkey.runtime.backend import LoadOptions

    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise DonkeyError(f"model: expected a path or None, got {type(model).__name__}")
    for name, value in (("engine", engine), ("device", device), ("precision", precision)):
        if not isinstance(value, str) and not (name == "engine" and value is None):
            raise DonkeyError(f"{name}: expected a string, got {type(value).__name__}")
    options = LoadOptions(allow_slow_precision=allow_slow_precision)
    return _load_model(model, engine, device, precision, options)


def _frames(array: np.ndarray, ndim: int, name: str) -> np.ndarray:
    array = np.asarray(array)
    shape = "(H, W, 3)" if ndim == 3 else "(T, H, W, 3)"
    channels = (3, 4) if ndim == 3 else (3,)  # a source may carry alpha
    if (
        array.dtype != np.uint8
        or array.ndim != ndim
        or array.shape[-1] not in channels
        or 0 in array.shape
    ):
        also = " or RGBA (H, W, 4)" if ndim == 3 else ""
        raise DonkeyError(
            f"{name}: expected uint8 RGB {shape}{also}, got {array.dtype} {tuple(array.shape)}"
        )
    return array


def _colour(background: str | tuple[int, int, int]) -> tuple[int, int, int]:
    try:
        return as_rgb(background)
    except ValueError as exc:
        raise DonkeyError(f"background: {exc}") from None


def animate(
    model: LoadedModel | Animator,
    source: np.ndarray,
    driving: np.ndarray,
    *,
    mode: str | None = None,
    adapt_scale: bool | None = None,
    fit: str = "pad",
    background: str | tuple[int, int, int] | None = None,
    batch_size: int | None = None,
    reference: str | int | None = None,
    smooth: float | None = None,
    motion_scale: float | None = None,
    output_size: str | int = "model",
) -> np.ndarray:
    """Moves `source` (H, W, 3) RGB or (H, W, 4) RGBA uint8 the way `driving` (T, H', W', 3)
    uint8 moves; returns (T, S, S, 3) uint8 at the model's size S, or (T, S, S, 4) for an RGBA
    source with transparency (its alpha moved with the same motion). Inputs of any size are
    fitted to a square (`fit`: pad, crop or stretch) and resized, as `donkey animate` does.

    `background`: the colour behind padding and transparency (default white, and an RGBA
    source's transparency is kept); given, everything is on it and the result is RGB.
    `output_size`: "model" (default here: S x S), "source" (the source's own size and shape,
    at most 1024 on the long side) or the long side in pixels.

    `mode` "relative" (default) or "absolute", `adapt_scale` False, `reference` "first" (or
    "auto", or a driving frame number), `smooth` 1, `motion_scale` 1, `batch_size` 8 unless
    given (see Animator). Given an Animator, its own settings are used: passing any of these
    too is an error rather than silently ignored."""
    # Only what the caller gave: the defaults live in Animator alone.
    settings = {
        "mode": mode,
        "adapt_scale": adapt_scale,
        "batch_size": batch_size,
        "reference": reference,
        "smooth": smooth,
        "motion_scale": motion_scale,
    }
    given = {name: value for name, value in settings.items() if value is not None}
    if isinstance(model, Animator):
        if given:
            raise DonkeyError(
                f"{', '.join(given)}: given an Animator, set {'them' if len(given) > 1 else 'it'} "
                "on the Animator (donkey.Animator(model, ...)) instead"
            )
        animator = model
    elif isinstance(model, LoadedModel):
        animator = Animator(model, **given)
    else:
        raise DonkeyError(
            f"model: expected donkey.load_model(...) or a donkey.Animator, got "
            f"{type(model).__name__} (load a file with donkey.load_model(path))"
        )
    if fit not in FIT_MODES:
        raise DonkeyError(f"fit must be one of {', '.join(FIT_MODES)}, got {fit!r}")
    colour = WHITE if background is None else _colour(background)
    try:
        size_spec = parse_output_size(output_size)
    except ValueError as exc:
        raise DonkeyError(str(exc)) from None
    size = animator.model.config.image_size
    still = source_from_array(_frames(source, 3, "source"), size, fit, colour)
    clip = prepare_frames(_frames(driving, 4, "driving"), size, fit, colour)
    options = AnimateOptions(fit, colour, output_size=size_spec, keep_alpha=background is None)
    state = animator.prepare_source(frames_to_tensor(still.image[None]))
    motion = animator.driving_keypoints(frames_to_tensor(clip))
    return render(animator, still, state, motion, clip, options)
