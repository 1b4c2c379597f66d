"""Golden output of the PyTorch path: a fixed tiny-config model and fixed input give stored
keypoints and frame statistics. Parity tests compare engines with each other; this catches a
change in the torch path itself (a layer, geometry, the animator, checkpoint loading) even
when ONNX Runtime agrees with it.

The weights come from numpy's PCG64 (stable across numpy and torch versions), not torch's
initialisers. After an intended numerical change, regenerate the stored file with
`DONKEY_UPDATE_GOLDEN=1 pytest tests/model/test_golden_torch.py` and say why in the commit.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from donkey.data.frames import frames_to_tensor
from donkey.model.checkpoint import save_checkpoint
from donkey.model.config import load_config
from donkey.model.networks import Networks
from donkey.runtime.animator import Animator
from donkey.runtime.loader import load_model

GOLDEN = Path(__file__).resolve().parent / "golden" / "tiny_torch.json"
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
PIXELS = ((0, 0), (5, 27), (16, 16), (24, 9), (31, 31))
# CPU float32: the same computation differs by ~1e-6 across thread counts and SIMD widths;
# any real change to the computation moves these by far more.
ATOL = 2e-4


def golden_networks() -> Networks:
    rng = np.random.default_rng(20261125)
    nets = Networks(load_config(CONFIG).model).eval()
    with torch.no_grad():
        for name, p in sorted(nets.named_parameters()):
            shape = tuple(p.shape)
            if name.endswith("gate"):
                values = np.full(shape, 0.5)
            elif p.dim() > 1:
                values = rng.standard_normal(shape) / math.sqrt(np.prod(shape[1:]))
            elif name.endswith("weight"):  # normalisation scales
                values = 1.0 + 0.1 * rng.standard_normal(shape)
            else:
                values = 0.1 * rng.standard_normal(shape)
            p.copy_(torch.from_numpy(values.astype(np.float32)))
        for name, b in sorted(nets.named_buffers()):
            if name.endswith("running_mean"):
                b.copy_(torch.from_numpy((0.1 * rng.standard_normal(b.shape)).astype(np.float32)))
            elif name.endswith("running_var"):
                b.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, b.shape).astype(np.float32)))
    return nets


def golden_input(size: int = 32, frames: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A smooth source image and a driving clip of a moving, growing ellipse (uint8)."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    source = np.stack([xx, yy, 1 - xx * yy], axis=-1)
    driving = np.empty((frames, size, size, 3))
    for t in range(frames):
        cx, r = 0.3 + 0.2 * t, 0.15 + 0.03 * t
        inside = ((xx - cx) / r) ** 2 + ((yy - 0.5) / (0.7 * r)) ** 2 <= 1
        driving[t] = np.where(inside[..., None], [0.8, 0.3, 0.1], [0.9, 0.9, 0.85])
    return (source * 255).round().astype(np.uint8), (driving * 255).round().astype(np.uint8)


def golden_outputs(tmp_path: Path, networks: Networks | None = None) -> dict:
    ckpt = save_checkpoint(tmp_path / "golden.safetensors", networks or golden_networks())
    model = load_model(ckpt, "torch", "cpu")
    source, driving = golden_input(model.config.image_size)
    src, drv = frames_to_tensor(source[None]), frames_to_tensor(driving)
    kp = model.graphs["kp_detector"].infer({"image": torch.cat([src, drv])})
    clip = (
        Animator(model, batch_size=2, mode="relative", smooth=0.0).animate(src, drv).cpu().double()
    )
    return {
        "kp_mean": kp["kp_mean"].tolist(),
        "kp_var": kp["kp_var"].tolist(),
        "frame_mean": clip.mean(dim=(2, 3)).tolist(),
        "frame_std": clip.std(dim=(2, 3)).tolist(),
        "pixels": [[clip[t, :, y, x].tolist() for y, x in PIXELS] for t in range(len(clip))],
    }


def test_torch_outputs_match_the_stored_golden_values(tmp_path):
    got = golden_outputs(tmp_path)
    if os.environ.get("DONKEY_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n")
    expected = json.loads(GOLDEN.read_text())
    assert set(got) == set(expected)
    for key, values in expected.items():
        want = torch.tensor(values, dtype=torch.float64)
        have = torch.tensor(got[key], dtype=torch.float64)
        assert have.shape == want.shape, key
        torch.testing.assert_close(have, want, atol=ATOL, rtol=0, msg=lambda m, k=key: f"{k}: {m}")


def test_a_one_percent_change_in_one_layer_is_caught(tmp_path):
    nets = golden_networks()
    with torch.no_grad():
        nets.generator.dense_motion_module.hourglass.decoder.conv.weight.mul_(1.01)
    got, expected = golden_outputs(tmp_path, nets), json.loads(GOLDEN.read_text())
    worst = max(
        float((torch.tensor(got[k], dtype=torch.float64) - torch.tensor(v)).abs().max())
        for k, v in expected.items()
    )
    assert worst > 10 * ATOL


def test_golden_values_are_not_degenerate():
    """The pinned outputs vary: keypoints spread out and frames are not flat or saturated, so
    a change that alters them cannot hide inside a constant."""
    expected = json.loads(GOLDEN.read_text())
    means = torch.tensor(expected["kp_mean"])  # (1 + T, K, 2)
    assert means.shape == (4, 4, 2) and float(means.std()) > 0.05
    assert float((means[1:] - means[:1]).abs().max()) > 1e-3  # driving keypoints move
    std = torch.tensor(expected["frame_std"])
    assert float(std.min()) > 0.01
    pixels = torch.tensor(expected["pixels"])
    assert 0.0 < float(pixels.min()) and float(pixels.max()) < 1.0
