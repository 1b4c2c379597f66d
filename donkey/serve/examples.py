"""The inputs bundled with the package that the page offers as examples."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def example_sources() -> list[Path]:
    """The demo sample's source first, then the synthetic creatures."""
    return [ASSETS / "sample" / "source.png", *sorted((ASSETS / "examples").glob("source-*.png"))]


def example_drivings() -> list[Path]:
    return [ASSETS / "sample" / "driving.gif", *sorted((ASSETS / "examples").glob("driving-*.gif"))]


def example_label(path: Path) -> str:
    """'sample' for the demo pair, else the creature's name: source-winged-hopper -> winged-hopper."""
    if path.parent.name == "sample":
        return "sample"
    return path.stem.split("-", 1)[-1]
