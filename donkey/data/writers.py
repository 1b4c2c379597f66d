"""Media writers chosen by suffix: GIF, MP4, lossless PNG strip (and animated WebP, ready for
when the vocabulary lists it). Always atomic.

Frames are (T, H, W, 3) RGB or (T, H, W, 4) RGBA uint8. RGBA keeps its transparency where the
format can: GIF (a transparent palette index for alpha < 128), PNG strip and WebP (full
alpha); MP4 has none, so RGBA is composited on a background colour there.
"""

from __future__ import annotations

import io
import math
import numbers
import struct
from pathlib import Path

import numpy as np
from PIL import GifImagePlugin, Image

from donkey.core.vocab import OUTPUT_SUFFIXES
from donkey.data.colours import as_rgb
from donkey.data.frames import WHITE, to_rgb8
from donkey.data.media import MediaError
from donkey.model.files import atomic_output


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    if frames.shape[-1] == 4:
        _write_gif_rgba(path, frames, fps)
        return
    # One palette for the whole clip, from a mosaic of up to 16 frames: 14x faster than
    # Pillow's per-frame quantisation (measured on 64 frames), smaller, and no palette flicker.
    picks = np.linspace(0, len(frames) - 1, min(len(frames), 16)).round().astype(int)
    mosaic = Image.fromarray(np.concatenate(list(frames[picks]), axis=1))
    palette = mosaic.quantize(256, method=Image.Quantize.FASTOCTREE)
    images = [
        Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames
    ]
    duration = max(int(round(1000.0 / fps)), 20)
    # Frame by frame: Image.save(save_all=True) merges identical consecutive frames, and an
    # output must keep one frame per driving frame.
    header, _ = GifImagePlugin.getheader(images[0], info={"loop": 0, "duration": duration})
    with open(path, "wb") as handle:
        for chunk in header:
            handle.write(chunk)
        for image in images:
            for chunk in GifImagePlugin.getdata(image, duration=duration):
                handle.write(chunk)
        handle.write(b";")


# A GIF pixel is transparent or opaque: alpha below this is transparent.
GIF_ALPHA_THRESHOLD = 128
_TRANSPARENT = 255  # the palette index of transparent pixels; the colours use 0..254


def _write_gif_rgba(path: Path, frames: np.ndarray, fps: float) -> None:
    """One palette of 255 colours for the clip (from the opaque pixels of up to 16 frames, as
    for RGB) and index 255 for transparent pixels. Each frame covers the whole canvas and is
    disposed to the background (transparent) before the next is drawn, so transparent pixels
    show what is behind the GIF, never the previous frame."""
    picks = np.linspace(0, len(frames) - 1, min(len(frames), 16)).round().astype(int)
    sample = frames[picks]
    colours = sample[..., :3][sample[..., 3] >= GIF_ALPHA_THRESHOLD]  # (N, 3)
    if len(colours) == 0:
        colours = np.zeros((1, 3), np.uint8)
    mosaic = Image.fromarray(np.ascontiguousarray(colours[None]))
    palette = mosaic.quantize(_TRANSPARENT, method=Image.Quantize.FASTOCTREE)
    entries = palette.getpalette()[: 3 * _TRANSPARENT]
    entries += [0] * (768 - len(entries))  # index 255 (and any unused) black, never drawn
    duration = max(int(round(1000.0 / fps)), 20)
    images = []
    for frame in frames:
        indices = np.asarray(
            Image.fromarray(np.ascontiguousarray(frame[..., :3])).quantize(
                palette=palette, dither=Image.Dither.NONE
            )
        ).copy()
        indices[frame[..., 3] < GIF_ALPHA_THRESHOLD] = _TRANSPARENT
        image = Image.fromarray(indices, mode="P")
        image.putpalette(entries)
        images.append(image)
    info = {
        "loop": 0,
        "duration": duration,
        "transparency": _TRANSPARENT,
        "background": _TRANSPARENT,
    }
    header, _ = GifImagePlugin.getheader(images[0], info=info)
    with open(path, "wb") as handle:
        for chunk in header:
            handle.write(chunk)
        for image in images:
            for chunk in GifImagePlugin.getdata(
                image, duration=duration, disposal=2, transparency=_TRANSPARENT
            ):
                handle.write(chunk)
        handle.write(b";")


