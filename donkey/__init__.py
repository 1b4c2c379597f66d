"""Donkey: train Donkey-Net image-animation models and run them fast."""

__version__ = "0.1.0"
