"""The Python API: load a model (any engine), animate numpy arrays, read and write media.

`import donkey` stays light; `donkey.load_model`, `donkey.animate`, ... load this module (and
PyTorch) on first use. docs/python-api.md shows it in use; its examples run as tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from donkey.app.models import load_model as _load_model
from donkey.data.colours import as_rgb
from donkey.data.frames import FIT_MODES, WHITE, prepare_frames
from donkey.data.media import read_image, read_video
from donkey.data.writers import write_video
from donkey.model.errors import DonkeyError
from donkey.runtime.animator import Animator
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
    if array.dtype != np.uint8 or array.ndim != ndim or array.shape[-1] != 3 or 0 in array.shape:
        raise DonkeyError(
            f"{name}: expected uint8 RGB {shape}, got {array.dtype} {tuple(array.shape)}"
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
    background: str | tuple[int, int, int] = WHITE,
    batch_size: int | None = None,
) -> np.ndarray:
    """Moves `source` (H, W, 3) uint8 the way `driving` (T, H', W', 3) uint8 moves; returns
    (T, S, S, 3) uint8 at the model's size S. Inputs of any size are fitted to a square
    (`fit`: pad with `background`, crop or stretch) and resized, as `donkey animate` does.

    `mode` "relative" (default) or "absolute", `adapt_scale` False, `batch_size` 8 unless given.
    Given an Animator, its own settings are used: passing `mode`, `adapt_scale` or
    `batch_size` too is an error rather than silently ignored."""
    # Only what the caller gave: the defaults live in Animator alone.
    settings = {"mode": mode, "adapt_scale": adapt_scale, "batch_size": batch_size}
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
    colour = _colour(background)
    size = animator.model.config.image_size
    still = prepare_frames(_frames(source, 3, "source")[None], size, fit, colour)
    clip = prepare_frames(_frames(driving, 4, "driving"), size, fit, colour)
    return animator.animate_frames(still[0], clip)
