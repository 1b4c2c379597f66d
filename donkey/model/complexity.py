"""Parameter and multiply-accumulate counts per network, for `donkey info`."""

from __future__ import annotations

import torch
from torch import nn

from donkey.model.config import ModelConfig
from donkey.model.networks import Networks, count_parameters


def _conv_macs(module: nn.Module, output: torch.Tensor) -> int:
    per_output = module.in_channels // module.groups
    for k in module.kernel_size:
        per_output *= k
    return output.numel() * per_output


class _MacCounter:
    def __init__(self, root: nn.Module) -> None:
        self.total = 0
        self.handles = [
            m.register_forward_hook(self._hook)
            for m in root.modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d))
        ]

    def _hook(self, module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        self.total += _conv_macs(module, output)

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _macs(module: nn.Module, fn) -> int:
    counter = _MacCounter(module)
    try:
        with torch.no_grad():
            fn()
    finally:
        counter.close()
    return counter.total


def model_complexity(config: ModelConfig) -> dict[str, dict[str, float]]:
    """{network: {"params": count, "gmac": per 1 frame}}; `generator` excludes dense motion.

    Counts convolutions only (everything else is a rounding error here). Runs on the meta
    device, so no memory is allocated and nothing is computed.
    """
    with torch.device("meta"):
        nets = Networks(config).eval()
        s, k = config.image_size, config.num_kp
        image = torch.zeros(1, config.num_channels, s, s)
        mean = torch.zeros(1, k, 2)
        var = torch.eye(2).expand(1, k, 2, 2) * 0.01
        grid = torch.zeros(1, config.motion_size, config.motion_size, 2)
        gen = nets.generator
        dm = gen.dense_motion_module
        result = {
            "kp_detector": (nets.kp_detector, lambda: nets.kp_detector(image)),
            "dense_motion": (dm, lambda: dm(image, mean, var, mean, var)),
            "generator": (
                gen,
                lambda: gen.decode(image, gen.encode(image), grid, mean, var, mean, var),
            ),
            "discriminator": (nets.discriminator, lambda: nets.discriminator(image, mean, var)),
        }
        out = {}
        for name, (module, fn) in result.items():
            params = count_parameters(module)
            if name == "generator":
                params -= count_parameters(dm)
            out[name] = {"params": params, "gmac": _macs(module, fn) / 1e9}
    return out
