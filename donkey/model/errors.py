"""Error types. Every error a user can cause derives from DonkeyError; the CLI prints it as one line."""

from __future__ import annotations

import reprlib
from typing import Any


# Values from untrusted files are echoed in messages; YAML aliases and pickle's shared
# references can make a few hundred bytes print as gigabytes, so the echo is cut short.
class _Brief(reprlib.Repr):
    def repr_int(self, value: int, level: int) -> str:
        # repr() of an int over 4300 digits raises; a YAML hex literal gives one easily.
        return (
            super().repr_int(value, level)
            if value.bit_length() < 200
            else (f"<integer of {value.bit_length()} bits>")
        )


_brief = _Brief()
_brief.maxlevel = 2
_brief.maxlist = _brief.maxtuple = _brief.maxdict = _brief.maxset = 4
_brief.maxstring = _brief.maxother = 60


def brief(value: Any) -> str:
    """repr() of a value for an error message, bounded in length whatever the value holds."""
    return _brief.repr(value)


class DonkeyError(Exception):
    """An error caused by input or environment, shown to the user without a traceback."""


class ConfigError(DonkeyError):
    """A config file or override is invalid."""


class CheckpointError(DonkeyError):
    """A checkpoint is missing, corrupt, or does not fit the model."""
