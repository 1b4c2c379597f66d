"""Generators of small hostile media files for the hardening tests (bombs, truncations, forgeries)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def gif_screen_bomb(path: Path, width: int, height: int, frames: int) -> Path:
    """A GIF whose logical screen is width x height, holding `frames` one-pixel frames.

    12000 x 12000 with 4 frames is 131 bytes; 800 x 800 with 3000 frames is 69 KB.
    """
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + bytes(6))
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever
    for _ in range(frames):
        out += b"\x21\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 10 ms
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    out += b";"
    path.write_bytes(bytes(out))
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_forged_size(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR claims width x height with almost no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    data += _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def good_gif(path: Path, frames: int = 6, size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    images = [
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        for _ in range(frames)
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def truncated(path: Path, source: Path, fraction: float = 0.6) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def corpus(folder: Path) -> dict[str, Path]:
    """Every hostile file, by name: the cases the commands must refuse in one line."""
    folder.mkdir(parents=True, exist_ok=True)
    good = good_gif(folder / "_good_source.gif")
    files = {
        "screen_bomb.gif": gif_screen_bomb(folder / "screen_bomb.gif", 12000, 12000, 4),
        "frame_bomb.gif": gif_screen_bomb(folder / "frame_bomb.gif", 800, 800, 3000),
        "forged.png": png_forged_size(folder / "forged.png", 30000, 30000),
        "truncated.gif": truncated(folder / "truncated.gif", good),
        "garbage.gif": folder / "garbage.gif",
        "empty.png": folder / "empty.png",
        "text.mp4": folder / "text.mp4",
        "zero_size.gif": folder / "zero_size.gif",
    }
    files["garbage.gif"].write_bytes(bytes(range(256)) * 4)
    files["empty.png"].write_bytes(b"")
    files["text.mp4"].write_bytes(b"this is not a video\n" * 20)
    files["zero_size.gif"].write_bytes(b"GIF89a" + struct.pack("<HHBBB", 0, 0, 0, 0, 0) + b";")
    good.unlink()
    return files
