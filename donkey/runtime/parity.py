"""Parity of one engine against another (exported graphs against PyTorch): per graph on random
inputs, and for a whole animated clip of real frames (donkey/data/sample_clip.py). Rows report
max/mean abs error and PSNR per tensor name; `assert_parity` fails on a missed tolerance.

Runtime code: it runs loaded models through the Animator. `donkey export --check`
(donkey/app/exporting.py) calls it on the folder it just wrote, before renaming it into place."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from donkey.model.errors import DonkeyError
from donkey.model.spec import example_inputs
from donkey.runtime.animator import Animator
from donkey.runtime.loader import LoadedModel

IMAGE_OUTPUTS = ("prediction", "clip")
KEYPOINT_OUTPUTS = ("kp_mean", "kp_var")


@dataclass
class ParityRow:
    graph: str
    tensor: str
    batch: int
    max_abs: float
    mean_abs: float
    psnr: float
    limit: str
    ok: bool


class ParityError(DonkeyError):
    pass


def psnr(reference: Tensor, other: Tensor) -> float:
    mse = float(((reference.double() - other.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def compare(graph: str, name: str, reference: Tensor, other: Tensor, precision: str) -> ParityRow:
    """One row with the tolerance that applies to this tensor at this precision."""
    ref, got = reference.detach().float().cpu(), other.detach().float().cpu()
    if ref.shape != got.shape:
        return ParityRow(
            graph, name, ref.shape[0], math.inf, math.inf, 0.0, f"shape {tuple(ref.shape)}", False
        )
    diff = (ref - got).abs()
    max_abs, mean_abs = float(diff.max()), float(diff.mean())
    is_image = name in IMAGE_OUTPUTS
    value_psnr = psnr(ref, got) if is_image else math.nan
    if precision == "fp16" and name not in KEYPOINT_OUTPUTS:
        limit, ok = ("PSNR >= 40 dB", value_psnr >= 40.0) if is_image else ("report only", True)
    elif name in KEYPOINT_OUTPUTS:
        limit, ok = "max <= 1e-5", max_abs <= 1e-5
    elif is_image:
        limit, ok = "max <= 1e-4", max_abs <= 1e-4
    else:  # features and grids: relative to their magnitude
        bound = 1e-4 * max(1.0, float(ref.abs().max()))
        limit, ok = f"max <= {bound:.1e}", max_abs <= bound
    return ParityRow(graph, name, int(ref.shape[0]), max_abs, mean_abs, value_psnr, limit, ok)


def graph_parity(
    reference: LoadedModel, other: LoadedModel, batches: tuple[int, ...] = (1, 3, 8), seed: int = 0
) -> list[ParityRow]:
    """Every graph on the same random inputs, at several batch sizes (dynamic batch)."""
    rows = []
    for name, backend in reference.graphs.items():
        precision = other.precision.get(name, "fp32")
        for batch in batches:
            feeds = example_inputs(backend.spec, batch=batch, seed=seed + batch)
            ref = backend.infer(feeds)
            got = other.graphs[name].infer(feeds)
            rows.extend(
                compare(name, t, ref[t], got[t], precision) for t in backend.spec.output_names
            )
    return rows


def clip_parity(
    reference: LoadedModel,
    other: LoadedModel,
    source: np.ndarray,
    driving: np.ndarray,
    batch_size: int = 4,
) -> list[ParityRow]:
    """A whole animated clip through the Animator on both engines."""
    from donkey.data.frames import frames_to_tensor

    src = frames_to_tensor(source[None])
    drv = frames_to_tensor(driving)
    outputs = []
    for model in (reference, other):
        animator = Animator(model, batch_size=batch_size, mode="relative", smooth=0.0)
        outputs.append(animator.animate(src, drv).cpu())
    precision = "fp16" if "fp16" in other.precision.values() else "fp32"
    return [compare("animate", "clip", outputs[0], outputs[1], precision)]


def assert_parity(rows: list[ParityRow]) -> None:
    failed = [r for r in rows if not r.ok]
    if failed:
        worst = max(failed, key=lambda r: r.max_abs)
        raise ParityError(
            f"{len(failed)} of {len(rows)} parity checks failed; worst: {worst.graph}/"
            f"{worst.tensor} batch {worst.batch}: max abs {worst.max_abs:.3g}, "
            f"mean abs {worst.mean_abs:.3g} (limit {worst.limit})"
        )
