"""`donkey pairs` and `donkey convert` never replace a file unasked, nor their own input: synth's
exact pairs.json, a hand-edited clusters_template.csv and a trained checkpoint were silently
replaced, and convert wrote a mostly random model from a checkpoint of another config."""

from __future__ import annotations

import os
import re

import pytest
import torch

from donkey.data.manifest import load_manifest
from donkey.data.synthetic import synthesize
from donkey.model.checkpoint import load_networks
from donkey.model.config import load_config
from donkey.model.convert import official_layout
from donkey.model.networks import Networks
from tests.conftest import CONFIGS, error_lines, invoke


def listing(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture()
def videos(tmp_path):
    """3 synthetic pairs and the exact pairs.json synth writes, under a path with a space."""
    folder = tmp_path / "synth pairs"
    synthesize(folder, 3, size=32, seed=5, pairs=True, frames=(6, 6))
    return folder


SYNTH = ("--keypoints", "synth")


def test_pairs_refuses_an_existing_manifest_unless_overwrite(runner, videos, tmp_path):
    manifest = videos / "pairs.json"
    exact = manifest.read_bytes()
    message = f"error: {manifest}: exists; pass --overwrite to replace it, or give another -o"
    code, text = invoke(runner, "pairs", videos, "-o", manifest, *SYNTH)
    assert code == 1 and error_lines(text) == [message], text
    assert manifest.read_bytes() == exact
    # before any work: the folder is not even listed
    code, text = invoke(runner, "pairs", tmp_path / "missing", "-o", manifest, *SYNTH)
    assert code == 1 and error_lines(text) == [message], text

    code, text = invoke(runner, "pairs", videos, "-o", manifest, *SYNTH, "--overwrite")
    assert code == 0, text
    assert manifest.read_bytes() != exact and load_manifest(manifest).params


def test_pairs_keeps_hand_edited_sheets_unless_overwrite(runner, videos, tmp_path):
    sheets = tmp_path / "sheets"
    code, text = invoke(
        runner, "pairs", videos, "-o", tmp_path / "p.json", "--sheets", sheets, *SYNTH
    )
    assert code == 0, text
    template = sheets / "clusters_template.csv"
    template.write_text("file,cluster\npair_0000_a.gif,mine\npair_0000_b.gif,mine\n")
    (sheets / "cluster_gone.png").write_bytes(b"an earlier run's cluster")
    before = listing(tmp_path)

    code, text = invoke(
        runner, "pairs", videos, "-o", tmp_path / "p2.json", "--sheets", sheets, *SYNTH
    )
    assert code == 1, text
    (line,) = error_lines(text)
    assert line.startswith(f"error: {sheets / 'index.html'}: exists (and ")
    assert "pass --overwrite" in line and "another --sheets folder" in line
    assert listing(tmp_path) == before
    # a template alone (index.html removed by hand) is still refused, by its name
    (sheets / "index.html").unlink()
    code, text = invoke(
        runner, "pairs", videos, "-o", tmp_path / "p2.json", "--sheets", sheets, *SYNTH
    )
    assert code == 1 and error_lines(text)[0].startswith(f"error: {template}: exists"), text
    assert not (tmp_path / "p2.json").exists()

    # passed back with --clusters into the same folder: refused even with --overwrite
    code, text = invoke(
        runner, "pairs", videos, "-o", tmp_path / "p3.json", "--sheets", sheets,
        "--clusters", template, *SYNTH, "--overwrite",
    )  # fmt: skip
    assert code == 1 and error_lines(text) == [
        f"error: {template}: is the --clusters input, and --sheets {sheets} would rewrite it; "
        "copy it elsewhere or give another --sheets folder"
    ], text
    assert "mine" in template.read_text() and not (tmp_path / "p3.json").exists()

    code, text = invoke(
        runner, "pairs", videos, "-o", tmp_path / "p2.json", "--sheets", sheets, *SYNTH,
        "--overwrite",
    )  # fmt: skip
    assert code == 0, text
    assert "mine" not in template.read_text() and (sheets / "index.html").exists()
    assert not (sheets / "cluster_gone.png").exists() and list(sheets.glob("cluster_*.png"))


def test_pairs_cluster_csv_errors_name_the_csv(runner, videos, tmp_path):
    clusters = tmp_path / "my clusters.csv"
    clusters.write_text("pair_0000_a.gif,x\nnonexist.gif,x\n")
    out = tmp_path / "p.json"
    code, text = invoke(runner, "pairs", videos, "-o", out, "--clusters", clusters, *SYNTH)
    assert code == 1 and error_lines(text) == [
        f"error: {clusters}: names files not in {videos}: nonexist.gif"
    ], text
    assert not out.exists()
    before = clusters.read_bytes()
    code, text = invoke(
        runner, "pairs", videos, "-o", clusters, "--clusters", clusters, *SYNTH, "--overwrite"
    )
    assert code == 1 and error_lines(text) == [
        f"error: {clusters}: is the --clusters input; give the manifest another name"
    ], text
    assert clusters.read_bytes() == before


@pytest.fixture()
def official(tmp_path):
    """A Monkey-Net-layout file of the tiny model (attention left out, as Monkey-Net has none)."""
    torch.manual_seed(0)
    path = tmp_path / "official dir" / "tiny.pth.tar"
    path.parent.mkdir()
    torch.save(official_layout(Networks(load_config("tiny").model)), path)
    return path


def test_convert_refuses_an_existing_output_unless_overwrite(runner, official, tmp_path):
    trained = tmp_path / "trained.ckpt"
    trained.write_bytes(b"weights")
    code, text = invoke(runner, "convert", official, "-o", trained, "--config", "tiny")
    assert code == 1 and error_lines(text) == [
        f"error: {trained}: exists; convert would replace it (give another -o, or --overwrite)"
    ], text
    assert trained.read_bytes() == b"weights"
    args = ("convert", official, "-o", trained, "--config", "tiny", "--overwrite")
    code, text = invoke(runner, *args)
    assert code == 0 and f"wrote {trained}: 133 tensors mapped, 0 unmapped" in text, text
    assert load_networks(trained).config.num_kp == 4


def test_convert_never_writes_over_its_input(runner, official, tmp_path):
    link, hard = tmp_path / "link.ckpt", tmp_path / "hard.ckpt"
    link.symlink_to(official)
    os.link(official, hard)
    before = official.read_bytes()
    for target in (
        official,
        link,
        hard,
        official.parent / ".." / official.parent.name / official.name,
    ):
        code, text = invoke(
            runner, "convert", official, "-o", target, "--config", "tiny", "--overwrite"
        )
        assert code == 1 and error_lines(text) == [
            f"error: {target}: is the input checkpoint; give the output another name"
        ], (target, text)
    assert official.read_bytes() == before


def test_convert_refuses_unwritable_outputs_up_front(runner, official, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    before = listing(tmp_path)
    for target, message in (
        (tmp_path, f"{tmp_path}: is a folder; -o takes the checkpoint file to write"),
        (tmp_path / "m.pth", f"{tmp_path / 'm.pth'}: unsupported output format '.pth'"),
        (tmp_path / "m", f"{tmp_path / 'm'}: unsupported output format '(none)'"),
        (blocker / "m.ckpt", f"{blocker / 'm.ckpt'}: cannot write there ({blocker} is a file)"),
    ):
        code, text = invoke(runner, "convert", official, "-o", target, "--config", "tiny")
        assert code == 1 and len(error_lines(text)) == 1 and message in text, (target, text)
    assert listing(tmp_path) == before


def test_convert_refuses_a_file_of_another_config(runner, official, tmp_path):
    """Into a model of other sizes most tensors do not fit: refused, nothing written."""
    other = tmp_path / "tiny wider.yaml"
    other.write_text(
        (CONFIGS / "tiny.yaml").read_text().replace("block_expansion: 4", "block_expansion: 8")
    )
    out = tmp_path / "c.ckpt"
    code, text = invoke(runner, "convert", official, "-o", out, "--config", other)
    assert code == 1, text
    (line,) = error_lines(text)
    # 116: the tiny model's 133 less its BatchNorm step counters, which need not fit
    assert re.fullmatch(
        rf"error: {re.escape(str(official))}: only \d+ of 116 tensors fit config "
        rf"{re.escape(str(other))} \(first missing: kp_detector\.\S+\); is --config right\?",
        line,
    ), line
    assert not out.exists()
