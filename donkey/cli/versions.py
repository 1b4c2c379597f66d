"""`donkey --version`'s lines, gathered by the application layer (donkey.app.versions)."""

from __future__ import annotations

from donkey.app.versions import version_lines

__all__ = ["version_lines"]
