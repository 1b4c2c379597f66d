import json

import numpy as np
import pytest
from PIL import Image

from donkey.cli.app import app
from donkey.data.media import read_frames
from tests.conftest import CONFIGS, make_creature_frames, run_cli


def _write_gif(path, frames):
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=80, loop=0)
    return path


def _bytes(path, data):
    path.write_bytes(data)
    return path


@pytest.fixture()
def media(spaced_dir, tmp_path):
    folder = tmp_path / "media files"
    folder.mkdir()
    src = folder / "source image.png"
    Image.fromarray(make_creature_frames(1, 40, seed=3)[0]).save(src)
    drv = _write_gif(folder / "driving clip.gif", make_creature_frames(7, 40, seed=4))
    return folder, src, drv


def test_info_json_has_every_network(runner):
    result = runner.invoke(app, ["info", str(CONFIGS / "mgif.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    for key in ("kp_detector", "dense_motion", "generator", "discriminator"):
        assert set(data[key]) == {"params", "gmac"}
    assert abs(data["kp_detector"]["params"] - 14.1e6) < 0.03 * 14.1e6


def test_init_then_info_on_the_checkpoint(runner, tmp_path):
    ckpt = tmp_path / "init model.ckpt"
    result = runner.invoke(
        app, ["init", str(CONFIGS / "tiny.yaml"), "-o", str(ckpt), "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["info", "--model", str(ckpt), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["image_size"] == 32


def test_info_on_the_bundled_model(runner):
    # The bundled model works at MGIF's native 128x128 (docs/default-model.md).
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["image_size"] == 128 and info["num_kp"] == 10
    # The mean of four checkpoints of one line of training: the GPU stage (4105 steps) and three
    # CPU continuations of it (700, 100 and 100 steps of their last runs); none frozen.
    assert "frozen" not in info["training"]
    assert info["training"]["averaged_steps"] == [4105, 700, 100, 100]
    assert info["training"]["steps"] is None


@pytest.mark.parametrize("suffix", [".gif", ".png", ".mp4"])
def test_animate_end_to_end_writes_one_frame_per_driving_frame(runner, tiny_ckpt, media, suffix):
    folder, src, drv = media
    out = folder / f"result clip{suffix}"
    result = runner.invoke(
        app,
        [
            "animate",
            str(src),
            str(drv),
            "-o",
            str(out),
            "--model",
            str(tiny_ckpt),
            "--device",
            "cpu",
            "--batch-size",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    clip = read_frames(out)
    assert clip.frames.shape == (7, 40, 40, 3)  # the source's own 40 x 40 (--output-size source)
    assert "wrote" in result.output


def test_animate_side_by_side_and_modes(runner, tiny_ckpt, media):
    folder, src, drv = media
    out = folder / "sbs.png"
    for mode in ("absolute", "relative"):
        result = runner.invoke(
            app,
            [
                "animate",
                str(src),
                str(drv),
                "-o",
                str(out),
                "--model",
                str(tiny_ckpt),
                "--side-by-side",
                "--mode",
                mode,
                "--adapt-scale",
                "--device",
                "cpu",
                "--overwrite",
            ],
        )
        assert result.exit_code == 0, result.output
        frames = read_frames(out, strip=False).frames
        assert frames.shape == (1, 32, 7 * 96, 3)  # PNG strip of 7 frames, each 3 panels wide


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (lambda d: d / "missing.gif", "no such file"),
        (lambda d: _bytes(d / "empty.gif", b""), "empty file"),
        (lambda d: _bytes(d / "cut.gif", b"GIF89a\x10\x00\x10\x00"), "corrupt"),
    ],
)
def test_bad_driving_gives_one_line_error_and_no_output(tiny_ckpt, media, make_bad, message):
    folder, src, _ = media
    bad = make_bad(folder)
    out = folder / "never.gif"
    proc = run_cli("animate", src, bad, "-o", out, "--model", tiny_ckpt, "--device", "cpu")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and str(bad) in lines[0].replace("\n", "") and message in lines[0]
    assert not out.exists() and not list(folder.glob(".never*"))


def test_wrong_checkpoint_and_bad_options(runner, media, tmp_path):
    folder, src, drv = media
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    result = runner.invoke(
        app, ["animate", str(src), str(drv), "-o", str(folder / "o.gif"), "--model", str(bogus)]
    )
    assert result.exit_code == 1 and "bogus.ckpt: corrupt or not a checkpoint" in result.output
    result = runner.invoke(
        app, ["animate", str(src), str(drv), "-o", str(folder / "o.avi"), "--model", str(bogus)]
    )
    assert result.exit_code == 1 and "unsupported output format" in result.output
    result = runner.invoke(
        app, ["animate", str(src), str(drv), "-o", str(folder / "o.gif"), "--fit", "zoom"]
    )
    # Refused while the options are parsed (choices.Fit), before any file is read.
    assert result.exit_code == 2
    assert (
        "Invalid value for '--fit': 'zoom' is not one of 'pad', 'crop', 'stretch'" in result.output
    )
    # Names are printed as they are, not read as rich markup.
    odd = tmp_path / "sprite [red]1[/].png"
    result = runner.invoke(app, ["animate", str(odd), str(drv), "-o", str(folder / "o.gif")])
    assert result.exit_code == 1 and f"{odd}: no such file" in result.output


def test_every_command_has_help(runner):
    for command in ("init", "info", "animate"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_grayscale_odd_sized_real_gif_animates(runner, tiny_ckpt, tmp_path):
    from tests.conftest import SHARED_DATA

    sample = SHARED_DATA / "samples" / "muybridge.gif"
    if not sample.exists():
        pytest.skip(f"development sample not found at {sample}")
    out = tmp_path / "horse.gif"
    result = runner.invoke(
        app, ["animate", str(sample), str(sample), "-o", str(out), "--model", str(tiny_ckpt)]
    )
    assert result.exit_code == 0, result.output
    frames = read_frames(out).frames
    # The sample's own 30 x 20 (--output-size source), one frame per driving frame.
    assert frames.shape == (15, 20, 30, 3) and np.isfinite(frames).all()
