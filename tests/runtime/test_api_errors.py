"""The Python API answers bad arguments with DonkeyError, as docs/python-api.md promises."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import donkey
from donkey.model.errors import DonkeyError


@pytest.fixture(scope="module")
def model(tiny_ckpt):
    return donkey.load_model(tiny_ckpt, device="cpu")


SOURCE = np.zeros((40, 30, 3), np.uint8)
DRIVING = np.zeros((2, 30, 40, 3), np.uint8)


@pytest.mark.parametrize(
    "options, words",
    [
        ({"fit": "foo"}, "fit must be one of pad, crop, stretch, got 'foo'"),
        ({"background": "zz"}, "background: not a colour: 'zz'"),
        ({"background": (300, 0, 0)}, "background: expected a colour name or 3 integers 0-255"),
        ({"background": (1, 2)}, "got (1, 2)"),
        ({"background": 5}, "got 5"),
        ({"batch_size": 2.5}, "batch size must be an integer >= 1, got 2.5"),
        ({"batch_size": 0}, "got 0"),
        ({"mode": "sideways"}, "mode must be one of absolute, relative, got 'sideways'"),
        ({"adapt_scale": "no"}, "adapt_scale must be True or False, got 'no'"),
    ],
)
def test_animate_refuses_bad_options(model, options, words):
    with pytest.raises(DonkeyError) as caught:
        donkey.animate(model, SOURCE, DRIVING, **options)
    assert words in str(caught.value)


def test_animate_takes_numpy_colours_and_batch_sizes(model):
    out = donkey.animate(
        model, SOURCE, DRIVING, background=np.array([0, 128, 255]), batch_size=np.int64(1)
    )
    assert out.shape == (2, model.config.image_size, model.config.image_size, 3)


@pytest.mark.parametrize("size", [0, -1, 100_000, 2.5, True])
def test_read_image_refuses_a_size_no_model_has(tmp_path, size):
    path = tmp_path / "a.png"
    donkey.write_video(path, np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(DonkeyError, match=r"size must be an integer in \[1, 1024\]"):
        donkey.read_image(path, size)
    with pytest.raises(DonkeyError, match=r"size must be an integer in \[1, 1024\]"):
        donkey.read_video(path, size)


@pytest.mark.parametrize("fps", [0, -3, math.nan, math.inf, "10", True])
def test_write_video_refuses_a_bad_frame_rate(tmp_path, fps):
    with pytest.raises(DonkeyError, match="fps must be a positive finite number"):
        donkey.write_video(tmp_path / "a.gif", np.zeros((2, 8, 8, 3), np.uint8), fps=fps)
    assert list(tmp_path.iterdir()) == []


def test_write_video_refuses_float_frames_and_takes_numpy_rates(tmp_path):
    with pytest.raises(DonkeyError, match="expected uint8 frames, got float32"):
        donkey.write_video(tmp_path / "a.gif", np.zeros((2, 8, 8, 3), np.float32))
    path = donkey.write_video(tmp_path / "b.gif", np.zeros((2, 8, 8, 3), np.uint8), np.float32(12))
    assert donkey.read_video(path, 8).frames.shape == (2, 8, 8, 3)


def test_read_functions_check_fit_and_background_like_animate(tmp_path):
    from PIL import Image

    path = tmp_path / "rgba.png"
    Image.new("RGBA", (8, 4), (0, 0, 0, 0)).save(path)  # transparent: all background
    pink = donkey.read_image(path, 8, background="pink")
    assert tuple(pink[4, 4]) == (255, 192, 203)
    assert tuple(donkey.read_video(path, 8, background=(1, 2, 3)).frames[0, 4, 4]) == (1, 2, 3)
    for options, words in (
        ({"fit": "foo"}, "fit must be one of pad, crop, stretch, got 'foo'"),
        ({"background": (300, 0, 0)}, "background: expected a colour name or 3 integers"),
        ({"background": "zz"}, "background: not a colour: 'zz'"),
    ):
        for read in (donkey.read_image, donkey.read_video):
            with pytest.raises(DonkeyError, match=re.escape(words)):
                read(path, 8, **options)


def test_an_animator_defaults_like_animate_and_refuses_ignored_settings(model):
    """Animator(model) moved absolutely while everything else moves relatively, and settings
    passed beside an Animator were silently dropped."""
    source = np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)
    driving = np.random.default_rng(1).integers(0, 255, (3, 32, 32, 3), np.uint8)
    with_animator = donkey.animate(donkey.Animator(model), source, driving)
    assert np.array_equal(with_animator, donkey.animate(model, source, driving))
    absolute = donkey.animate(model, source, driving, mode="absolute")
    assert not np.array_equal(absolute, with_animator)
    assert np.array_equal(
        absolute, donkey.animate(donkey.Animator(model, mode="absolute"), source, driving)
    )
    for options, words in (
        ({"mode": "absolute"}, "mode: given an Animator, set it on the Animator"),
        (
            {"batch_size": 2, "adapt_scale": True},
            "adapt_scale, batch_size: given an Animator, set them",
        ),
    ):
        with pytest.raises(DonkeyError, match=re.escape(words)):
            donkey.animate(donkey.Animator(model), source, driving, **options)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (
            lambda m: donkey.animate("m.ckpt", SOURCE, DRIVING),
            "model: expected donkey.load_model(...) or a donkey.Animator, got str",
        ),
        (lambda m: donkey.animate(None, SOURCE, DRIVING), "got NoneType"),
        (
            lambda m: donkey.Animator("m.ckpt"),
            "model: expected what donkey.load_model returns, got str",
        ),
        (lambda m: donkey.load_model(5), "model: expected a path or None, got int"),
        (lambda m: donkey.load_model(b"m.ckpt"), "got bytes"),
        (lambda m: donkey.load_model(device=None), "device: expected a string, got NoneType"),
        (lambda m: donkey.read_image(None, 32), "path: expected a file name, got None"),
        (lambda m: donkey.read_video(3, 32), "path: expected a file name, got 3"),
    ],
)
def test_wrong_argument_types_are_donkey_errors(model, call, words):
    with pytest.raises(DonkeyError, match=re.escape(words)):
        call(model)
