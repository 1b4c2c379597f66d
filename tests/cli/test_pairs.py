import json
import shutil

import pytest
from PIL import Image

from donkey.cli.app import app
from donkey.data.manifest import load_manifest
from donkey.data.media import read_frames
from donkey.data.synthetic import read_sidecar, synthesize
from tests.conftest import MGIF_TRAIN


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """6 planted pairs (one a time-shifted copy), 6 unrelated videos, one folder."""
    root = tmp_path_factory.mktemp("planted pairs")
    gaits = ("walk", "gallop", "flap")
    synthesize(root / "p", 6, size=32, seed=4, pairs=True, frames=(6, 6), gaits=gaits)
    synthesize(root / "u", 6, size=32, seed=9, frames=(6, 6), gaits=gaits)
    folder = root / "all videos"
    folder.mkdir()
    for sub in ("p", "u"):
        for f in (root / sub).iterdir():
            if f.name != "pairs.json":
                shutil.copy(f, folder / f.name)
    # pair 5's B becomes A shifted in time by 2 frames (same creature, same poses)
    side = read_sidecar(folder / "pair_0005_a.gif")
    frames = [Image.open(folder / "pair_0005_a.gif").copy()]
    clip = read_frames(folder / "pair_0005_a.gif").frames
    shifted = [Image.fromarray(clip[(t + 2) % len(clip)]) for t in range(len(clip))]
    shifted[0].save(
        folder / "pair_0005_b.gif", save_all=True, append_images=shifted[1:], duration=80
    )
    side["frames"] = [side["frames"][(t + 2) % len(clip)] for t in range(len(clip))]
    (folder / "pair_0005_b.json").write_text(json.dumps(side))
    assert frames
    return folder


def test_planted_pairs_are_recovered_and_other_gaits_rejected(runner, planted, tmp_path):
    out = tmp_path / "pairs.json"
    sheets = tmp_path / "sheets"
    result = runner.invoke(
        app,
        [
            "pairs",
            str(planted),
            "--keypoints",
            "synth",
            "-o",
            str(out),
            "--alpha",
            "0.02",
            "--threshold",
            "0",
            "--sheets",
            str(sheets),
            # pair 5 is a time-shifted copy of one creature: a duplicate by construction,
            # kept here to check the frame mapping (the default rejects it, test below)
            "--min-difference",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    gait = {f.name: read_sidecar(f)["motion"]["gait"] for f in planted.glob("*.gif")}
    kept = {(p.a, p.b): p for p in manifest.pairs}
    for i in range(6):
        a, b = f"pair_{i:04d}_a.gif", f"pair_{i:04d}_b.gif"
        assert (a, b) in kept, f"planted pair {i} not recovered"
        expected = [(t - 2) % 6 for t in range(6)] if i == 5 else list(range(6))
        assert kept[(a, b)].b_for_a == expected
    for p in manifest.pairs:
        assert gait[p.a] == gait[p.b], f"{p.a} ({gait[p.a]}) paired with {p.b} ({gait[p.b]})"
    assert manifest.rejected and all(r.reason for r in manifest.rejected)
    assert (sheets / "index.html").exists() and list(sheets.glob("cluster_*.png"))
    template = (sheets / "clusters_template.csv").read_text().splitlines()
    assert template[0] == "file,cluster" and len(template) > 2
    assert "kept pairs" in result.output


def test_duplicates_are_rejected_by_default(runner, planted, tmp_path):
    out = tmp_path / "pairs.json"
    args = ["pairs", str(planted), "--keypoints", "synth", "--alpha", "0.02", "--threshold", "0"]
    result = runner.invoke(app, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    kept = {(p.a, p.b) for p in manifest.pairs}
    assert ("pair_0005_a.gif", "pair_0005_b.gif") not in kept
    reasons = {(r.a, r.b): r.reason for r in manifest.rejected}
    assert reasons[("pair_0005_a.gif", "pair_0005_b.gif")].startswith(
        "duplicate frames: mean difference"
    )
    # two different creatures in the same poses are not duplicates
    assert {(f"pair_{i:04d}_a.gif", f"pair_{i:04d}_b.gif") for i in range(5)} <= kept
    assert manifest.params["min_difference"] == 0.008
    assert "rejected: duplicate" in result.output


def test_manual_clusters_csv(runner, planted, tmp_path):
    csv_path = tmp_path / "clusters.csv"
    csv_path.write_text("file,cluster\npair_0000_a.gif,x\npair_0000_b.gif,x\ncreature_0000.gif,y\n")
    out = tmp_path / "pairs.json"
    result = runner.invoke(
        app,
        [
            "pairs",
            str(planted),
            "--keypoints",
            "synth",
            "-o",
            str(out),
            "--clusters",
            str(csv_path),
            "--alpha",
            "0.02",
            "--threshold",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    assert [(p.a, p.b) for p in manifest.pairs] == [("pair_0000_a.gif", "pair_0000_b.gif")]
    bad = tmp_path / "bad.csv"
    bad.write_text("nope.gif,x\npair_0000_a.gif,x\n")
    retry = tmp_path / "retry.json"
    result = runner.invoke(
        app,
        ["pairs", str(planted), "--keypoints", "synth", "-o", str(retry), "--clusters", str(bad)],
    )
    assert result.exit_code == 1
    assert f"error: {bad}: names files not in {planted}: nope.gif" in result.output
    assert not retry.exists()


def test_pairs_with_a_model_runs_end_to_end(runner, planted, tiny_ckpt, tmp_path):
    out = tmp_path / "model pairs.json"
    result = runner.invoke(
        app,
        [
            "pairs",
            str(planted),
            "--model",
            str(tiny_ckpt),
            "-o",
            str(out),
            "--device",
            "cpu",
            "--appearance-min",
            "-1",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    assert len(manifest.pairs) + len(manifest.rejected) > 0
    assert MGIF_TRAIN  # the real-data run is in the closing note, not a test


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--alpha", "nan", "--alpha must be a number from 0 to 100, got nan"),
        ("--threshold", "inf", "--threshold must be a number from -100 to 100, got inf"),
        ("--max-repeated", "1.5", "--max-repeated must be a number from 0 to 1, got 1.5"),
        ("--min-difference", "-0.1", "--min-difference must be a number from 0 to 1"),
        ("--appearance-min", "nan", "--appearance-min must be a number from -1 to 1"),
        ("--motion-max", "-inf", "--motion-max must be a number from -100 to 100"),
        ("--val-fraction", "nan", "--val-fraction must be in [0, 1), got nan"),
    ],
)
def test_pairs_refuses_numbers_outside_their_range_before_reading(
    runner, tmp_path, option, value, message
):
    out = tmp_path / "pairs.json"
    args = ["pairs", str(tmp_path), "-o", str(out), "--keypoints", "synth", option, value]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()
