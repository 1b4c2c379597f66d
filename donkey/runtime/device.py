"""From `--device` (auto, cpu, cuda, cuda:N) to a torch device, decided once per load.

Which device types each engine runs on is the engine table's (core/engines.py): `--device
auto` picks the GPU only for an engine that runs on one, and another device is refused in
the engine's words.
"""

from __future__ import annotations

import torch

from donkey.core import engines
from donkey.core.vocab import is_device
from donkey.model.errors import DonkeyError


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA GPU (the one place that asks)."""
    return torch.cuda.is_available()


def device_type(device: str) -> str:
    """The device type `device` asks for, unchecked (auto: cuda when there is a GPU)."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return device.partition(":")[0]


def resolve_device(device: str) -> torch.device:
    """auto: cuda when PyTorch sees a GPU, else cpu. cuda without one is refused."""
    if device == "auto":
        return torch.device(device_type(device))
    if device.startswith("cuda") and not cuda_available():
        raise DonkeyError("--device cuda asked for, but PyTorch sees no CUDA GPU")
    if not is_device(device):
        raise DonkeyError(f"--device must be cpu, cuda or auto, got {device!r}")
    return torch.device(device)


def engine_device(engine: str, device: str) -> torch.device:
    """`resolve_device` for `engine`: auto means the GPU only where the engine runs on one,
    and a device type the engine does not run on is refused."""
    if device == "auto":
        device = engines.auto_device(engine, cuda_available())
    resolved = resolve_device(device)
    refusal = engines.device_refusal(engine, resolved.type)
    if refusal:
        raise DonkeyError(refusal)
    return resolved
