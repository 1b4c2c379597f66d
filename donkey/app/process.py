"""Process-wide settings every command that runs a model wants, made once."""

from __future__ import annotations


def start_torch() -> None:
    """Imports PyTorch with the process settings every command that runs a model wants.

    Commands call it after their cheap checks, so `--help` and refused options never import
    PyTorch. Gaussian heatmaps and softmax masks underflow into denormals, which cost CPUs
    10-100x per operation (torch CPU inference at batch 8: 80 -> 100 frames/s when flushed);
    this runs before the first parallel region, because worker threads copy the main thread's
    mode.
    """
    import torch

    torch.set_flush_denormal(True)
