"""The read budget: checked from headers before decoding, enforced while decoding, raisable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from donkey.data.frames import fit_square, prepare_frames, resize_frames
from donkey.data.media import Budget, MediaError, read_frames, read_image, read_video
from tests.conftest import ROOT
from tests.hostile import corpus, gif_screen_bomb, good_gif, png_forged_size, truncated


def test_hostile_corpus_is_refused_in_one_line(tmp_path):
    expected = {
        "screen_bomb.gif": "12000x12000 (144.0 megapixels) exceed the 50.0 megapixels per-frame",
        "frame_bomb.gif": "3000 frames of 800x800 (1.92 gigapixels) exceed the 1.00 gigapixels",
        "forged.png": "30000x30000",
        "truncated.gif": "truncated",
        "garbage.gif": "not an image or video",
        "empty.png": "empty file",
        "text.mp4": "cannot decode video",
        "zero_size.gif": "contains no frames",
    }
    files = corpus(tmp_path)
    assert files["screen_bomb.gif"].stat().st_size == 131
    assert 60_000 < files["frame_bomb.gif"].stat().st_size < 75_000
    for name, path in files.items():
        with pytest.raises(MediaError) as info:
            read_video(path, 32)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and expected[name] in message, message
        assert "\n" not in message


def test_budget_messages_say_how_to_raise_and_raising_works(tmp_path):
    bomb = gif_screen_bomb(tmp_path / "b.gif", 300, 200, 50)  # 3 MP in all
    small = Budget(max_pixels=1_000_000)
    with pytest.raises(MediaError, match="DONKEY_MAX_PIXELS or --max-pixels of animate and eval"):
        read_video(bomb, 16, budget=small)
    with pytest.raises(MediaError, match="50 frames exceed the 10-frame"):
        read_video(bomb, 16, budget=Budget(max_frames=10))
    clip = read_video(bomb, 16, budget=Budget(max_pixels=3_000_000))
    assert clip.frames.shape == (50, 16, 16, 3)
    # A source image needs only its first frame: the frame budget does not apply to it.
    assert read_image(bomb, 16, budget=Budget(max_frames=1)).shape == (16, 16, 3)
    with pytest.raises(MediaError, match="exceed the 1.0 megapixels read budget"):
        read_frames(bomb, budget=small)


def test_environment_raises_and_rejects_nonsense(tmp_path, monkeypatch):
    bomb = gif_screen_bomb(tmp_path / "b.gif", 100, 100, 20)
    monkeypatch.setenv("DONKEY_MAX_FRAMES", "5")
    with pytest.raises(MediaError, match="20 frames exceed the 5-frame"):
        read_video(bomb, 8)
    monkeypatch.setenv("DONKEY_MAX_FRAMES", "2e1")
    assert read_video(bomb, 8).frames.shape[0] == 20
    monkeypatch.setenv("DONKEY_MAX_FRAMES", "-3")
    with pytest.raises(Exception, match="DONKEY_MAX_FRAMES must be a positive number"):
        read_video(bomb, 8)


def test_truncated_gif_is_refused_naming_the_complete_frames(tmp_path):
    good = good_gif(tmp_path / "good.gif", frames=8, size=40)
    cut = truncated(tmp_path / "cut.gif", good, 0.55)
    with pytest.raises(MediaError) as info:
        read_video(cut, 16)
    message = str(info.value)
    assert "truncated: the file ends inside frame" in message and "complete frames" in message
    # The first frame is whole, so as a source image the file still works.
    assert read_image(cut, 16).shape == (16, 16, 3)
    # A missing trailer byte alone is not truncation (many writers forget it).
    no_trailer = tmp_path / "no_trailer.gif"
    no_trailer.write_bytes(good.read_bytes()[:-1])
    assert read_video(no_trailer, 16).frames.shape[0] == 8


def test_truncated_png_and_jpeg_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for suffix in (".png", ".jpg"):
        whole = tmp_path / f"whole{suffix}"
        image.save(whole)
        cut = truncated(tmp_path / f"cut{suffix}", whole, 0.5)
        with pytest.raises(MediaError, match="truncated|corrupt"):
            read_image(cut, 16)


def test_large_frames_are_reduced_before_conversion_and_match_closely(tmp_path):
    # 2400 x 1800 (4.3 MP): reduced by an integer factor first, then fitted as usual.
    yy, xx = np.mgrid[0:1800, 0:2400]
    smooth = np.stack([xx * 255 // 2399, yy * 255 // 1799, (xx + yy) * 255 // 4198], axis=-1)
    smooth = smooth.astype(np.uint8)
    path = tmp_path / "large.png"
    Image.fromarray(smooth).save(path)
    fast = read_image(path, 32)
    # One frame fitter: the Python API's prepare_frames fits the decoded frame the same way.
    assert np.array_equal(fast, prepare_frames(smooth[None], 32)[0])
    exact = resize_frames(fit_square(smooth[None], "pad"), 32)[0]
    assert fast.shape == (32, 32, 3) and not np.array_equal(fast, exact)
    assert np.abs(fast.astype(int) - exact.astype(int)).mean() < 3.0


def test_forged_png_header_is_refused_before_decoding(tmp_path):
    path = png_forged_size(tmp_path / "f.png", 20000, 20000)
    with pytest.raises(MediaError, match="20000x20000"):
        read_image(path, 16)
    # Raised past our budget, Pillow's own guard or decoder refuses it, still as MediaError.
    with pytest.raises(MediaError):
        read_image(path, 16, budget=Budget(max_frame_pixels=10**9, max_pixels=10**10))


def test_default_budget_bounds_peak_memory_of_the_issue_files(tmp_path):
    """The 131-byte and 69 KB GIFs of the issue, read in a fresh process: refused, < 2 GB."""
    bomb = gif_screen_bomb(tmp_path / "bomb.gif", 12000, 12000, 4)
    many = gif_screen_bomb(tmp_path / "many.gif", 800, 800, 3000)
    code = (
        "import json, resource, sys\n"
        "from donkey.data.media import MediaError, read_video\n"
        "out = []\n"
        "for p in sys.argv[1:]:\n"
        "    try:\n"
        "        read_video(p, 64); out.append('read')\n"
        "    except MediaError as e:\n"
        "        out.append(str(e))\n"
        "print(json.dumps([out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for var in Budget.ENV.values():
        env.pop(var, None)
    result = subprocess.run(
        [sys.executable, "-c", code, str(bomb), str(many)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    messages, max_rss_kb = json.loads(result.stdout)
    assert "per-frame read budget" in messages[0]
    assert "1.92 gigapixels" in messages[1]
    assert max_rss_kb < 2 * 1024 * 1024


def test_every_page_and_every_strip_frame_is_budgeted(tmp_path):
    # A multi-page TIFF whose second page is large: refused before that page is decoded.
    small = Image.fromarray(np.zeros((10, 10, 3), np.uint8))
    large = Image.fromarray(np.zeros((1500, 1500, 3), np.uint8))
    tiff = tmp_path / "pages.tif"
    small.save(tiff, save_all=True, append_images=[large])
    with pytest.raises(MediaError, match="1500x1500 .* per-frame read budget"):
        read_video(tiff, 16, budget=Budget(max_frame_pixels=1_000_000))
    # A still strip of 50 square frames counts as 50 frames.
    strip = tmp_path / "strip.png"
    Image.fromarray(np.zeros((8, 8 * 50, 3), np.uint8)).save(strip)
    with pytest.raises(MediaError, match="50 frames exceed the 10-frame"):
        read_video(strip, 8, budget=Budget(max_frames=10))
    assert read_video(strip, 8).frames.shape == (50, 8, 8, 3)
