"""scripts/gpu_carry.py: lossless WebP strips of the training split, within a byte budget."""

import io

import numpy as np
import pytest
from PIL import Image, features

from donkey.data.datasets import select_split, split_fraction
from donkey.data.media import read_video
from tests.conftest import load_script

pytestmark = pytest.mark.skipif(not features.check("webp"), reason="Pillow without WebP")


@pytest.fixture(scope="module")
def carry():
    return load_script("gpu_carry")


def _strips(folder, count, frames=3, size=16):
    """PNG strips like MGIF's: RGBA, frames side by side; noisy so each file has its own size."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(count):
        strip = rng.integers(0, 256, (size, size * frames, 4), dtype=np.uint8)
        strip[..., 3] = rng.choice([0, 128, 255], strip.shape[:2])
        Image.fromarray(strip, "RGBA").save(folder / f"{i:05d}.png")
    return sorted(folder.iterdir())


def test_packs_the_training_split_exactly_in_hash_order_within_the_budget(carry, tmp_path):
    files = _strips(tmp_path / "mgif", 12)
    train = select_split(files, "train", 0.25)
    assert 0 < len(train) < 12  # some are held out
    out = tmp_path / "carry"
    total = carry.pack(tmp_path / "mgif", out, 16, 0.25, max_bytes=float("inf"))
    written = sorted(out.glob("*.webp"))
    assert [p.stem for p in written] == [p.stem for p in train]
    assert total == sum(p.stat().st_size for p in written)
    for png in train:  # the frames donkey reads, byte for byte (alpha composited as for the PNG)
        assert np.array_equal(
            read_video(out / f"{png.stem}.webp", 16).frames, read_video(png, 16).frames
        )

    order = sorted(train, key=lambda p: split_fraction(p.name))
    sizes = [(out / f"{p.stem}.webp").stat().st_size for p in order]
    budget = sum(sizes[:3]) + sizes[3] - 1  # room for three, not the fourth
    total = carry.pack(tmp_path / "mgif", out, 16, 0.25, max_bytes=budget)
    assert total == sum(sizes[:3])
    # The files beyond the budget from the first run are gone; the list names what was taken.
    assert sorted(p.stem for p in out.glob("*.webp")) == sorted(p.stem for p in order[:3])
    assert (out / "videos.txt").read_text().split() == [p.name for p in order[:3]]


def test_long_videos_are_cut_into_strips_webp_can_hold(carry, tmp_path, monkeypatch):
    monkeypatch.setattr(carry, "WEBP_MAX_SIDE", 16 * 4)  # four 16-pixel frames per strip
    _strips(tmp_path / "mgif", 6, frames=10)
    out = tmp_path / "carry"
    carry.pack(tmp_path / "mgif", out, 16, 0.0, max_bytes=float("inf"))
    source = read_video(tmp_path / "mgif" / "00000.png", 16).frames
    parts = [read_video(out / f"00000-{k}.webp", 16).frames for k in range(3)]
    assert [len(p) for p in parts] == [4, 3, 3]  # even: no one-frame part training would skip
    assert np.array_equal(np.concatenate(parts), source)


def test_a_rerun_reuses_good_files_and_rewrites_broken_ones(carry, tmp_path, monkeypatch):
    _strips(tmp_path / "mgif", 4)
    (tmp_path / "mgif" / "00001.png").rename(tmp_path / "mgif" / "a-b.png")  # a '-' in a name
    out = tmp_path / "carry"
    carry.pack(tmp_path / "mgif", out, 16, 0.0, max_bytes=float("inf"))
    names = sorted(p.name for p in out.glob("*.webp"))
    assert names == ["00000.webp", "00002.webp", "00003.webp", "a-b.webp"]
    good = {n: (out / n).read_bytes() for n in names}

    cut = out / "00002.webp"  # an interrupted write
    cut.write_bytes(good["00002.webp"][:40])
    (out / "00002.partial.webp").write_bytes(b"left over")
    encoded = []
    real_encode = carry.encode
    monkeypatch.setattr(carry, "encode", lambda f: encoded.append(len(f)) or real_encode(f))
    carry.pack(tmp_path / "mgif", out, 16, 0.0, max_bytes=float("inf"))
    assert encoded == [3]  # only the broken file was encoded again
    assert {n: (out / n).read_bytes() for n in names} == good
    assert sorted(p.name for p in out.glob("*.webp")) == names


def test_a_copy_that_does_not_decode_back_is_refused_and_removed(carry, tmp_path, monkeypatch):
    _strips(tmp_path / "mgif", 2)
    out = tmp_path / "carry"

    def lossy(frames):
        buffer = io.BytesIO()
        Image.fromarray(np.concatenate(list(frames), axis=1)).save(buffer, "WEBP", quality=50)
        return buffer.getvalue()

    monkeypatch.setattr(carry, "encode", lossy)
    with pytest.raises(SystemExit, match="does not decode to the same frames"):
        carry.pack(tmp_path / "mgif", out, 16, 0.0, max_bytes=float("inf"))
    assert list(out.iterdir()) == []
