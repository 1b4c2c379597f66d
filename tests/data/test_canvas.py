"""data/canvas.py: where fit_frame puts a picture in the model's square, and undoing it."""

from __future__ import annotations

import numpy as np
import pytest

from donkey.data.canvas import fit_box, fit_steps, output_shape, parse_output_size, unfit_frames
from donkey.data.frames import fit_frame
from donkey.model.errors import DonkeyError

# (height, width): both orientations, odd sides, near-square, hairlines, a box-reduced photo
# (over 4 megapixels) and pad's shrink of a very elongated picture.
SHAPES = [
    (400, 328),
    (328, 400),
    (90, 160),
    (161, 90),
    (127, 128),
    (1, 300),
    (300, 1),
    (7, 1000),
    (2100, 2000),
    (20, 5000),
]


def _pattern(height: int, width: int) -> np.ndarray:
    """A smooth colour pattern with no white in it: (height, width, 3) uint8 in [20, 200]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 20 + 180 * xx / max(width - 1, 1)
    g = 20 + 180 * yy / max(height - 1, 1)
    b = 110 + 90 * np.sin(xx / max(width, 1) * 3) * np.cos(yy / max(height, 1) * 2)
    return np.clip(np.stack([r, g, b], -1), 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_pad_box_is_where_fit_frame_puts_the_picture(shape):
    h, w = shape
    size = 64
    square = fit_frame(np.zeros((h, w, 3), np.uint8), size, "pad")[..., 0].astype(int)
    top, left, bh, bw = fit_box(h, w, size, "pad").in_square
    yy, xx = np.mgrid[0:size, 0:size]
    inside = (yy >= np.ceil(top)) & (yy + 1 <= np.floor(top + bh))
    inside &= (xx >= np.ceil(left)) & (xx + 1 <= np.floor(left + bw))
    # Lanczos rings up to 3 pixels beyond a sharp edge: look that far away from the box.
    m = 3
    far = (yy + 1 < top - m) | (yy > top + bh + m) | (xx + 1 < left - m) | (xx > left + bw + m)
    assert square[far].min() >= 254 if far.any() else True
    if bh > 2 * m + 1 and bw > 2 * m + 1:
        core = (yy >= top + m) & (yy + 1 <= top + bh - m) & (xx >= left + m)
        core &= xx + 1 <= left + bw - m
        assert square[core].max() <= 1
    # The pixels the box leaves out are (nearly) all padding, and those it holds picture.
    outside = (yy + 1 <= top) | (yy >= top + bh) | (xx + 1 <= left) | (xx >= left + bw)
    assert square[outside].mean() > 240 if outside.any() else True
    assert square[inside].mean() < 25 if inside.any() else True
    # The box's area is the picture's share of the square, exactly.
    steps = fit_steps(h, w, size, "pad")
    assert bh * bw == pytest.approx(steps.shape[0] * steps.shape[1] * size**2 / steps.side**2)


def test_pad_boxes_are_exact_where_edges_fall_on_pixels():
    assert fit_box(256, 128, 128, "pad").in_square == (0, 32, 128, 64)
    assert fit_box(400, 328, 128, "pad").in_square == (0, 36 * 128 / 400, 128, 328 * 128 / 400)
    assert fit_box(300, 300, 128, "pad").in_square == (0, 0, 128, 128)
    # Box-reduced by 5 first: 2100 x 2000 -> 420 x 400, then padded to 420.
    steps = fit_steps(2100, 2000, 128, "pad")
    assert (steps.reduce, steps.shape, steps.side, steps.left) == (5, (420, 400), 420, 10)
    # Shrunk before padding: the long side to PAD_SIDE_MAX (4096).
    assert fit_steps(20, 5000, 128, "pad").shape == (16, 4096)


@pytest.mark.parametrize("shape", [(90, 160), (161, 90), (2100, 2000), (400, 328)])
def test_the_crop_box_is_the_part_of_the_picture_the_square_shows(shape):
    h, w = shape
    picture = _pattern(h, w)
    box = fit_box(h, w, 64, "crop")
    top, left, bh, bw = box.in_picture
    assert box.in_square == (0, 0, 64, 64) and bh == bw
    shown = picture[int(top) : int(top + bh), int(left) : int(left + bw)]
    cropped = fit_frame(picture, 64, "crop").astype(int)
    stretched = fit_frame(np.ascontiguousarray(shown), 64, "stretch").astype(int)
    assert np.abs(cropped - stretched).max() <= 1


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fit", ["pad", "crop", "stretch"])
def test_the_result_has_the_source_shape_exactly(shape, fit):
    h, w = shape
    out_hw = output_shape(h, w, "source", cap=10_000)
    assert out_hw == (h, w)
    frames = np.full((2, 32, 32, 3), 90, np.uint8)
    out = unfit_frames(frames, fit_box(h, w, 32, fit), out_hw)
    assert out.shape == (2, h, w, 3)


@pytest.mark.parametrize("shape", [(400, 328), (328, 400), (90, 160), (161, 90)])
def test_unfit_of_a_padded_frame_gives_the_picture_back(shape):
    h, w = shape
    picture = _pattern(h, w)
    size = 128
    square = fit_frame(picture, size, "pad")
    back = unfit_frames(square[None], fit_box(h, w, size, "pad"), (h, w))[0].astype(int)
    error = np.abs(back - picture.astype(int))
    assert error.mean() < 1
    # No white padding, nor the line fitting rang at its edge, reaches the border.
    for edge in (error[0], error[-1], error[:, 0], error[:, -1]):
        assert edge.mean() < 6


@pytest.mark.parametrize("shape", [(60, 1000), (1000, 20), (12, 500)])
def test_a_thin_strip_comes_back_without_padding_in_it(shape):
    h, w = shape
    picture = np.full((h, w, 3), 20, np.uint8)
    square = fit_frame(picture, 128, "pad")
    back = unfit_frames(square[None], fit_box(h, w, 128, "pad"), (h, w))[0]
    assert back.shape == (h, w, 3) and back.max() <= 30


def test_an_aligned_pad_region_comes_back_pixel_for_pixel():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    out = unfit_frames(frames, fit_box(256, 128, 128, "pad"), (128, 64))
    # Columns 32 and 95 border the padding (where fitting rang): their neighbours stand in.
    np.testing.assert_array_equal(out[:, :, 1:-1], frames[:, :, 33:95])
    np.testing.assert_array_equal(out[:, :, 0], frames[:, :, 33])
    np.testing.assert_array_equal(out[:, :, -1], frames[:, :, 94])


def test_model_output_size_is_unchanged():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    assert output_shape(400, 328, "model", size=64) == (64, 64)
    out = unfit_frames(frames, fit_box(300, 300, 64, "pad"), (64, 64))
    np.testing.assert_array_equal(out, frames)
    out = unfit_frames(frames, fit_box(300, 200, 64, "stretch"), (64, 64))
    np.testing.assert_array_equal(out, frames)


def test_output_shapes_keep_the_aspect_ratio():
    assert output_shape(400, 328, "source") == (400, 328)
    assert output_shape(328, 400, "source") == (328, 400)
    assert output_shape(400, 328, "800") == (800, 656)
    assert output_shape(400, 328, 200) == (200, 164)
    assert output_shape(328, 400, 512) == (420, 512)  # 419.84 rounded
    assert output_shape(3000, 2000, "source") == (1024, 683)  # capped
    assert output_shape(2000, 3000, "source", cap=300) == (200, 300)
    assert output_shape(1, 5000, "source") == (1, 1024)  # never below one pixel
    assert output_shape(5000, 1, 64) == (64, 1)
    assert output_shape(64, 48, "source") == (64, 48)  # smaller than the model: kept
    assert output_shape(10, 10, " Source ") == (10, 10)


@pytest.mark.parametrize(
    "spec", ["big", "", "12.5", "-5", "15", "4097", 0, 15, 4097, True, None, 12.0, "١٢٨"]
)
def test_bad_output_sizes_are_refused_in_one_line(spec):
    with pytest.raises(DonkeyError) as info:
        output_shape(100, 100, spec)
    message = str(info.value)
    assert message.startswith("--output-size must be model, source or a size in [16, 4096], got")
    assert "\n" not in message
    assert parse_output_size("16") == 16 and parse_output_size(4096) == 4096


def test_model_needs_the_model_size_and_bad_dims_are_refused():
    with pytest.raises(DonkeyError, match="model's size"):
        output_shape(10, 10, "model")
    for h, w in [(0, 10), (10, -1), (True, 3), (2.5, 3)]:
        with pytest.raises(DonkeyError, match="height and width"):
            output_shape(h, w, "source")
    with pytest.raises(DonkeyError, match="fit must be"):
        fit_box(10, 10, 64, "zoom")
    with pytest.raises(DonkeyError, match="the box is for 64x64"):
        unfit_frames(np.zeros((1, 32, 32, 3), np.uint8), fit_box(10, 10, 64, "pad"), (10, 10))
    with pytest.raises(DonkeyError, match="uint8"):
        unfit_frames(np.zeros((1, 64, 64, 3)), fit_box(10, 10, 64, "pad"), (10, 10))


def test_rgba_is_resized_without_colour_fringes():
    frame = np.zeros((1, 32, 32, 4), np.uint8)
    frame[0, :, :, 1] = 255  # transparent pixels hold green...
    frame[0, :, :16] = (255, 0, 0, 255)  # ...the opaque left half is red
    out = unfit_frames(frame, fit_box(32, 32, 32, "pad"), (100, 100))[0]
    seen = out[..., 3] > 0
    edge = seen & (out[..., 3] < 255)
    assert edge.any()  # the edge is anti-aliased
    assert out[seen][:, 1].max() <= 2  # and no green comes through it
    assert out[:, :40, 3].min() == 255 and out[:, 60:, 3].max() == 0


def test_crop_puts_the_square_where_it_was_and_fills_the_rest():
    h, w = 100, 200
    frames = np.full((1, 50, 50, 3), 40, np.uint8)
    box = fit_box(h, w, 50, "crop")
    assert box.in_picture == (0, 50, 100, 100) and box.shown_hw == (100, 100)
    out = unfit_frames(frames, box, (h, w), background=(1, 2, 3))[0]
    assert (out[:, 50:150] == 40).all()
    assert (out[:, :50] == (1, 2, 3)).all() and (out[:, 150:] == (1, 2, 3)).all()
    under = np.full((h, w, 3), 7, np.uint8)
    out = unfit_frames(frames, box, (50, 100), under=under[:50, :100])[0]
    assert (out[:, 25:75] == 40).all() and (out[:, :25] == 7).all()
    rgba = np.full((1, 50, 50, 4), 255, np.uint8)
    out = unfit_frames(rgba, box, (h, w))[0]
    assert out[:, :50, 3].max() == 0 and out[:, 50:150, 3].min() == 255


def test_to_output_size_is_the_one_call_of_the_animate_path():
    from donkey.data.canvas import to_output_size

    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    box = fit_box(400, 328, 64, "pad")
    assert to_output_size(frames, box, "model") is frames or np.array_equal(
        to_output_size(frames, box, "model"), frames
    )
    assert to_output_size(frames, box, "source").shape == (2, 400, 328, 3)
    assert to_output_size(frames, box, 200).shape == (2, 200, 164, 3)
    assert to_output_size(frames, fit_box(3000, 2000, 64, "pad"), "source").shape == (
        2,
        1024,
        683,
        3,
    )
    # crop: the part the model saw, at its size in the source (no bands).
    cropped = to_output_size(frames, fit_box(400, 328, 64, "crop"), "source")
    assert cropped.shape == (2, 328, 328, 3)
    assert to_output_size(frames, fit_box(400, 328, 64, "stretch"), "source").shape == (
        2,
        400,
        328,
        3,
    )
    with pytest.raises(DonkeyError, match="--output-size"):
        to_output_size(frames, box, "huge")


def _detailed(height: int, width: int) -> np.ndarray:
    """Fine detail (a 4-pixel checker) over a smooth pattern: what 64 x 64 cannot hold."""
    yy, xx = np.mgrid[0:height, 0:width]
    checker = (((yy // 4) + (xx // 4)) % 2 * 60).astype(np.int16)[..., None]
    return np.clip(_pattern(height, width).astype(np.int16) // 2 + 60 + checker, 0, 255).astype(
        np.uint8
    )


def test_source_detail_is_added_where_the_warp_agrees_with_the_result():
    import torch

    from donkey.data.canvas import add_source_detail
    from donkey.model.geometry import make_coordinate_grid

    h, w, size = 256, 192, 64  # 4 output pixels a model pixel; the picture at columns 8..56
    box = fit_box(h, w, size, "pad")
    identity = make_coordinate_grid(16, 16, torch.zeros(1))[None]
    source = _detailed(h, w)
    base = unfit_frames(fit_frame(source, size, "pad")[None], box, (h, w))
    out = add_source_detail(base, source, identity, box)
    before = np.abs(base.astype(int) - source).mean()
    after = np.abs(out.astype(int) - source).mean()
    assert after < 0.5 * before
    # The motion moves the detail: 2 model pixels to the left is 8 output pixels.
    shifted = identity.clone()
    shifted[..., 0] += 2.0 * 2 / (size - 1)
    moved = np.full_like(source, 255)
    moved[:, :-8] = source[:, 8:]
    base = unfit_frames(fit_frame(moved, size, "pad")[None], box, (h, w))
    out = add_source_detail(base, source, shifted, box)
    inner = (slice(8, -8), slice(8, -16))
    before = np.abs(base[0][inner].astype(int) - moved[inner]).mean()
    after = np.abs(out[0][inner].astype(int) - moved[inner]).mean()
    assert after < 0.5 * before
    # Where the result disagrees with the warped source, the result stands.
    far = np.zeros_like(base)
    np.testing.assert_array_equal(add_source_detail(far, source, identity, box), far)
    with pytest.raises(DonkeyError, match="add_source_detail"):
        add_source_detail(base, source[:10], identity, box)
