"""`donkey --version`: this package and the libraries that run models, with the GPU they see."""

from __future__ import annotations

import platform
from importlib import metadata


def version_lines() -> list[str]:
    """One `name: value` line per component; what is absent says so."""
    from donkey.core.version import __version__
    from donkey.runtime.cpu_features import describe

    return [
        f"donkey {__version__}",
        f"python: {platform.python_version()}",
        _torch(),
        _onnxruntime(),
        _tensorrt(),
        _openvino(),
        describe(),  # which CPU precisions run fast (bf16, int8)
    ]


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _torch() -> str:
    try:
        import torch
    except ImportError:
        return "torch: not installed"
    cuda = torch.version.cuda
    if torch.cuda.is_available():
        seen = f"{torch.cuda.device_count()} GPU(s), {torch.cuda.get_device_name(0)}"
    else:
        seen = "no GPU visible"
    return f"torch: {torch.__version__} (CUDA {cuda or 'none: CPU build'}; {seen})"


def _onnxruntime() -> str:
    ort = _installed("onnxruntime-gpu") or _installed("onnxruntime")
    if ort is None:
        return "onnxruntime: not installed"
    try:
        import onnxruntime

        providers = ", ".join(
            p.removesuffix("ExecutionProvider") for p in onnxruntime.get_available_providers()
        )
        return f"onnxruntime: {onnxruntime.__version__} (providers: {providers})"
    except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
        return f"onnxruntime: {ort} (cannot import: {str(exc).splitlines()[0][:100]})"


def _tensorrt() -> str:
    trt = _installed("tensorrt") or _installed("tensorrt-cu12") or _installed("tensorrt-cu13")
    if trt:
        return f"tensorrt: {trt}"
    return "tensorrt: not installed (pip install 'donkey[trt]', NVIDIA GPUs only)"


def _openvino() -> str:
    openvino = _installed("openvino")
    if openvino:
        return f"openvino: {openvino} (--engine openvino, CPU)"
    return "openvino: not installed (pip install 'donkey[openvino]' for --engine openvino)"
