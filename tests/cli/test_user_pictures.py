"""A user's own picture: the result at the picture's own size and shape, transparent where the
source is, motion measured from the driving frame posed like the source (--reference), with
--smooth and --motion-scale; the same options in the Python API; bad values in one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import donkey
from donkey.data.media import read_frames
from donkey.data.writers import write_video
from tests.conftest import error_lines, invoke, make_creature_frames


@pytest.fixture()
def sprite(tmp_path):
    """A 100 x 70 RGBA sprite (an opaque blob on a transparent ground) and a 6-frame driving."""
    rgba = np.zeros((70, 100, 4), dtype=np.uint8)
    yy, xx = np.mgrid[0:70, 0:100]
    body = ((xx - 50) / 30.0) ** 2 + ((yy - 35) / 18.0) ** 2 <= 1.0
    rgba[body] = (200, 40, 120, 255)
    source = tmp_path / "sprite.png"
    Image.fromarray(rgba, mode="RGBA").save(source)
    driving = tmp_path / "trot.gif"
    write_video(driving, make_creature_frames(6, 40, seed=2))
    return source, driving, body


def _animate(runner, tiny_ckpt, *args):
    return invoke(runner, "animate", *args, "--model", tiny_ckpt, "--batch-size", "4")


def test_output_keeps_the_sources_size_shape_and_transparency(runner, tiny_ckpt, sprite, tmp_path):
    source, driving, body = sprite
    out = tmp_path / "out.png"  # a strip keeps exact pixels and alpha
    code, text = _animate(runner, tiny_ckpt, source, driving, "-o", out)
    assert code == 0, text
    assert "100x70 with transparency" in text and "reference frame" in text
    strip = np.asarray(Image.open(out))
    assert strip.shape == (70, 6 * 100, 4)  # 6 frames of the picture's own 100 x 70
    first = strip[:, :100]
    # Transparent around the body (the alpha moved with the motion, padding cropped off):
    # the corners stay clear, and most of the body is opaque.
    assert first[0, 0, 3] == 0 and first[-1, -1, 3] == 0
    assert (first[..., 3][body] > 128).mean() > 0.6
    gif = tmp_path / "out.gif"
    code, text = _animate(runner, tiny_ckpt, source, driving, "-o", gif)
    assert code == 0, text
    with Image.open(gif) as image:
        assert image.size == (100, 70) and "transparency" in image.info
        assert image.convert("RGBA").getpixel((0, 0))[3] == 0


def test_output_size_model_and_n_and_a_given_background(runner, tiny_ckpt, sprite, tmp_path):
    source, driving, _ = sprite
    out = tmp_path / "model.gif"
    code, text = _animate(runner, tiny_ckpt, source, driving, "-o", out, "--output-size", "model")
    assert code == 0, text
    assert read_frames(out).frames.shape[1:3] == (32, 32)  # the tiny model's square
    out = tmp_path / "n.png"
    code, text = _animate(
        runner, tiny_ckpt, source, driving, "-o", out, "--output-size", "50", "--background", "pink"
    )
    assert code == 0, text
    strip = Image.open(out)
    # Long side 50, aspect kept; a given colour: composited on it, no transparency left.
    assert strip.mode == "RGB" and strip.size == (6 * 50, 35)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--reference", "middle"],
            "reference must be auto, first or a frame number, got 'middle'",
        ),
        (["--reference", "-2"], "reference frame numbers start at 0, got -2"),
        (["--output-size", "huge"], "output size must be model, source or a size in [16, 4096]"),
        (["--output-size", "8"], "output size must be model, source or a size in [16, 4096]"),
        (["--smooth", "11"], "smooth must be in [0, 10], got 11"),
        (["--smooth", "nan"], "smooth must be in [0, 10], got nan"),
        (["--motion-scale", "-0.5"], "motion scale must be in [0, 2], got -0.5"),
    ],
)
def test_bad_values_are_refused_in_one_line(runner, tiny_ckpt, sprite, tmp_path, args, message):
    source, driving, _ = sprite
    out = tmp_path / "o.gif"
    code, text = _animate(runner, tiny_ckpt, source, driving, "-o", out, *args)
    assert code == 2 and len(error_lines(text)) == 1 and message in text, text
    assert not out.exists()


def test_a_reference_past_the_clip_is_one_line(runner, tiny_ckpt, sprite, tmp_path):
    source, driving, _ = sprite
    out = tmp_path / "o.gif"
    code, text = _animate(runner, tiny_ckpt, source, driving, "-o", out, "--reference", "6")
    assert code == 1 and error_lines(text) == [
        f"error: {driving}: reference frame 6: the clip has 6 frames (0 to 5)"
    ]
    assert not out.exists()


def test_reference_auto_picks_the_frame_posed_like_the_source(runner, tiny_ckpt, tmp_path):
    """The source is frame 4 of the driving itself: auto measures the movement from there, so
    the result reproduces the driving, frame 4 included (first would start from frame 0)."""
    frames = make_creature_frames(8, 32, seed=5)
    driving = tmp_path / "walk.png"  # a lossless strip
    write_video(driving, frames)
    source = tmp_path / "pose4.png"
    Image.fromarray(frames[4]).save(source)
    code, text = _animate(
        runner, tiny_ckpt, source, driving, "-o", tmp_path / "o.gif", "--reference", "auto"
    )
    assert code == 0 and "reference frame 4 (auto" in text, text
    code, text = _animate(runner, tiny_ckpt, source, driving, "-o", tmp_path / "f.gif")
    assert code == 0 and "reference frame 0 (first)" in text, text  # the default


def test_python_api_takes_the_same_options(tiny_ckpt, sprite):
    source_path, driving_path, _ = sprite
    model = donkey.load_model(tiny_ckpt, device="cpu")
    rgba = np.asarray(Image.open(source_path))
    driving = read_frames(driving_path).frames
    square = donkey.animate(model, rgba, driving)
    assert square.shape == (6, 32, 32, 4)  # alpha kept, the model's size by default
    full = donkey.animate(model, rgba, driving, output_size="source", reference="first")
    assert full.shape == (6, 70, 100, 4)
    opaque = donkey.animate(model, rgba, driving, background="white", motion_scale=0.0)
    assert opaque.shape == (6, 32, 32, 3)
    with pytest.raises(donkey.DonkeyError, match="motion scale must be in"):
        donkey.animate(model, rgba, driving, motion_scale=5)
    with pytest.raises(donkey.DonkeyError, match="set it on the Animator"):
        donkey.animate(donkey.Animator(model), rgba, driving, smooth=1.0)


def test_skip_existing_keeps_an_odd_sized_mp4_batch_result(runner, tiny_ckpt, tmp_path):
    """The MP4 writer pads odd sides by a pixel (yuv420p): a finished 51 x 33 result decodes
    as 52 x 34 and is still the one this run would write, so it is kept, not redone."""
    sources, drivings, out = tmp_path / "s", tmp_path / "d", tmp_path / "out"
    sources.mkdir()
    drivings.mkdir()
    Image.fromarray(make_creature_frames(1, 51, seed=3)[0][:33]).save(sources / "odd.png")
    write_video(drivings / "walk.gif", make_creature_frames(4, 32, seed=4))
    args = ["animate", sources, drivings, "-o", out, "--model", tiny_ckpt, "--out-format", "mp4"]
    code, text = invoke(runner, *args)
    assert code == 0, text
    result = out / "odd__walk.mp4"
    assert read_frames(result).frames.shape == (4, 34, 52, 3)
    before = result.stat().st_mtime_ns
    code, text = invoke(runner, *args, "--skip-existing")
    assert code == 0 and "skipped (exists) │     1" in text, text
    assert result.stat().st_mtime_ns == before


def test_identity_options_need_identity_change(runner, tmp_path):
    code, text = invoke(runner, "pairs", tmp_path, "-o", tmp_path / "p.json", "--strength", "0.5")
    assert code == 1 and error_lines(text) == [
        "error: --strength and --seed set the changes of --identity-change N; give it"
    ]
