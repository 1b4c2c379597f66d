"""From `--device` (auto, cpu, cuda, cuda:N) to a torch device: for a model being loaded, for
a training run, and for each torchrun rank. The one module that decides devices.

Which device types each engine runs on is the engine table's (core/engines.py): `--device
auto` picks the GPU only for an engine that runs on one, and another device is refused in
the engine's words.
"""

from __future__ import annotations

import os

import torch

from donkey.core import engines
from donkey.core.vocab import is_device
from donkey.model.errors import DonkeyError, brief


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


def rank_device(device: str, local_rank: int) -> str:
    """auto/cuda -> this rank's GPU (LOCAL_RANK, wrapped round the GPUs there are, so several
    ranks may share one); cpu and an explicit cuda:N stay as given."""
    if device in ("auto", "cuda") and torch.cuda.is_available():
        index = local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return f"cuda:{index}"
    if device == "auto":
        return "cpu"
    return device  # "cuda" without CUDA is refused, with its message, by the model loader


def pick_device(name: str, dist_local_rank: int) -> torch.device:
    """The training device: --device as given, or under torchrun the GPU of the local rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DonkeyError(f"--device {name} asked for, but PyTorch sees no CUDA GPU")
        index = name.partition(":")[2]
        if index and not (index.isdigit() and int(index) < torch.cuda.device_count()):
            raise DonkeyError(
                f"--device {name}: PyTorch sees {torch.cuda.device_count()} GPU(s), cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1}"
            )
        # Under torchrun each process takes the GPU of its local rank; cuda:N picks one for a
        # single process.
        if index and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise DonkeyError(
                f"--device {name}: under torchrun give --device cuda; each process takes the GPU "
                "of its LOCAL_RANK"
            )
        return torch.device("cuda", int(index) if index else dist_local_rank)
    if name != "cpu":
        raise DonkeyError(f"--device must be cpu, cuda, cuda:N or auto, got {brief(name)}")
    return torch.device("cpu")
