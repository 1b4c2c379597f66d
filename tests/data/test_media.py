import numpy as np
import pytest
from PIL import Image

from donkey.data.frames import fit_square, frames_to_tensor, parse_colour, tensor_to_frames, to_rgb8
from donkey.data.media import MediaError, read_frames, read_image, read_video
from donkey.data.writers import write_video
from tests.conftest import make_creature_frames


def _gif(path, frames, mode=None, **kw):
    images = [
        Image.fromarray(f) if mode is None else Image.fromarray(f).convert(mode) for f in frames
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=50, loop=0, **kw)
    return path


def test_grayscale_gif_becomes_rgb(tmp_path):
    gray = np.stack([np.full((10, 14), 40 * i, np.uint8) for i in range(4)])
    path = tmp_path / "gray.gif"
    images = [Image.fromarray(g, mode="L") for g in gray]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100)
    clip = read_frames(path)
    assert clip.frames.shape == (4, 10, 14, 3)
    assert clip.fps == pytest.approx(10.0)
    assert (clip.frames[2] == 80).all()


def test_16bit_png_strip_keeps_top_bits(tmp_path):
    strip = np.zeros((8, 24), dtype=np.uint16)
    strip[:, :8] = 65535
    strip[:, 8:16] = 32896  # 128.5 * 257 -> 128 after scaling
    path = tmp_path / "sixteen.png"
    Image.fromarray(strip).save(path)
    assert Image.open(path).mode.startswith("I")
    clip = read_frames(path)
    assert clip.frames.shape == (3, 8, 8, 3)
    assert clip.frames[0].min() == 255 and clip.frames[1].max() == 128 and clip.frames[2].max() == 0


def test_rgba_gif_and_png_composite_on_background(tmp_path):
    rgba = np.zeros((2, 6, 6, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :3, :, 3] = 255  # top half opaque red, bottom transparent
    rgba[1, :, :, 1] = 255  # second frame yellow, so the GIF writer keeps both frames
    png = tmp_path / "sprite.png"
    Image.fromarray(rgba[0], mode="RGBA").save(png)
    frame = read_image(png, 6)
    assert frame[0, 0].tolist() == [255, 0, 0]
    assert frame[5, 0].tolist() == [255, 255, 255]
    black = read_image(png, 6, background=(0, 0, 0))
    assert black[5, 0].tolist() == [0, 0, 0]
    gif = tmp_path / "alpha.gif"
    images = [Image.fromarray(f, mode="RGBA") for f in rgba]
    images[0].save(gif, save_all=True, append_images=images[1:], duration=100, disposal=2)
    clip = read_video(gif, 6)
    assert clip.frames.shape == (2, 6, 6, 3)
    assert clip.frames[0, 5, 0].tolist() == [255, 255, 255]


def test_non_square_sprite_is_padded_not_stretched(tmp_path):
    sprite = np.zeros((10, 20, 3), np.uint8)  # black, wide
    path = tmp_path / "wide.jpg"
    Image.fromarray(sprite).save(path, quality=100)
    padded = read_image(path, 20, fit="pad")
    assert padded.shape == (20, 20, 3)
    assert padded[0, 10].min() > 240 and padded[10, 10].max() < 15  # white bands, black middle
    cropped = read_image(path, 20, fit="crop")
    assert cropped.max() < 15
    stretched = read_image(path, 20, fit="stretch")
    assert stretched.max() < 15 and stretched.shape == (20, 20, 3)
    frames = fit_square(np.zeros((1, 4, 6, 3), np.uint8), "pad", (9, 9, 9))
    assert frames.shape == (1, 6, 6, 3) and frames[0, 0, 0].tolist() == [9, 9, 9]


def test_one_frame_gif(tmp_path):
    path = _gif(tmp_path / "one.gif", make_creature_frames(1, 16))
    clip = read_video(path, 16)
    assert clip.frames.shape == (1, 16, 16, 3)


def test_palette_and_folder_of_frames(tmp_path):
    frames = make_creature_frames(3, 12)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).convert("P").save(folder / f"f{i + 1}.png")
    Image.fromarray(frames[0]).save(folder / "f10.png")  # natural sort: after f3
    clip = read_frames(folder)
    assert clip.frames.shape == (4, 12, 12, 3)
    assert np.array_equal(clip.frames[3], frames[0])


