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
