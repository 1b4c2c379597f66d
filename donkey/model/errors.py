"""Error types. Every error a user can cause derives from DonkeyError; the CLI prints it as one line."""

from __future__ import annotations


class DonkeyError(Exception):
    """An error caused by input or environment, shown to the user without a traceback."""


class ConfigError(DonkeyError):
    """A config file or override is invalid."""


class CheckpointError(DonkeyError):
    """A checkpoint is missing, corrupt, or does not fit the model."""
