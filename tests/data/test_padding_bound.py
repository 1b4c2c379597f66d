"""`fit pad` on very elongated frames: the padded square is bounded before resizing."""

from __future__ import annotations

import numpy as np
from PIL import Image

from donkey.data.frames import (
    PAD_SIDE_MAX,
    fit_square,
    prepare_frames,
    resize_frames,
    shrink_for_padding,
)
from donkey.data.media import read_image, read_video


def test_ordinary_frames_are_fitted_exactly_as_before():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 90, 160, 3), dtype=np.uint8)
    for fit in ("pad", "crop", "stretch"):
        expected = resize_frames(fit_square(frames, fit, (10, 20, 30)), 64)
        np.testing.assert_array_equal(prepare_frames(frames, 64, fit, (10, 20, 30)), expected)
    assert shrink_for_padding(frames, 64) is frames


def test_a_one_pixel_wide_strip_is_shrunk_before_it_is_padded():
    tall = np.zeros((1, 60_000, 1, 3), dtype=np.uint8)
    small = shrink_for_padding(tall, 128)
    assert small.shape == (1, PAD_SIDE_MAX, 1, 3)  # aspect kept, never below one pixel
    wide = np.full((2, 3, 9_000, 3), 7, dtype=np.uint8)
    assert shrink_for_padding(wide, 2048).shape == (2, 3 * 2048 * 3 // 9_000, 3 * 2048, 3)
    out = prepare_frames(tall, 128)
    assert out.shape == (1, 128, 128, 3)
    # A dark hairline down the middle of a white square.
    assert out[0, :, :60].min() == 255 and out[0, :, 68:].min() == 255
    assert out[0, :, 63:65].max() < 255


def test_reading_a_tiny_file_of_a_huge_hairline_stays_small(tmp_path):
    path = tmp_path / "tall.png"
    Image.new("RGB", (1, 60_000), (0, 0, 0)).save(path)
    assert path.stat().st_size < 1_000
    image = read_image(path, 128)
    assert image.shape == (128, 128, 3) and image[:, 64].max() < 255 and image[:, 0].min() == 255
    clip = read_video(path, 64)
    assert clip.frames.shape == (1, 64, 64, 3)
