"""Identity changes (donkey/data/identity_change.py) and the pairs made from them
(donkey/app/identity_pairs.py), on small generated clips; one test reads real MGIF videos."""

from __future__ import annotations

import colorsys
import json

import numpy as np
import pytest
from PIL import Image

from donkey.app.identity_pairs import changed_name, make_identity_pairs
from donkey.data.datasets import select_split
from donkey.data.identity_change import IdentityChange, apply_identity, foreground_mask
from donkey.data.manifest import load_manifest
from donkey.data.media import read_video
from donkey.model.errors import DonkeyError
from tests.conftest import MGIF_TRAIN, needs_shared_data

WHITE = (255, 255, 255)
SEEDS = range(6)


def creature(frames: int = 4, size: int = 64, background=WHITE) -> np.ndarray:
    """(T, size, size, 3) uint8: a red body, a blue head and a dark leg on `background`,
    the head and leg moving from frame to frame."""
    ys, xs = np.mgrid[0:size, 0:size] / size
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        frame = np.empty((size, size, 3), np.uint8)
        frame[:] = background
        body = ((xs - 0.5) / 0.22) ** 2 + ((ys - 0.55) / 0.13) ** 2 < 1
        head = (xs - 0.72) ** 2 + (ys - 0.38 - 0.02 * t) ** 2 < 0.09**2
        leg = (np.abs(xs - 0.4 - 0.02 * t) < 0.03) & (ys > 0.55) & (ys < 0.8)
        frame[body] = (200, 40, 40)
        frame[head] = (40, 60, 190)
        frame[leg] = (30, 30, 30)
        out[t] = frame
    return out


def mask(frames: np.ndarray, background=WHITE) -> np.ndarray:
    return foreground_mask(frames, background) > 0.5  # (T, H, W)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def mean_colour(frames: np.ndarray) -> np.ndarray:
    return frames[mask(frames)].astype(float).mean(0)  # (3,)


def write_strip(path, frames: np.ndarray) -> None:
    Image.fromarray(np.concatenate(list(frames), axis=1)).save(path)


# ---------------------------------------------------------------- the change


def test_strength_zero_is_the_identity():
    clip = creature()
    alpha = (mask(clip) * 255).astype(np.uint8)
    change = IdentityChange.random(5, 0.0)
    assert change.is_identity
    assert np.array_equal(apply_identity(clip, change), clip)
    frames, out_alpha = apply_identity(clip, change, alpha)
    assert np.array_equal(frames, clip) and np.array_equal(out_alpha, alpha)
    assert not IdentityChange.random(5, 0.01).is_identity


def test_same_seed_gives_the_same_bytes_and_other_seeds_differ():
    clip = creature()
    a = apply_identity(clip, IdentityChange.random(11, 1.0))
    b = apply_identity(clip, IdentityChange.random(11, 1.0))
    c = apply_identity(clip, IdentityChange.random(12, 1.0))
    assert a.tobytes() == b.tobytes()
    assert IdentityChange.random([3, 4], 0.5) == IdentityChange.random([3, 4], 0.5)
    assert a.tobytes() != c.tobytes()


@pytest.mark.parametrize("background", [WHITE, (20, 90, 160)])
def test_background_stays_background_and_the_animal_stays_in_frame(background):
    clip = creature(background=background)
    for seed in SEEDS:
        out = apply_identity(clip, IdentityChange.random(seed, 1.0), background=background)
        is_background = (out == background).all(-1)  # (T, H, W)
        # Every pixel is the exact background colour or part of the (changed) animal.
        assert (is_background | mask(out, background)).mean() > 0.99
        ring = np.ones(out.shape[1:3], bool)
        ring[2:-2, 2:-2] = False
        assert is_background[:, ring].all(), f"seed {seed}: the animal reaches the border"
        assert is_background.mean() > 0.5


def test_with_alpha_the_uncovered_pixels_are_background():
    clip = creature()
    alpha = (mask(clip) * 255).astype(np.uint8)
    frames, out_alpha = apply_identity(clip, IdentityChange.random(2, 1.0), alpha)
    assert out_alpha.shape == alpha.shape and out_alpha.dtype == np.uint8
    assert (frames[out_alpha == 0] == 255).all()
    assert 0.5 < (out_alpha > 127).sum() / (alpha > 127).sum() < 2.0


def test_the_change_is_the_same_for_every_frame():
    clip = np.repeat(creature(1), 5, axis=0)
    for seed in SEEDS:
        out = apply_identity(clip, IdentityChange.random(seed, 1.0))
        assert all(np.array_equal(out[0], frame) for frame in out[1:])


def test_strength_one_changes_the_colours():
    clip = creature()
    before = mean_colour(clip)
    black = clip.copy()
    black[mask(clip)] = 0  # a silhouette, as the 16-bit gray MGIF videos are
    for seed in SEEDS:
        change = IdentityChange.random(seed, 1.0)
        assert np.abs(mean_colour(apply_identity(clip, change)) - before).sum() > 60
        r, g, b = mean_colour(apply_identity(black, change)) / 255
        assert max(r, g, b) > 0.05 and colorsys.rgb_to_hsv(r, g, b)[1] > 0.3, seed


def test_the_shape_changes_with_the_strength():
    # Measured on the warped alpha: masks thresholded from colours grow by the pixels that
    # bilinear sampling mixes with the background at the edge.
    clip = creature(size=96)
    alpha = (mask(clip) * 255).astype(np.uint8)

    def overlap(seed: int, strength: float) -> float:
        _, out = apply_identity(clip, IdentityChange.random(seed, strength), alpha)
        return iou(alpha > 127, out > 127)

    for seed in SEEDS:
        strong, weak = overlap(seed, 1.0), overlap(seed, 0.1)
        assert strong < 0.95 and weak > 0.9, (seed, strong, weak)


