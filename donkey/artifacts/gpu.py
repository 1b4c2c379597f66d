"""Which TensorRT and which GPU: engines are built for, recorded with, and checked against both."""

from __future__ import annotations

from types import ModuleType

from donkey.core.engines import ENGINES, not_installed
from donkey.model.errors import DonkeyError

INSTALL_HINT = ENGINES["trt"].install


def import_tensorrt() -> ModuleType:
    try:
        import tensorrt
    except ImportError:
        raise DonkeyError(not_installed("trt")) from None
    return tensorrt


def gpu_identity(device_index: int | None = None) -> dict[str, str]:
    """Name and compute capability of the GPU engines are built for / run on (default: the
    current CUDA device, which torchrun ranks set to their LOCAL_RANK's GPU)."""
    import torch

    if not torch.cuda.is_available():
        raise DonkeyError("TensorRT needs an NVIDIA GPU, and PyTorch sees none")
    if device_index is None:
        device_index = torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(device_index)
    return {
        "name": torch.cuda.get_device_name(device_index),
        "compute_capability": f"{major}.{minor}",
    }


def device_key(gpu: dict) -> str:
    """The identity engines and timing caches are tied to (with the TensorRT version)."""
    return f"{gpu.get('name')} (compute capability {gpu.get('compute_capability')})"
