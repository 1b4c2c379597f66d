"""Quantization-aware training: every convolution sees its input and weights rounded as the
int8 export rounds them (`donkey export --int8`, export/int8.py), so training can learn weights
that survive it.

The export quantizes a convolution's input to uint8 with one asymmetric scale over a range
that holds 0 (min/max calibration) and its weights to signed 7-bit per output channel
(`reduce_range`: AVX2 sums u8 x s8 pairs in int16, which 8-bit weights can overflow). Here the
input range is an exponential moving average of each training batch's min/max, frozen in eval
mode; rounding passes gradients straight through inside the range (PyTorch's fake-quantize ops).

The rounding is installed per module instance (its `forward`), with the observed range in a
plain attribute, so state dicts, checkpoints and the exported graphs stay exactly those of the
plain network.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import torch
from torch import nn

ACT_QMIN, ACT_QMAX = 0, 255  # uint8 activations
WEIGHT_QMIN, WEIGHT_QMAX = -64, 63  # 7-bit signed weights (the export's reduce_range)
MOMENTUM = 0.01  # of the input-range average; about the last 100 batches count


@dataclass
class InputRange:
    """The observed (low, high) of a convolution's input, kept on its device: reading it back
    every step would stall a GPU once per convolution."""

    bounds: torch.Tensor | None = None

    def observe(self, x: torch.Tensor) -> None:
        low, high = torch.aminmax(x.detach().float())
        batch = torch.stack([low, high])
        if self.bounds is None:
            self.bounds = batch
        else:
            self.bounds = self.bounds + MOMENTUM * (batch - self.bounds)


def _qparams(bounds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    low = torch.clamp(bounds[0], max=0.0)  # the export's ranges always hold 0
    high = torch.clamp(bounds[1], min=0.0)
    scale = torch.clamp(high - low, min=1e-8) / (ACT_QMAX - ACT_QMIN)
    zero_point = torch.clamp(torch.round(ACT_QMIN - low / scale), ACT_QMIN, ACT_QMAX)
    return scale.reshape(1), zero_point.to(torch.int32).reshape(1)


def fake_quant_input(x: torch.Tensor, observed: InputRange, training: bool) -> torch.Tensor:
    if training or observed.bounds is None:
        observed.observe(x)
    scale, zero_point = _qparams(observed.bounds)
    q = torch.fake_quantize_per_tensor_affine(x.float(), scale, zero_point, ACT_QMIN, ACT_QMAX)
    return q.to(x.dtype)


def fake_quant_weight(weight: torch.Tensor) -> torch.Tensor:
    w = weight.float()
    scale = w.detach().abs().amax(dim=tuple(range(1, w.dim()))).clamp_min(1e-8) / WEIGHT_QMAX
    zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
    q = torch.fake_quantize_per_channel_affine(w, scale, zero, 0, WEIGHT_QMIN, WEIGHT_QMAX)
    return q.to(weight.dtype)


def _forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    xq = fake_quant_input(x, self.donkey_input_range, self.training)
    return self._conv_forward(xq, fake_quant_weight(self.weight), self.bias)


def enable_fake_quant(module: nn.Module) -> int:
    """Rounds every Conv2d inside `module` as the int8 export will; returns how many."""
    count = 0
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d) and not hasattr(conv, "donkey_input_range"):
            conv.donkey_input_range = InputRange()
            conv.forward = types.MethodType(_forward, conv)
            count += 1
    return count


def disable_fake_quant(module: nn.Module) -> None:
    for conv in module.modules():
        if hasattr(conv, "donkey_input_range"):
            del conv.forward  # back to the class's forward
            del conv.donkey_input_range