@pytest.mark.parametrize("suffix", [".gif", ".png", ".mp4"])
def test_write_read_round_trip(tmp_path, suffix):
    frames = make_creature_frames(5, 32)
    path = write_video(tmp_path / f"out{suffix}", frames, fps=12.5)
    back = read_frames(path)
    assert back.frames.shape == frames.shape
    err = np.abs(back.frames.astype(int) - frames.astype(int)).mean()
    assert err == 0 if suffix == ".png" else err < 6
    assert not list(tmp_path.glob(".*tmp*"))


def test_bad_files_raise_one_line_media_errors(tmp_path):
    empty = tmp_path / "empty.gif"
    empty.write_bytes(b"")
    good = _gif(tmp_path / "good.gif", make_creature_frames(4, 32))
    truncated = tmp_path / "truncated.gif"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a png at all" * 10)
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_bytes(b"\x00\x01" * 100)
    for path, cause in [
        (empty, "empty file"),
        (truncated, "truncated"),
        (garbage, "not an image"),
        (bad_video, "cannot decode video"),
        (tmp_path / "missing.gif", "no such file"),
    ]:
        with pytest.raises(MediaError) as info:
            read_video(path, 32)
        assert str(info.value).startswith(f"{path}: ") and cause in str(info.value)
        assert "\n" not in str(info.value)


def test_unsupported_output_suffix(tmp_path):
    with pytest.raises(MediaError, match="unsupported output format '.avi'"):
        write_video(tmp_path / "x.avi", make_creature_frames(2, 8))


def test_mode_conversions_and_tensors():
    assert parse_colour("#ff8000") == (255, 128, 0)
    with pytest.raises(ValueError):
        parse_colour("nope")
    cmyk = Image.new("CMYK", (2, 2), (0, 0, 0, 0))
    assert to_rgb8(cmyk).tolist() == [[[255, 255, 255]] * 2] * 2
    frames = make_creature_frames(2, 8)
    assert np.array_equal(tensor_to_frames(frames_to_tensor(frames)), frames)


def test_a_cut_off_still_png_is_truncated_inside_its_first_frame(tmp_path):
    good = tmp_path / "still.png"
    Image.fromarray(make_creature_frames(1, 40, seed=3)[0]).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for read in (lambda p: read_image(p, 32), lambda p: read_video(p, 32)):
        with pytest.raises(
            MediaError, match=r"cut\.png: truncated: the file ends inside its first frame$"
        ):
            read(cut)


def test_read_only_frames_become_tensors_without_a_warning():
    import warnings

    frames = np.full((2, 4, 4, 3), 255, np.uint8)
    frames.flags.writeable = False  # as ffmpeg's decoded frames are
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tensor = frames_to_tensor(frames)
    assert tensor.shape == (2, 3, 4, 4) and float(tensor.min()) == 1.0


def _reference_gif(path, frames, fps):
    """The GIF writer before RGBA output, verbatim: RGB files must not change."""
    from PIL import GifImagePlugin

    picks = np.linspace(0, len(frames) - 1, min(len(frames), 16)).round().astype(int)
    mosaic = Image.fromarray(np.concatenate(list(frames[picks]), axis=1))
    palette = mosaic.quantize(256, method=Image.Quantize.FASTOCTREE)
    images = [
        Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames
    ]
    duration = max(int(round(1000.0 / fps)), 20)
    header, _ = GifImagePlugin.getheader(images[0], info={"loop": 0, "duration": duration})
    with open(path, "wb") as handle:
        for chunk in header:
            handle.write(chunk)
        for image in images:
            for chunk in GifImagePlugin.getdata(image, duration=duration):
                handle.write(chunk)
        handle.write(b";")


def _reference_mp4(path, frames, fps):
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(
        str(path),
        (frames.shape[2], frames.shape[1]),
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


def test_rgb_files_are_byte_identical_to_the_writers_before_alpha(tmp_path):
    frames = make_creature_frames(6, 40, seed=3)
    _reference_gif(tmp_path / "ref.gif", frames, 12.5)
    assert (
        write_video(tmp_path / "new.gif", frames, 12.5).read_bytes()
        == (tmp_path / "ref.gif").read_bytes()
    )
    Image.fromarray(np.concatenate(list(frames), axis=1)).save(tmp_path / "ref.png", format="PNG")
    assert (
        write_video(tmp_path / "new.png", frames).read_bytes()
        == (tmp_path / "ref.png").read_bytes()
    )
    _reference_mp4(tmp_path / "ref.mp4", frames, 12.5)
    assert (
        write_video(tmp_path / "new.mp4", frames, 12.5).read_bytes()
        == (tmp_path / "ref.mp4").read_bytes()
    )
