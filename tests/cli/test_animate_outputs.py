"""`donkey animate` and outputs that already exist: refused in one line before any work,
kept with --skip-existing, replaced with --overwrite; single files and batches alike."""

from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from donkey.cli.app import app
from donkey.data.media import read_frames
from donkey.data.writers import write_video
from tests.conftest import ROOT, error_lines, invoke, make_creature_frames

PRECIOUS = b"my precious file"


@pytest.fixture()
def single(tmp_path):
    """A source, a 5-frame driving and an existing file where the output goes."""
    folder = tmp_path / "a folder with spaces"
    folder.mkdir()
    source, driving = folder / "cat.png", folder / "trot.gif"
    Image.fromarray(make_creature_frames(1, 40, seed=1)[0]).save(source)
    write_video(driving, make_creature_frames(5, 40, seed=2))
    output = folder / "keep.gif"
    output.write_bytes(PRECIOUS)
    return source, driving, output


@pytest.fixture()
def batch(tmp_path):
    """2 sources x 1 driving into `out`, where cat__trot.gif is already taken by junk."""
    sources, drivings, out = tmp_path / "sources", tmp_path / "drivings", tmp_path / "out dir"
    for folder in (sources, drivings, out):
        folder.mkdir()
    for i, name in enumerate(("cat.png", "dog.png")):
        Image.fromarray(make_creature_frames(1, 40, seed=i)[0]).save(sources / name)
    write_video(drivings / "trot.gif", make_creature_frames(4, 40, seed=5))
    (out / "cat__trot.gif").write_bytes(PRECIOUS)
    return sources, drivings, out


