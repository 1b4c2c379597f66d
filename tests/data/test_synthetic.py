import json

import numpy as np

from donkey.data.creature import KEYPOINT_NAMES
from donkey.data.manifest import load_manifest
from donkey.data.media import read_video
from donkey.data.synthetic import GAITS, pose_at, random_motion, read_sidecar, synthesize


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = synthesize(tmp_path / "a", 2, size=32, seed=7, frames=(3, 5))
    b = synthesize(tmp_path / "b", 2, size=32, seed=7, frames=(3, 5))
    c = synthesize(tmp_path / "c", 2, size=32, seed=8, frames=(3, 5))
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes()
        assert x.with_suffix(".json").read_bytes() == y.with_suffix(".json").read_bytes()
    assert any(x.read_bytes() != z.read_bytes() for x, z in zip(a, c))


def test_pairs_share_the_pose_sequence_and_differ_in_shape(tmp_path):
    synthesize(tmp_path, 3, size=48, seed=3, pairs=True, frames=(6, 8))
    manifest = load_manifest(tmp_path / "pairs.json")
    assert len(manifest.pairs) == 3
    for pair in manifest.pairs:
        a, b = read_sidecar(tmp_path / pair.a), read_sidecar(tmp_path / pair.b)
        assert [f["pose"] for f in a["frames"]] == [f["pose"] for f in b["frames"]]
        assert a["plan"] != b["plan"]
        assert pair.b_for_a == list(range(len(a["frames"]))) == pair.a_for_b
        va = read_video(tmp_path / pair.a, 48).frames
        vb = read_video(tmp_path / pair.b, 48).frames
        assert va.shape == vb.shape and np.abs(va.astype(int) - vb.astype(int)).mean() > 5


def test_rendered_gif_reads_back_with_the_project_reader(tmp_path):
    (path,) = synthesize(tmp_path, 1, size=40, seed=1, frames=(5, 5))
    clip = read_video(path, 40)
    assert clip.frames.shape == (5, 40, 40, 3)
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["keypoint_names"] == list(KEYPOINT_NAMES)
    kps = np.array([f["keypoints"] for f in side["frames"]])
    assert kps.shape == (5, len(KEYPOINT_NAMES), 2) and np.abs(kps).max() <= 1.0
    # the creature is drawn: its body keypoint lies on a non-background pixel
    x, y = kps[0, 0]
    px = clip.frames[0, int((y + 1) / 2 * 39), int((x + 1) / 2 * 39)]
    bg = clip.frames[0, 0, 0]
    assert np.abs(px.astype(int) - bg.astype(int)).sum() > 30


def test_gaits_are_periodic():
    rng = np.random.default_rng(0)
    for gait in GAITS:
        motion = random_motion(rng, 40, (gait,))
        motion.drift = 0.0
        motion.period = 8.0
        assert np.allclose(pose_at(motion, 3).hips, pose_at(motion, 11).hips, atol=1e-9)
        assert not np.allclose(pose_at(motion, 3).hips, pose_at(motion, 5).hips, atol=1e-3)


def test_transparent_creatures_are_the_same_creatures_with_their_mask_as_alpha(tmp_path):
    from PIL import Image, ImageSequence

    from donkey.data.creature import random_plan, render

    opaque = synthesize(tmp_path / "o", 1, size=48, seed=5, frames=(4, 4), fmt=".png")
    clear = synthesize(
        tmp_path / "t", 1, size=48, seed=5, frames=(4, 4), fmt=".png", transparent=True
    )
    gif = synthesize(tmp_path / "g", 1, size=48, seed=5, frames=(4, 4), transparent=True)
    # Same seed, same creature and motion: the sidecars are identical.
    assert opaque[0].with_suffix(".json").read_bytes() == clear[0].with_suffix(".json").read_bytes()
    strip = np.asarray(Image.open(clear[0]))
    assert strip.shape == (48, 4 * 48, 4)
    frames = strip.reshape(48, 4, 48, 4).transpose(1, 0, 2, 3)
    side = read_sidecar(clear[0])
    background = np.array(side["plan"]["background"], np.float64)
    rgb = (
        np.asarray(Image.open(opaque[0]).convert("RGB")).reshape(48, 4, 48, 3).transpose(1, 0, 2, 3)
    )
    alpha = frames[..., 3:] / 255.0
    composited = frames[..., :3] * alpha + background * (1 - alpha)
    assert np.abs(composited - rgb).mean() < 2  # the filters differ at edges (box, Lanczos)
    assert frames[:, 0, 0, 3].max() == 0 and (frames[..., 3] == 0).mean() > 0.5
    for t, record in enumerate(side["frames"]):
        x, y = record["keypoints"][0]  # the body's centre is covered
        assert frames[t, int((y + 1) / 2 * 47), int((x + 1) / 2 * 47), 3] == 255
    # The GIF keeps the mask: transparent where alpha < 128.
    with Image.open(gif[0]) as image:
        back = [np.asarray(f.convert("RGBA")) for f in ImageSequence.Iterator(image)]
    assert len(back) == 4
    for t, frame in enumerate(back):
        assert ((frame[..., 3] == 255) == (frames[t, ..., 3] >= 128)).all()
    # The alpha is the exact coverage of the 4x4 sub-pixels drawn: k/16 of 255, no ringing.
    rng = np.random.default_rng(2)
    motion = random_motion(rng, 3)
    plan = random_plan(rng, motion.legs)
    a = render(plan, pose_at(motion, 1), 32, transparent=True)[..., 3].astype(int)
    levels = 255 * np.arange(17) / 16
    assert np.abs(a[..., None] - levels).min(axis=-1).max() <= 1  # Pillow's fixed point
    assert len(np.unique(a)) > 5
