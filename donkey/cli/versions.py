"""`donkey --version`: this package and the libraries that run models, with the GPU they see."""

from __future__ import annotations

import platform
from importlib import metadata


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def version_lines() -> list[str]:
    """One `name: value` line per component; what is absent says so."""
    from donkey.core.version import __version__

    lines = [f"donkey {__version__}", f"python: {platform.python_version()}"]
    try:
        import torch
    except ImportError:
        lines.append("torch: not installed")
    else:
        cuda = torch.version.cuda
        if torch.cuda.is_available():
            seen = f"{torch.cuda.device_count()} GPU(s), {torch.cuda.get_device_name(0)}"
        else:
            seen = "no GPU visible"
        lines.append(f"torch: {torch.__version__} (CUDA {cuda or 'none: CPU build'}; {seen})")
    ort = _installed("onnxruntime-gpu") or _installed("onnxruntime")
    if ort is None:
        lines.append("onnxruntime: not installed")
    else:
        try:
            import onnxruntime

            providers = ", ".join(
                p.removesuffix("ExecutionProvider") for p in onnxruntime.get_available_providers()
            )
            lines.append(f"onnxruntime: {onnxruntime.__version__} (providers: {providers})")
        except Exception as exc:  # noqa: BLE001 - a broken install is reported, not raised
            lines.append(f"onnxruntime: {ort} (cannot import: {str(exc).splitlines()[0][:100]})")
    trt = _installed("tensorrt") or _installed("tensorrt-cu12") or _installed("tensorrt-cu13")
    lines.append(
        f"tensorrt: {trt}"
        if trt
        else "tensorrt: not installed (pip install 'donkey[trt]', NVIDIA GPUs only)"
    )
    openvino = _installed("openvino")
    lines.append(
        f"openvino: {openvino} (--engine openvino, CPU)"
        if openvino
        else "openvino: not installed (pip install 'donkey[openvino]' for --engine openvino)"
    )
    from donkey.runtime.cpu_features import describe

    lines.append(describe())  # which CPU precisions run fast (bf16, int8)
    return lines