def test_an_existing_output_is_refused_before_the_model_loads(runner, single, tmp_path):
    source, driving, output = single
    missing = tmp_path / "no.ckpt"  # never reached: the refusal comes first
    code, text = invoke(runner, "animate", source, driving, "-o", output, "--model", missing)
    assert code == 1
    assert error_lines(text) == [
        f"error: {output}: exists; pass --overwrite to replace it (or --skip-existing to keep it)"
    ]
    assert text.strip() == error_lines(text)[0]
    assert output.read_bytes() == PRECIOUS
    assert sorted(p.name for p in output.parent.iterdir()) == ["cat.png", "keep.gif", "trot.gif"]
    # Refused without importing PyTorch: the same command in a fresh interpreter.
    code = (
        "import sys; from typer.testing import CliRunner; from donkey.cli.app import app; "
        f"r = CliRunner().invoke(app, ['animate', {str(source)!r}, {str(driving)!r}, "
        f"'-o', {str(output)!r}]); print(r.exit_code, 'torch' in sys.modules)"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert probe.stdout.split() == ["1", "False"], probe.stderr


def test_skip_existing_keeps_a_single_output(runner, single, tmp_path):
    source, driving, output = single
    missing = tmp_path / "no.ckpt"  # nothing to do, so no model either
    args = ["animate", source, driving, "-o", output, "--model", missing, "--skip-existing"]
    code, text = invoke(runner, *args)
    assert code == 0, text
    assert text.strip() == f"{output}: exists; left as it is (--skip-existing)"
    assert output.read_bytes() == PRECIOUS


def test_overwrite_replaces_a_single_output(runner, tiny_ckpt, single):
    source, driving, output = single
    args = ["animate", source, driving, "-o", output, "--model", tiny_ckpt, "--device", "cpu"]
    code, text = invoke(runner, *args, "--overwrite")
    assert code == 0, text
    assert f"wrote {output} (5 frames" in text
    # The source's own 40 x 40, not the tiny model's 32 (--output-size source, the default).
    assert read_frames(output).frames.shape == (5, 40, 40, 3)
    assert sorted(p.name for p in output.parent.iterdir()) == ["cat.png", "keep.gif", "trot.gif"]
    # Now it is a finished result, and still refused without an option.
    finished = output.read_bytes()
    code, text = invoke(runner, *args)
    assert code == 1 and len(error_lines(text)) == 1 and "pass --overwrite" in text
    assert output.read_bytes() == finished


def test_skip_existing_and_overwrite_together_are_refused(runner, single, batch, tmp_path):
    source, driving, output = single
    sources, drivings, out = batch
    missing = tmp_path / "no.ckpt"
    for inputs, target in (((source, driving), output), ((sources, drivings), out)):
        code, text = invoke(
            runner, "animate", *inputs, "-o", target, "--model", missing,
            "--skip-existing", "--overwrite",
        )  # fmt: skip
        assert code == 1
        assert error_lines(text) == [
            "error: --skip-existing and --overwrite contradict each other; give one"
        ], text
    assert output.read_bytes() == PRECIOUS
    assert [p.name for p in out.iterdir()] == ["cat__trot.gif"]
    assert (out / "cat__trot.gif").read_bytes() == PRECIOUS


def test_a_batch_with_existing_outputs_is_refused_before_any_work(runner, batch, tmp_path):
    sources, drivings, out = batch
    missing = tmp_path / "no.ckpt"  # never reached: the refusal comes first
    code, text = invoke(runner, "animate", sources, drivings, "-o", out, "--model", missing)
    assert code == 1
    assert error_lines(text) == [
        f"error: {(out / 'cat__trot.gif').resolve()}: exists (1 of the 2 outputs this batch "
        "would write do); pass --overwrite to replace them, or --skip-existing to keep them"
    ], text
    assert text.strip() == error_lines(text)[0]  # no table, no warning, no progress
    assert [p.name for p in out.iterdir()] == ["cat__trot.gif"]  # nothing written
    assert (out / "cat__trot.gif").read_bytes() == PRECIOUS


def test_batch_skip_existing_keeps_finished_outputs(runner, tiny_ckpt, batch):
    sources, drivings, out = batch
    args = ["animate", sources, drivings, "-o", out, "--model", tiny_ckpt, "--device", "cpu"]
    (out / "cat__trot.gif").unlink()
    code, text = invoke(runner, *args, "--overwrite")  # an empty folder: written as without it
    assert code == 0, text
    finished = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(finished) == ["cat__trot.gif", "dog__trot.gif"]
    (out / "dog__trot.gif").unlink()
    code, text = invoke(runner, *args, "--skip-existing")
    assert code == 0, text
    assert "written          │     1" in text and "skipped (exists) │     1" in text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == finished


def test_batch_overwrite_replaces_existing_outputs(runner, tiny_ckpt, batch):
    sources, drivings, out = batch
    args = ["animate", sources, drivings, "-o", out, "--model", tiny_ckpt, "--device", "cpu"]
    code, text = invoke(runner, *args, "--overwrite")
    assert code == 0, text
    assert "written          │     2" in text and "skipped (exists) │     0" in text
    assert sorted(p.name for p in out.iterdir()) == ["cat__trot.gif", "dog__trot.gif"]
    for name in ("cat__trot.gif", "dog__trot.gif"):
        assert read_frames(out / name).frames.shape == (4, 40, 40, 3)  # the sources' size
    # A second run without an option names the first of the two it would replace.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, text = invoke(runner, *args)
    assert code == 1 and "cat__trot.gif: exists (2 of the 2 outputs" in text, text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_help_explains_both_options(runner):
    result = runner.invoke(app, ["animate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--overwrite" in result.output and "--skip-existing" in result.output
    assert "refused before any work" in result.output


def test_a_folder_of_strips_is_one_video_with_a_warning_and_a_pair_list_splits_it(
    runner, tiny_ckpt, single, tmp_path
):
    source, _, _ = single
    strips = tmp_path / "strips"
    strips.mkdir()
    for i, name in enumerate(("a.png", "b.png")):
        write_video(strips / name, make_creature_frames(3, 40, seed=10 + i))  # 120 x 40 strips
    args = ["--model", tiny_ckpt, "--device", "cpu"]
    # A frame folder of 3:1 frames is as much a driving video as one of squares.
    code, output = invoke(runner, "animate", source, strips, "-o", tmp_path / "one.gif", *args)
    assert code == 0, output
    assert "every image in it looks like a PNG strip" in output and "--pair-list" in output
    assert len(read_frames(tmp_path / "one.gif").frames) == 2
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"{source.name},a.png\n{source.name},b.png\n")
    code, output = invoke(
        runner, "animate", source, strips, "-o", tmp_path / "res", "--pair-list", pairs, *args
    )
    assert code == 0, output
    made = sorted((tmp_path / "res").iterdir())
    assert [p.name for p in made] == ["cat__a.png.gif", "cat__b.png.gif"]
    assert [len(read_frames(p).frames) for p in made] == [3, 3]
    frames = tmp_path / "frames"  # square stills: no warning
    frames.mkdir()
    for i, frame in enumerate(make_creature_frames(3, 40, seed=12)):
        Image.fromarray(frame).save(frames / f"{i:03d}.png")
    code, output = invoke(runner, "animate", source, frames, "-o", tmp_path / "sq.gif", *args)
    assert code == 0 and "warning" not in output, output