def test_bad_inputs_are_one_line_errors():
    change = IdentityChange.random(0, 1.0)
    with pytest.raises(DonkeyError, match="strength"):
        IdentityChange.random(0, 1.5)
    with pytest.raises(DonkeyError, match="uint8"):
        apply_identity(creature().astype(np.float32), change)
    with pytest.raises(DonkeyError, match="alpha"):
        apply_identity(creature(), change, np.zeros((1, 64, 64), np.uint8))


# ---------------------------------------------------------------- pairs


@pytest.fixture
def video_folder(tmp_path):
    folder = tmp_path / "videos with spaces"
    folder.mkdir()
    for i in range(3):
        write_strip(folder / f"clip {i}.png", creature(3 + i, 48))
    write_strip(folder / "still.png", creature(1, 48))  # one frame: rejected
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    return folder


def test_pairs_manifest_round_trips_with_identity_mappings(video_folder, tmp_path):
    out = tmp_path / "pairs out"
    seen = []
    path = make_identity_pairs(
        video_folder, out, per_video=2, seed=4, strength=0.8, split="all", size=48,
        progress=seen.append,
    )  # fmt: skip
    assert path == out / "pairs.json" and seen == [1, 2, 3, 4, 5]
    manifest = load_manifest(path)
    assert manifest.root.resolve() == out.resolve()
    assert manifest.params == {
        "kind": "identity-change",
        "seed": 4,
        "strength": 0.8,
        "per_video": 2,
        "split": "all",
        "val_fraction": 0.1,
        "size": 48,
    }
    assert len(manifest.pairs) == 6
    assert sorted(r.a for r in manifest.rejected) == ["broken.png", "still.png"]
    for i in range(3):
        a = read_video(out / f"clip {i}.png", 48).frames
        assert np.array_equal(a, creature(3 + i, 48))
        for k in range(2):
            (pair,) = [p for p in manifest.pairs if p.b == changed_name(f"clip {i}", k)]
            assert pair.a == f"clip {i}.png"
            assert pair.b_for_a == pair.a_for_b == list(range(3 + i))
            assert (pair.residual, pair.unique, pair.score) == (0.0, 1.0, 0.0)
            b = read_video(manifest.path_of(pair.b), 48).frames
            assert b.shape == a.shape and not np.array_equal(a, b)
    # Deterministic: a second run writes the same bytes.
    again = tmp_path / "again"
    make_identity_pairs(video_folder, again, 2, 4, 0.8, split="all", size=48)
    for name in sorted(p.name for p in out.iterdir()):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_the_split_is_donkey_trains(video_folder, tmp_path):
    files = sorted(video_folder.glob("clip *.png"))
    for split in ("train", "val"):
        chosen = select_split(files, split, 0.5)
        if not chosen:
            continue
        path = make_identity_pairs(
            files, tmp_path / split, 1, 0, 1.0, split=split, val_fraction=0.5
        )
        names = {p.a for p in load_manifest(path).pairs}
        assert names == {f.name for f in chosen}
        assert json.loads(path.read_text())["params"]["split"] == split


def test_an_existing_folder_is_refused_unless_overwrite(video_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(DonkeyError, match="not empty") as info:
        make_identity_pairs(video_folder, out, 1, 0, 1.0, split="all", size=48)
    assert "\n" not in str(info.value) and not (out / "pairs.json").exists()
    make_identity_pairs(video_folder, out, 1, 0, 1.0, split="all", size=48, overwrite=True)
    assert (out / "pairs.json").exists() and (out / "mine.txt").read_text() == "keep"
    with pytest.raises(DonkeyError, match="holds the input"):
        make_identity_pairs(video_folder, video_folder, 1, 0, 1.0, split="all", overwrite=True)


def test_nothing_readable_is_an_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nothing")
    with pytest.raises(DonkeyError, match="none of the 1 videos"):
        make_identity_pairs([bad], tmp_path / "out", 1, 0, 1.0, split="all")
    assert not (tmp_path / "out" / "pairs.json").exists()


@needs_shared_data()
def test_real_mgif_videos(tmp_path):
    files = sorted(MGIF_TRAIN.glob("*.png"))[:3]
    path = make_identity_pairs(files, tmp_path / "mgif", 1, 0, 1.0, split="all")
    manifest = load_manifest(path)
    assert len(manifest.pairs) == 3 and not manifest.rejected
    for pair in manifest.pairs:
        a = read_video(manifest.path_of(pair.a), 128).frames
        b = read_video(manifest.path_of(pair.b), 128).frames
        assert a.shape == b.shape and pair.b_for_a == list(range(len(a)))
        # Nothing is drawn past the original's box or a 2-pixel margin, whichever is wider,
        # except at an edge the original reaches (the animal was cut off there already).
        ys, xs = np.nonzero(foreground_mask(a).max(0) > 0)
        drawn_ys, drawn_xs = np.nonzero((b != 255).any(-1).any(0))
        for lo, drawn in ((xs.min(), drawn_xs.min()), (ys.min(), drawn_ys.min())):
            assert lo == 0 or drawn >= min(lo, 2), (pair.a, lo, drawn)
        for hi, drawn in ((xs.max(), drawn_xs.max()), (ys.max(), drawn_ys.max())):
            assert hi == 127 or drawn <= max(hi, 125), (pair.a, hi, drawn)
        assert 0.5 < mask(b).sum() / mask(a).sum() < 2.0
