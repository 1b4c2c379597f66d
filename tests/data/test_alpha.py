"""data/alpha.py and the writers' alpha: a transparent source keeps its transparency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageSequence

from donkey.data.alpha import fit_alpha, join_alpha, read_alpha, upsample_grid, warp_alpha
from donkey.data.budget import Budget, MediaError
from donkey.data.canvas import fit_box
from donkey.data.frames import fit_frame
from donkey.data.media import read_frames
from donkey.data.writers import _write_webp, write_video
from donkey.model.errors import DonkeyError
from donkey.model.geometry import make_coordinate_grid


def _sprite(height: int = 40, width: int = 60, border: int = 5) -> np.ndarray:
    """(height, width, 4): opaque red inside a transparent border (its colour green)."""
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[border:-border, border:-border] = (255, 0, 0, 255)
    return rgba


def test_read_alpha_is_none_without_transparency(tmp_path):
    rgb = np.full((20, 30, 3), 90, np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(np.dstack([rgb, np.full((20, 30), 255, np.uint8)])).save(
        tmp_path / "opaque.png"
    )
    write_video(tmp_path / "clip.mp4", np.full((2, 16, 16, 3), 90, np.uint8))
    for name in ("rgb.png", "gray.png", "palette.png", "opaque.png", "clip.mp4"):
        assert read_alpha(tmp_path / name, 32) is None, name


@pytest.mark.parametrize("fmt", ["png", "gif", "webp"])
def test_read_alpha_of_a_transparent_border_is_zero_there_and_in_the_padding(tmp_path, fmt):
    sprite = _sprite(40, 60, border=6)
    path = tmp_path / f"sprite.{fmt}"
    Image.fromarray(sprite, mode="RGBA").save(path, **({"lossless": True} if fmt == "webp" else {}))
    alpha = read_alpha(path, 60, "pad")
    assert alpha.shape == (60, 60) and alpha.dtype == np.float32
    top, left, h, w = fit_box(40, 60, 60, "pad").in_square
    assert (top, left, h, w) == (10, 0, 40, 60)
    assert alpha[:8].max() == 0 and alpha[-8:].max() == 0  # the padding
    assert alpha[10:14].max() < 0.02 and alpha[:, :4].max() < 0.02  # the transparent border
    assert alpha[20:40, 10:50].min() > 0.98  # the opaque middle
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0


def test_the_alpha_is_fitted_exactly_like_the_colours():
    # A black picture padded with white: its colours say where the picture went.
    for shape in [(40, 60), (161, 90), (2100, 2000), (20, 5000), (7, 300)]:
        for fit in ("pad", "crop", "stretch"):
            colours = fit_frame(np.zeros(shape + (3,), np.uint8), 64, fit)[..., 0] / 255.0
            alpha = fit_alpha(np.full(shape, 255, np.uint8), 64, fit)
            assert np.abs(alpha - (1.0 - colours)).max() < 0.02, (shape, fit)


def test_read_alpha_follows_the_fit_and_takes_a_folders_first_frame(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(_sprite(40, 60), mode="RGBA").save(folder / "f2.png")
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(folder / "f10.png")
    assert read_alpha(folder, 32, "crop").shape == (32, 32)
    assert read_alpha(folder, 32, "crop").min() == 0
    # A palette GIF with a transparent index: its first frame.
    gif = tmp_path / "sprite.gif"
    frames = [Image.fromarray(_sprite(40, 60), mode="RGBA"), Image.new("RGBA", (60, 40), "red")]
    frames[0].save(gif, save_all=True, append_images=frames[1:], disposal=2)
    alpha = read_alpha(gif, 60, "stretch")
    assert alpha[0, 0] == 0 and alpha[30, 30] > 0.98


def test_read_alpha_checks_the_budget_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "sprite.png"
    Image.fromarray(_sprite(40, 60), mode="RGBA").save(path)

    def no_decoding(self):
        raise AssertionError("decoded before the budget check")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(MediaError, match="per-frame read budget"):
        read_alpha(path, 32, budget=Budget(max_frame_pixels=1000))
    with pytest.raises(MediaError, match="not an image"):
        garbage = tmp_path / "garbage.png"
        garbage.write_bytes(b"not a png" * 20)
        read_alpha(garbage, 32)
    with pytest.raises(MediaError, match="no such file"):
        read_alpha(tmp_path / "missing.png", 32)
    with pytest.raises(DonkeyError, match="fit must be"):
        read_alpha(path, 32, "zoom")


def test_warp_alpha_with_an_identity_grid_returns_the_alpha():
    alpha = torch.from_numpy(fit_alpha(_sprite(40, 60)[..., 3], 128))
    identity = make_coordinate_grid(32, 32, torch.zeros(1))[None].expand(3, -1, -1, -1)
    for mode in ("nearest", "bilinear"):
        out = warp_alpha(alpha, identity, upsample=mode)
        assert out.shape == (3, 128, 128)
        torch.testing.assert_close(out, alpha.expand(3, -1, -1), atol=1e-5, rtol=0)
    out = warp_alpha(alpha.numpy()[None, None], identity[:1])
    torch.testing.assert_close(out[0], alpha, atol=1e-5, rtol=0)


def test_a_shifted_grid_shifts_the_alpha():
    alpha = torch.from_numpy(fit_alpha(_sprite(40, 60)[..., 3], 128))
    shift = 4  # pixels: sampling 4 to the right moves the picture 4 to the left
    grid = make_coordinate_grid(32, 32, torch.zeros(1))[None].clone()
    grid[..., 0] += 2.0 * shift / (128 - 1)
    for mode in ("nearest", "bilinear"):
        out = warp_alpha(alpha, grid, upsample=mode)[0]
        torch.testing.assert_close(out[:, :-shift], alpha[:, shift:], atol=1e-4, rtol=0)
        assert out[:, -shift:].max() == 0  # from outside the picture: transparent
    # A full-size alpha moves with the same grid.
    big = torch.zeros(512, 512)
    big[200:300, 200:300] = 1
    grid[..., 0] = make_coordinate_grid(32, 32, torch.zeros(1))[..., 0] + 2.0 * 16 / 511
    moved = warp_alpha(big, grid)[0]
    assert moved[250, 184:284].min() > 0.99 and moved[250, 285:].max() < 0.01


def test_warp_alpha_refuses_bad_shapes():
    grid = make_coordinate_grid(8, 8, torch.zeros(1))[None]
    with pytest.raises(DonkeyError, match="alpha"):
        warp_alpha(torch.zeros(2, 1, 16, 16), grid)
    with pytest.raises(DonkeyError, match="grid"):
        warp_alpha(torch.zeros(16, 16), grid[0])
    with pytest.raises(DonkeyError, match="grid upsampling"):
        upsample_grid(grid, 16, "cubic")


def test_join_alpha_takes_the_background_out_of_edge_pixels():
    colour = np.array([200, 40, 10], np.float32)
    alpha = np.array([[[0.0, 0.25, 0.5, 1.0]]], np.float32)  # (1, 1, 4)
    white = colour * alpha[..., None] + 255.0 * (1 - alpha[..., None])
    joined = join_alpha(np.round(white).astype(np.uint8), alpha)
    assert joined.shape == (1, 1, 4, 4)
    assert joined[0, 0, :, 3].tolist() == [0, 64, 128, 255]
    assert np.abs(joined[0, 0, 1:, :3].astype(int) - colour).max() <= 3
    with pytest.raises(DonkeyError, match="join_alpha"):
        join_alpha(np.zeros((1, 4, 4, 3), np.uint8), np.zeros((1, 4, 5)))


def _rgba_clip(t: int = 3, size: int = 24) -> np.ndarray:
    """Frame i: an opaque square at column 6 i, the rest transparent (its colour blue)."""
    frames = np.zeros((t, size, size, 4), np.uint8)
    frames[..., 2] = 255
    for i in range(t):
        frames[i, 4:12, 6 * i : 6 * i + 8] = (250, 120, 20, 255)
    return frames


def _read_rgba(path) -> list[np.ndarray]:
    with Image.open(path) as image:
        return [np.asarray(f.convert("RGBA")).copy() for f in ImageSequence.Iterator(image)]


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_rgba_round_trip_keeps_transparency(tmp_path, suffix):
    frames = _rgba_clip()
    path = write_video(tmp_path / f"sprite{suffix}", frames, fps=8)
    back = _read_rgba(path)
    if suffix == ".png":  # a strip: T frames side by side
        assert len(back) == 1 and back[0].shape == (24, 72, 4)
        np.testing.assert_array_equal(back[0], np.concatenate(list(frames), axis=1))
        return
    assert len(back) == 3
    for i, frame in enumerate(back):
        opaque = frames[i, ..., 3] == 255
        # Transparent stays transparent (no earlier frame shows through), opaque stays opaque.
        assert (frame[..., 3][opaque] == 255).all() and (frame[..., 3][~opaque] == 0).all()
        assert np.abs(frame[opaque][:, :3].astype(int) - (250, 120, 20)).max() <= 8
    with Image.open(path) as image:
        assert image.info.get("loop") == 0 and image.info.get("duration") == 120  # centiseconds


def test_gif_alpha_threshold_and_a_wholly_transparent_clip(tmp_path):
    frames = _rgba_clip(2)
    frames[0, 0, 0] = (10, 10, 10, 127)
    frames[0, 0, 1] = (10, 10, 10, 128)
    back = _read_rgba(write_video(tmp_path / "edge.gif", frames))
    assert back[0][0, 0, 3] == 0 and back[0][0, 1, 3] == 255
    empty = np.zeros((2, 8, 8, 4), np.uint8)
    back = _read_rgba(write_video(tmp_path / "empty.gif", empty))
    assert len(back) == 2 and all(f[..., 3].max() == 0 for f in back)


def test_rgba_to_mp4_is_composited_on_the_background(tmp_path):
    frames = _rgba_clip(2, 32)
    path = write_video(tmp_path / "sprite.mp4", frames, background=(0, 0, 0))
    back = read_frames(path).frames
    assert back.shape == (2, 32, 32, 3)
    assert back[:, 20:, :].max() < 20  # transparent -> black, not the hidden blue
    with pytest.raises(MediaError, match="background"):
        write_video(tmp_path / "bad.mp4", frames, background="no such colour")


def test_the_webp_writer_keeps_alpha_and_every_frame(tmp_path):
    frames = _rgba_clip(3)
    frames = np.concatenate([frames, frames[-1:]])  # a repeated frame stays a frame
    path = tmp_path / "sprite.webp"
    _write_webp(path, frames, 10.0)
    back = _read_rgba(path)
    assert len(back) == 4
    for frame, expected in zip(back, frames):
        np.testing.assert_array_equal(frame[..., 3], expected[..., 3])
        opaque = expected[..., 3] == 255
        np.testing.assert_array_equal(frame[opaque], expected[opaque])


def test_the_webp_writer_writes_rgb_losslessly(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    _write_webp(tmp_path / "clip.webp", frames, 8.0)
    with Image.open(tmp_path / "clip.webp") as image:
        assert image.n_frames == 3 and image.info["loop"] == 0
        for i, frame in enumerate(ImageSequence.Iterator(image)):
            np.testing.assert_array_equal(np.asarray(frame.convert("RGB")), frames[i])


def test_keying_clears_what_the_model_painted_in_the_background_colour():
    from donkey.data.alpha import keyable

    frames = np.full((1, 4, 4, 3), 255, np.uint8)  # background white...
    frames[0, :, :2] = (60, 20, 90)  # ...and a dark creature on the left
    frames[0, 0, 2] = (250, 250, 250)  # nearly white: background too
    alpha = np.ones((1, 4, 4), np.float32)  # the warped alpha says opaque everywhere
    plain = join_alpha(frames, alpha)
    keyed = join_alpha(frames, alpha, key=True)
    assert plain[0, ..., 3].min() == 255
    assert (keyed[0, :, :2, 3] == 255).all() and (keyed[0, :, 2:, 3] == 0).all()
    assert keyed[0, 0, 0, :3].tolist() == [60, 20, 90]
    # A source with near-background colours of its own is not keyable.
    source = np.full((8, 8, 3), 255, np.uint8)
    source_alpha = np.zeros((8, 8), np.float32)
    source_alpha[2:6, 2:6] = 1.0
    source[2:6, 2:6] = (60, 20, 90)
    assert keyable(source, source_alpha)
    source[2, 2:6] = (240, 240, 240)  # a quarter of it is nearly white
    assert not keyable(source, source_alpha)
    assert not keyable(source, np.zeros((8, 8)))
