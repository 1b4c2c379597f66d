"""Donkey: train Donkey-Net image-animation models and run them fast.

The Python API (docs/python-api.md): `donkey.load_model`, `donkey.animate`, `donkey.Animator`,
`donkey.read_image`, `donkey.read_video`, `donkey.write_video`. They live in donkey/api.py and
are loaded on first use, so that `import donkey` (and `donkey --help`) import no PyTorch.
"""

from __future__ import annotations

from donkey.core.version import __version__

_API = (
    "Animator",
    "DonkeyError",
    "LoadedModel",
    "animate",
    "load_model",
    "read_image",
    "read_video",
    "write_video",
)
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        # importlib rather than an import statement: donkey/api.py imports the layers (and
        # PyTorch), and this package's __init__ is imported by every one of them.
        return getattr(importlib.import_module("donkey.api"), name)
    raise AttributeError(f"module 'donkey' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
