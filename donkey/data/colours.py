"""Colours given on the command line: a CSS colour name or a hex RGB code.

Kept apart from data.frames (numpy, PyTorch) so the command line can check a colour while it
parses its options, before anything heavy is imported.
"""

from __future__ import annotations

import numbers

_HEX = "0123456789abcdef"


def parse_colour(text: str) -> tuple[int, int, int]:
    """'pink', '#ffc0cb', 'ffc0cb' or '#fcb' -> (r, g, b); ValueError otherwise."""
    value = text.strip().lower()
    digits = value[1:] if value.startswith("#") else value
    if len(digits) in (3, 6) and digits and all(ch in _HEX for ch in digits):
        if len(digits) == 3:
            digits = "".join(ch * 2 for ch in digits)
        return tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
    if value.isalpha():
        # Pillow's table of the 140 CSS/X11 colour names; PIL.ImageColor does not load numpy.
        from PIL import ImageColor

        try:
            rgb = ImageColor.getrgb(value)
        except ValueError:
            pass
        else:
            return rgb[:3]  # type: ignore[return-value]
    raise ValueError(
        f"not a colour: {text!r} (give a name such as white, pink, gray, or hex #rrggbb)"
    )


def as_rgb(background: object) -> tuple[int, int, int]:
    """A colour name or hex code (parse_colour), or 3 integers 0-255; ValueError otherwise."""
    if isinstance(background, str):
        return parse_colour(background)
    try:
        rgb = tuple(background)  # type: ignore[call-overload]
    except TypeError:
        rgb = ()
    if len(rgb) != 3 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v <= 255 for v in rgb
    ):
        raise ValueError(f"expected a colour name or 3 integers 0-255, got {background!r}")
    return tuple(int(v) for v in rgb)  # type: ignore[return-value]