def _write_png_strip(path: Path, frames: np.ndarray, _fps: float) -> None:
    strip = np.concatenate(list(frames), axis=1)
    Image.fromarray(strip).save(path, format="PNG")


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (fourcc, payload) chunks of a RIFF WEBP file."""
    out, pos = [], 12
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        out.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return out


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) & 1)


def _u24(value: int) -> bytes:
    return struct.pack("<I", value)[:3]


def _write_webp(path: Path, frames: np.ndarray, fps: float) -> None:
    """Animated WebP, lossless (RGB or RGBA), one frame per input frame.

    Each frame is encoded alone (Pillow's still WebP, lossless) and the animation container is
    assembled here (RIFF: VP8X, ANIM, one ANMF per frame): libwebp's animation encoder merges
    identical consecutive frames into one, and an output must keep one frame per driving
    frame. Every frame covers the canvas and replaces it (no blending), so transparent pixels
    never show an earlier frame."""
    duration = max(int(round(1000.0 / fps)), 1)
    h, w = frames.shape[1:3]
    body = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(frame)).save(
            buffer, format="WEBP", lossless=True, quality=80, method=4, exact=True
        )
        # The frame's image chunks (ALPH + VP8, or VP8L), without its own header chunks.
        image = b"".join(
            _chunk(kind, payload)
            for kind, payload in _chunks(buffer.getvalue())
            if kind in (b"ALPH", b"VP8 ", b"VP8L")
        )
        header = _u24(0) + _u24(0) + _u24(w - 1) + _u24(h - 1) + _u24(duration)
        body.append(_chunk(b"ANMF", header + bytes([0b10]) + image))  # no blending, no disposal
    alpha = 0x10 if frames.shape[-1] == 4 else 0
    vp8x = bytes([0x02 | alpha, 0, 0, 0]) + _u24(w - 1) + _u24(h - 1)  # animation (+ alpha)
    anim = struct.pack("<IH", 0x00000000, 0)  # transparent background, loop forever
    content = b"WEBP" + _chunk(b"VP8X", vp8x) + _chunk(b"ANIM", anim) + b"".join(body)
    with open(path, "wb") as handle:
        handle.write(b"RIFF" + struct.pack("<I", len(content)) + content)


def composite(frames: np.ndarray, background: tuple[int, int, int] = WHITE) -> np.ndarray:
    """(T, H, W, 4) -> (T, H, W, 3) on `background`, as the readers composite (to_rgb8);
    RGB frames as they are."""
    if frames.shape[-1] == 3:
        return frames
    return np.stack([to_rgb8(Image.fromarray(f, mode="RGBA"), background) for f in frames])


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    import imageio_ffmpeg

    h, w = frames.shape[1:3]
    if h % 2 or w % 2:  # yuv420p needs even sides
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        h, w = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=8,
        macro_block_size=1,
        output_params=["-f", "mp4"],
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


# Every writer there is; the suffixes of the vocabulary (core/vocab.py OUTPUT_SUFFIXES) pick
# those in use. ".webp" is ready and waits for "webp" in OUTPUT_FORMATS.
_ALL_WRITERS = {
    ".gif": _write_gif,
    ".mp4": _write_mp4,
    ".png": _write_png_strip,
    ".webp": _write_webp,
}
_WRITERS = {s: w for s, w in _ALL_WRITERS.items() if s in OUTPUT_SUFFIXES}


def check_output_suffix(path: str | Path) -> None:
    suffix = Path(path).suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        names = list(OUTPUT_SUFFIXES)
        choices = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        raise MediaError(path, f"unsupported output format '{suffix or '(none)'}' (use {choices})")


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float = 10.0,
    background: tuple[int, int, int] = WHITE,
) -> Path:
    """Writes (T, H, W, 3) RGB or (T, H, W, 4) RGBA uint8 frames; the suffix picks the format
    (.png = a strip). RGBA keeps its alpha in GIF (transparent below 128), PNG and WebP; MP4
    has no alpha, so RGBA is composited on `background` there. An existing file at `path` is
    replaced whole (the new file is renamed over it when complete)."""
    path = Path(path)
    check_output_suffix(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] not in (3, 4):
        raise MediaError(
            path, f"expected (T, H, W, 3) or (T, H, W, 4) frames, got shape {frames.shape}"
        )
    if frames.dtype != np.uint8:
        raise MediaError(path, f"expected uint8 frames, got {frames.dtype}")
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < fps < math.inf:
        raise MediaError(path, f"fps must be a positive finite number, got {fps!r}")
    writer = _WRITERS[path.suffix.lower()]
    if frames.shape[-1] == 4 and writer is _write_mp4:
        try:
            background = as_rgb(background)
        except ValueError as exc:
            raise MediaError(path, f"background: {exc}") from None
        frames = composite(frames, background)
    try:
        with atomic_output(path) as tmp:
            writer(tmp, frames, fps)
    except OSError as exc:
        raise MediaError(path, f"cannot write ({exc.strerror or exc})") from None
    return path


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Writes one (H, W, 3) or (H, W, 4) uint8 image (format from the suffix), atomically."""
    path = Path(path)
    with atomic_output(path) as tmp:
        Image.fromarray(image).save(
            tmp, format=Image.registered_extensions().get(path.suffix.lower())
        )
    return path
