"""Hostile and careless inputs through the commands: one-line refusals, nothing left behind."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from donkey.cli.app import app
from donkey.data.media import read_frames
from donkey.data.writers import write_video
from tests.conftest import error_lines, invoke, make_creature_frames
from tests.hostile import corpus, good_gif


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture()
def batch_inputs(tmp_path):
    sources, drivings = tmp_path / "sources", tmp_path / "drivings"
    sources.mkdir()
    drivings.mkdir()
    for i in range(2):
        Image.fromarray(make_creature_frames(1, 40, seed=i)[0]).save(sources / f"animal{i}.png")
    write_video(drivings / "walk.gif", make_creature_frames(4, 40, seed=5))
    bad = corpus(tmp_path / "bad")
    for name in ("screen_bomb.gif", "garbage.gif"):
        os.replace(bad[name], sources / name)
    for name in ("frame_bomb.gif", "empty.png", "truncated.gif"):
        os.replace(bad[name], drivings / name)
    return sources, drivings


def test_bad_files_never_stop_a_batch(runner, tiny_ckpt, batch_inputs, tmp_path):
    sources, drivings = batch_inputs
    out = tmp_path / "out"
    code, text = invoke(
        runner, "animate", sources, drivings, "-o", out, "--model", tiny_ckpt, "--device", "cpu"
    )
    assert code == 1
    # 4 sources x 4 drivings: the 2 good sources x 1 good driving are written.
    assert sorted(p.name for p in out.iterdir()) == ["animal0__walk.gif", "animal1__walk.gif"]
    assert read_frames(out / "animal0__walk.gif").frames.shape == (4, 40, 40, 3)  # its own size
    for reason in ("per-frame read budget", "1.92 gigapixels", "empty file", "truncated"):
        assert reason in text, text


def test_folder_inputs_need_an_output_folder(runner, tiny_ckpt, batch_inputs, tmp_path):
    sources, drivings = batch_inputs
    before = listing(tmp_path)
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    cases = [
        (tmp_path / "single.gif", "-o must be a folder, not a file name"),
        (blocker, "exists and is not a folder"),
        (blocker / "sub" / "out", "is a file"),
        (sources, "is also an input folder"),
    ]
    for target, message in cases:
        code, text = invoke(
            runner, "animate", sources, drivings, "-o", target, "--model", tiny_ckpt
        )
        assert code == 1 and len(error_lines(text)) == 1 and message in text, text
    assert listing(tmp_path) == before | {"a file"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: no unwritable folder")
def test_unwritable_output_folder_is_one_line(runner, tiny_ckpt, batch_inputs, tmp_path):
    sources, drivings = batch_inputs
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, text = invoke(runner, "animate", sources, drivings, "-o", locked / "out")
    assert code == 1 and "not writable" in text


def test_output_names_are_stable_and_skip_existing_trusts_only_complete_files(
    runner, tiny_ckpt, tmp_path
):
    sources, drivings, out = tmp_path / "s", tmp_path / "d", tmp_path / "out"
    sources.mkdir()
    drivings.mkdir()
    frame = make_creature_frames(2, 40, seed=1)
    Image.fromarray(frame[0]).save(sources / "cat.png")
    Image.fromarray(frame[1]).save(sources / "cat.gif")
    write_video(drivings / "trot.gif", make_creature_frames(5, 40, seed=2))
    args = ["animate", sources, drivings, "-o", out, "--model", tiny_ckpt, "--device", "cpu"]
    code, text = invoke(runner, *args)
    assert code == 0, text
    names = sorted(p.name for p in out.iterdir())
    assert names == ["cat.gif__trot.gif", "cat__trot.gif"]
    first = (out / "cat__trot.gif").read_bytes()

    # cat.gif goes away: cat.png keeps its name and its (complete) output is skipped.
    (sources / "cat.gif").unlink()
    (out / "cat.gif__trot.gif").write_bytes(b"")  # a 0-byte output is not trusted ...
    stale = out / ".cat__trot.abcd1234.tmp.gif"  # ... and a killed run's temporary goes
    stale.write_bytes(b"half")
    mtime = (out / "cat__trot.gif").stat().st_mtime_ns
    time.sleep(0.01)
    code, text = invoke(runner, *args, "--skip-existing")
    assert code == 0, text
    assert (out / "cat__trot.gif").stat().st_mtime_ns == mtime
    assert (out / "cat__trot.gif").read_bytes() == first
    assert not stale.exists()

    # Half an output, or one with the wrong frame count, is written again.
    (out / "cat__trot.gif").write_bytes(first[: len(first) // 2])
    code, text = invoke(runner, *args, "--skip-existing")
    assert code == 0, text
    assert read_frames(out / "cat__trot.gif").frames.shape[0] == 5
    write_video(out / "cat__trot.gif", make_creature_frames(3, 32))
    code, text = invoke(runner, *args, "--skip-existing")
    assert read_frames(out / "cat__trot.gif").frames.shape[0] == 5
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_hostile_files_through_single_animate_are_one_line(runner, tiny_ckpt, tmp_path):
    files = corpus(tmp_path / "bad")
    good = good_gif(tmp_path / "good.gif", frames=3, size=32)
    for name, path in files.items():
        for source, driving in ((path, good), (good, path)):
            out = tmp_path / "out.gif"
            code, text = invoke(runner, "animate", source, driving, "-o", out, "--model", tiny_ckpt)
            if source == path and name in ("frame_bomb.gif", "truncated.gif"):
                # As a source only the first frame is read, and it is whole: a correct result
                # (at the source's own size: --output-size source).
                with Image.open(path) as picture:
                    own = picture.size[::-1]
                assert code == 0 and read_frames(out).frames.shape == (3, *own, 3), text
                out.unlink()
                continue
            assert code == 1 and len(error_lines(text)) == 1, (name, text)
            assert str(path) in error_lines(text)[0]
            assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_pair_list_hostile_contents(runner, tiny_ckpt, tmp_path):
    sources, drivings = tmp_path / "s", tmp_path / "d"
    sources.mkdir()
    drivings.mkdir()
    Image.fromarray(make_creature_frames(1, 32)[0]).save(sources / "a.png")
    write_video(drivings / "x.gif", make_creature_frames(3, 32))
    (tmp_path / "secret.png").write_bytes(b"x")
    (sources / "link.png").symlink_to(tmp_path / "secret.png")
    cases = {
        b"\x89PNG\r\n\x1a\n\x00\x00\x00binary": "binary file",
        b"a.png,\xff\xfe.gif\n": "not UTF-8",
        b"../secret.png,x.gif\n": "outside",
        b"/etc/passwd,x.gif\n": "outside",
        b"link.png,x.gif\n": "outside",
        b"a.png\n": "needs source,driving",
        b",x.gif\n": "needs source,driving",
        b"# only a comment\n": "no pairs listed",
    }
    for content, message in cases.items():
        pairs = tmp_path / "pairs.csv"
        pairs.write_bytes(content)
        out = tmp_path / "out"
        code, text = invoke(
            runner,
            "animate",
            sources,
            drivings,
            "-o",
            out,
            "--pair-list",
            pairs,
            "--model",
            tiny_ckpt,
        )
        assert code == 1 and len(error_lines(text)) == 1 and message in text, (content, text)
        assert not out.exists()


def test_two_inputs_that_reduce_to_one_name_are_refused(runner, tiny_ckpt, tmp_path):
    sources, drivings = tmp_path / "s", tmp_path / "d"
    sources.mkdir()
    drivings.mkdir()
    for name in ("a b.png", "a_b.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(sources / name)
    write_video(drivings / "x.gif", make_creature_frames(2, 8))
    code, text = invoke(
        runner, "animate", sources, drivings, "-o", tmp_path / "out", "--model", tiny_ckpt
    )
    assert code == 1 and "would both write a_b__x.gif" in text
    assert not (tmp_path / "out").exists()


def test_train_refuses_a_used_run_folder_and_bad_numbers(runner, tmp_path):
    from donkey.data.synthetic import synthesize
    from tests.conftest import CONFIGS

    synthesize(tmp_path / "videos", 3, size=32, seed=1, frames=(4, 5))
    run = tmp_path / "run"
    base = ["train", CONFIGS / "tiny.yaml", "--data", tmp_path / "videos", "-o", run]
    base += ["--device", "cpu", "--val-fraction", "0"]
    for option, value, message in (
        ("--threads", "-1", "--threads must be in [1, 1024] (or 0"),
        # 100000 threads failed in PyTorch with a MemoryError, reported as "out of memory".
        ("--threads", "100000", "--threads must be in [1, 1024] (or 0"),
        ("-b", "0", "--batch-size must be >= 1, got 0"),
        ("--workers", "-1", "--workers must be >= 0, got -1"),
        ("--steps", "-1", "--steps must be >= 1, got -1"),
        ("--steps", "0", "--steps must be >= 1, got 0"),
        ("--until", "0", "--until must be >= 1"),
        ("--val-fraction", "1", "--val-fraction must be in [0, 1)"),
        ("--val-fraction", "-0.5", "--val-fraction must be in [0, 1)"),
        ("--set", "train.batch_size=-4", "train.batch_size must be an integer in [1, 4096]"),
    ):
        code, text = invoke(runner, *base, option, value)
        assert code == 1 and len(error_lines(text)) == 1 and message in text, (option, text)
        assert not run.exists()
    code, text = invoke(runner, *base, "--steps", "2")
    assert code == 0, text
    log = (run / "log.jsonl").read_text()
    assert len(log.splitlines()) == 2
    code, text = invoke(runner, *base, "--steps", "3")
    assert code == 1 and "holds a previous run" in text and "--overwrite" in text
    assert (run / "log.jsonl").read_text() == log
    code, text = invoke(runner, *base, "--steps", "3", "--overwrite")
    assert code == 0, text
    # A fresh start replaced the log: one run's records, not two runs appended.
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_corpus_folder_through_eval_train_and_pairs(runner, tiny_ckpt, tmp_path):
    from tests.conftest import CONFIGS

    bad = tmp_path / "bad"
    corpus(bad)
    before = listing(tmp_path)
    commands = [
        ["eval", "--data", bad, "--model", tiny_ckpt, "--device", "cpu"],
        ["train", CONFIGS / "tiny.yaml", "--data", bad, "-o", tmp_path / "run", "--device", "cpu"],
        ["pairs", bad, "-o", tmp_path / "pairs.json", "--model", tiny_ckpt, "--device", "cpu"],
    ]
    for args in commands:
        code, text = invoke(runner, *args)
        lines = error_lines(text)
        assert code == 1 and len(lines) == 1, (args[0], text)
        assert "none of the 8 files could be used" in lines[0] or "validation split" in lines[0]
    assert listing(tmp_path) == before


def test_hostile_checkpoints_through_info_animate_and_convert(runner, tmp_path):
    import torch

    from donkey.model.config import ModelConfig, config_to_dict

    config = config_to_dict(ModelConfig())
    for part in ("kp_detector", "dense_motion", "generator", "discriminator"):
        config[part].update(block_expansion=2048, max_features=2048)
    huge = tmp_path / "huge.ckpt"
    torch.save({"format": "donkey", "version": 1, "config": config, "state": {}}, huge)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(bytes(range(256)) * 8)
    source = good_gif(tmp_path / "s.gif", frames=1)
    before = listing(tmp_path)
    for model, message in ((huge, "more than the 200 M limit"), (garbage, "not a checkpoint")):
        for args in (
            ["info", "--model", model],
            ["animate", source, source, "-o", tmp_path / "o.gif", "--model", model],
        ):
            code, text = invoke(runner, *args)
            assert code == 1 and len(error_lines(text)) == 1 and message in text, (args, text)
    code, text = invoke(runner, "convert", garbage, "-o", tmp_path / "c.ckpt")
    assert code == 1 and len(error_lines(text)) == 1 and "cannot read safely" in text
    assert listing(tmp_path) == before


def test_output_places_under_a_file_are_one_line(runner, tiny_ckpt, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    source = good_gif(tmp_path / "s.gif", frames=2)
    from tests.conftest import CONFIGS

    cases = [
        ["synth", blocker / "out", "--count", "1"],
        ["init", CONFIGS / "tiny.yaml", "-o", blocker / "m.ckpt"],
        ["animate", source, source, "-o", blocker / "o.gif", "--model", tiny_ckpt],
        ["pairs", tmp_path, "-o", blocker / "p.json", "--model", tiny_ckpt],
    ]
    for args in cases:
        code, text = invoke(runner, *args)
        assert code == 1 and len(error_lines(text)) == 1 and str(blocker) in text, (args, text)
    assert blocker.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "s.gif"]


def test_animate_budget_options(runner, tiny_ckpt, tmp_path):
    driving = good_gif(tmp_path / "d.gif", frames=3, size=32)
    out = tmp_path / "o.gif"
    base = ["animate", driving, driving, "-o", out, "--model", tiny_ckpt]
    code, text = invoke(runner, *base, "--max-frames", "2")
    assert code == 1 and "3 frames exceed the 2-frame read budget" in text
    code, text = invoke(runner, *base, "--max-pixels", "lots")
    assert code == 1 and "--max-pixels must be a positive number, got 'lots'" in text
    assert not out.exists()
    code, text = invoke(runner, *base, "--max-frames", "3")
    assert code == 0 and read_frames(out).frames.shape[0] == 3


def test_eval_refuses_header_bombs_and_takes_the_budget_options(runner, tiny_ckpt, tmp_path):
    """eval reads files a user names, like animate: the same --max-* options and defaults."""
    from tests.hostile import gif_screen_bomb

    data = tmp_path / "data"
    data.mkdir()
    bomb = gif_screen_bomb(data / "bomb.gif", 12000, 12000, 4)  # 131 bytes, 144 MP frames
    assert bomb.stat().st_size == 131
    model = ["--model", tiny_ckpt, "--device", "cpu"]
    code, text = invoke(runner, "eval", "--data", data, *model)
    assert code == 1 and error_lines(text) == [
        f"error: none of the 1 files could be used: {bomb}: frames of 12000x12000 (144.0 "
        "megapixels) exceed the 50.0 megapixels per-frame read budget (raise it with "
        "DONKEY_MAX_FRAME_PIXELS or --max-frame-pixels of animate and eval)"
    ]
    good_gif(tmp_path / "a.gif", frames=3)
    b = gif_screen_bomb(tmp_path / "b.gif", 12000, 12000, 4)
    pair = {"a": "a.gif", "b": "b.gif", "b_for_a": [0, 1, 2], "a_for_b": [0, 1, 2]}
    pair.update(residual=0.0, unique=1.0, score=0.0)
    manifest = tmp_path / "pairs.json"
    manifest.write_text(json.dumps({"version": 1, "root": ".", "params": {}, "pairs": [pair]}))
    code, text = invoke(runner, "eval", "--pairs", manifest, *model)
    assert code == 1 and len(error_lines(text)) == 1  # the only pair is skipped: nothing left
    assert error_lines(text)[0].startswith(
        f"error: {manifest}: none of the 1 pairs could be used: pair a.gif / b.gif: {b}: frames "
        "of 12000x12000"
    )

    bomb.unlink()
    good_gif(data / "walk.gif", frames=3, size=32)
    for option, value, message in (
        ("--max-frames", "2", "3 frames exceed the 2-frame read budget"),
        ("--max-pixels", "3000", "3 frames of 32x32 (3072 pixels) exceed the 3000 pixels read"),
        ("--max-frame-pixels", "1000", "(1024 pixels) exceed the 1000 pixels per-frame read"),
        ("--max-frames", "lots", "--max-frames must be a positive number, got 'lots'"),
    ):
        code, text = invoke(runner, "eval", "--data", data, *model, option, value)
        assert code == 1 and len(error_lines(text)) == 1, (option, text)
        assert message in error_lines(text)[0], (option, text)
        if value != "lots":
            assert str(data / "walk.gif") in error_lines(text)[0]
    code, text = invoke(runner, "eval", "--data", data, *model, "--max-frames", "3", "--json")
    assert code == 0, text
    assert json.loads(text[text.index("{") :])["videos"] == 1


def test_numbers_no_run_could_use_are_one_line(runner, tmp_path):
    """A seed past 64 bits was an OverflowError traceback; synth --size 100000 was killed for
    memory (one 30 GB frame); -n 99999999999 rendered until the disk filled."""
    from tests.conftest import CONFIGS

    garbage = tmp_path / "official.pth"
    garbage.write_bytes(b"x" * 64)
    huge = "99999999999999999999999"
    before = listing(tmp_path)
    for args, message in (
        (["init", CONFIGS / "tiny.yaml", "-o", tmp_path / "m.ckpt", "--seed", huge], huge),
        (["init", CONFIGS / "tiny.yaml", "-o", tmp_path / "m.ckpt", "--seed", "-1"], "got -1"),
        (["convert", garbage, "-o", tmp_path / "c.ckpt", "--seed", huge], huge),
        (["synth", tmp_path / "s", "-n", "1", "--size", "100000"], "--size must be at most 1024"),
        (["synth", tmp_path / "s", "-n", "99999999999"], "--count must be at most 1000000"),
        (
            ["synth", tmp_path / "s", "-n", "1", "--size", "1024", "--max-frames", "5000"],
            "--max-frames 5000 of 1024x1024 (5.24e+09 pixels) exceed the read budget",
        ),
        (["bench", "--config", "tiny", "--threads", "5000"], "--threads must be in [1, 1024]"),
    ):
        code, text = invoke(runner, *args)
        assert code == 1 and len(error_lines(text)) == 1 and message in text, (args, text)
        if "--seed" in args:
            assert "--seed must be an integer in [0, 9223372036854775807]" in text
    assert listing(tmp_path) == before


def test_an_output_never_replaces_an_input(runner, tiny_ckpt, tmp_path):
    """animate -o SOURCE and pairs -o FOLDER/video.gif wrote their result over that input."""
    data = tmp_path / "data"
    data.mkdir()
    source = good_gif(data / "a.gif", frames=3)
    driving = good_gif(data / "b.gif", frames=3, seed=1)
    note = tmp_path / "notes.txt"
    note.write_text("mine")
    config = tmp_path / "settings.json"  # JSON, but not a pairs manifest
    config.write_text('{"theme": "dark", "pairs": 3}')
    originals = {p: p.read_bytes() for p in (source, driving, note, config)}
    model = ["--model", tiny_ckpt, "--device", "cpu"]
    for args, message in (
        (["animate", source, driving, "-o", source, *model], f"{source}: is the source input"),
        (
            ["animate", source, driving, "-o", data / ".." / "data" / "b.gif", *model],
            "is the driving input",
        ),
        (["pairs", data, "-o", driving, *model], f"{driving}: exists and is not a pairs manifest"),
        (["pairs", data, "-o", note, *model], f"{note}: exists and is not a pairs manifest"),
        (["pairs", data, "-o", config, *model], f"{config}: exists and is not a pairs manifest"),
    ):
        code, text = invoke(runner, *args)
        assert code == 1 and len(error_lines(text)) == 1 and message in text, (args, text)
    assert {p: p.read_bytes() for p in originals} == originals
    assert sorted(p.name for p in data.iterdir()) == ["a.gif", "b.gif"]


def test_eval_refuses_limits_and_fractions_that_change_the_set(runner, tiny_ckpt, tmp_path):
    """--limit -1 evaluated all but the last video, --val-fraction 2 or nan ran, and a manifest
    without pairs printed a table of nan: all exit 0 before."""
    data = tmp_path / "data"
    data.mkdir()
    good_gif(data / "walk.gif", frames=3)
    model = ["--model", tiny_ckpt, "--device", "cpu"]
    for option, value, message in (
        ("--limit", "0", "--limit must be >= 1, got 0"),
        ("--limit", "-1", "--limit must be >= 1, got -1"),
        ("--val-fraction", "2", "--val-fraction must be in [0, 1), got 2.0"),
        ("--val-fraction", "nan", "--val-fraction must be in [0, 1), got nan"),
    ):
        code, text = invoke(runner, "eval", "--data", data, *model, option, value)
        assert code == 1 and error_lines(text) == [f"error: {message}"], (option, text)
    code, text = invoke(runner, "eval", "--data", data, *model, "--split", "val")
    assert code == 1 and error_lines(text) == [f"error: {data}: no videos in split 'val'"], text
    manifest = tmp_path / "pairs.json"
    manifest.write_text(json.dumps({"version": 1, "root": ".", "params": {}, "pairs": []}))
    code, text = invoke(runner, "eval", "--pairs", manifest, *model)
    assert code == 1 and error_lines(text) == [f"error: {manifest}: lists no pairs to evaluate"]


def test_init_never_replaces_a_file_unasked(runner, tmp_path):
    """init -o over a trained checkpoint replaced it with random weights; -o FOLDER named the
    temporary file in its error."""
    from donkey.model.checkpoint import load_checkpoint

    trained = tmp_path / "trained.ckpt"
    trained.write_bytes(b"weights")
    for target, message in (
        (trained, f"{trained}: exists; init would replace it with random weights"),
        (tmp_path, f"{tmp_path}: is a folder; -o takes the checkpoint file to write"),
    ):
        code, text = invoke(runner, "init", "tiny", "-o", target)
        assert code == 1 and error_lines(text) == [
            f"error: {message}"
            + (" (give another -o, or --overwrite)" if target == trained else "")
        ], text
    assert trained.read_bytes() == b"weights" and listing(tmp_path) == {"trained.ckpt"}
    code, text = invoke(runner, "init", "tiny", "-o", trained, "--overwrite")
    assert code == 0, text
    assert load_checkpoint(trained).model_config.image_size == 32


def test_synth_refuses_to_replace_an_earlier_runs_files_unless_overwrite(runner, tmp_path):
    out = tmp_path / "synth"
    base = ["synth", str(out), "-n", "2", "--size", "32", "--min-frames", "3", "--max-frames", "3"]
    assert runner.invoke(app, [*base, "--seed", "1"]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert len(before) == 5 and ".donkey-synth.json" in before
    result = runner.invoke(app, [*base, "--seed", "2"])
    assert result.exit_code == 1, result.output
    assert "creature_0000.gif: exists (4 of the 4 files synth would write do)" in result.output
    assert "--overwrite" in result.output and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    result = runner.invoke(app, [*base, "--seed", "2", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (out / "creature_0000.gif").read_bytes() != before["creature_0000.gif"]
    # Pairs into the same folder write other names: nothing clashes, until a second pairs run.
    assert runner.invoke(app, [*base, "--pairs"]).exit_code == 0
    result = runner.invoke(app, [*base, "--pairs", "-n", "3"])
    assert result.exit_code == 1 and "(9 of the 13 files synth would write do)" in result.output
    # --overwrite removes what the earlier runs wrote, so a smaller run leaves nothing stale.
    (out / "notes.txt").write_text("mine")
    result = runner.invoke(app, [*base, "-n", "1", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        ".donkey-synth.json",
        "creature_0000.gif",
        "creature_0000.json",
        "notes.txt",
    ]
    other = tmp_path / "other"
    other.mkdir()
    (other / "creature_00001.gif").write_text("not one of synth's names")
    (other / "creature_0002.gif").write_text("index 2: not written by -n 2")
    assert runner.invoke(app, ["synth", str(other), *base[2:]]).exit_code == 0
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["synth", str(tmp_path / "file"), "-n", "1"])
    assert result.exit_code == 1 and "file: exists and is not a folder" in result.output


def test_synth_overwrite_removes_only_what_synth_wrote(runner, tmp_path):
    """--overwrite deleted every file with one of synth's names, a user's own included."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "pairs.json").write_text('{"mine": 1}')
    (out / "creature_0007.json").write_text("notes")
    base = ["synth", str(out), "--size", "32", "--min-frames", "2", "--max-frames", "2"]
    # No record: which of these synth wrote is unknown, so --overwrite removes nothing.
    code, text = invoke(runner, *base, "-n", "1", "--pairs", "--overwrite")
    assert code == 1 and len(error_lines(text)) == 1, text
    assert "creature_0007.json: 2 file(s) named like synth's but no .donkey-synth.json" in text
    assert sorted(p.name for p in out.iterdir()) == ["creature_0007.json", "pairs.json"]
    # Without --overwrite nothing clashes; the run records what it writes.
    code, text = invoke(runner, *base, "-n", "2")
    assert code == 0, text
    first = (out / "creature_0000.gif").read_bytes()
    code, text = invoke(runner, *base, "-n", "1", "--seed", "5", "--overwrite")
    assert code == 0, text
    assert (out / "creature_0000.gif").read_bytes() != first
    assert (out / "pairs.json").read_text() == '{"mine": 1}'
    assert (out / "creature_0007.json").read_text() == "notes"
    assert not (out / "creature_0001.gif").exists()  # the earlier, larger run's
    # A file where this run would write that no run recorded: refused, nothing removed.
    code, text = invoke(runner, *base, "-n", "1", "--pairs", "--overwrite")
    assert code == 1 and "pairs.json: not recorded as written by donkey synth (1 such" in text
    assert (out / "creature_0000.gif").exists()
    (out / "pairs.json").unlink()
    assert invoke(runner, *base, "-n", "1", "--pairs")[0] == 0
    assert invoke(runner, *base, "-n", "1", "--overwrite")[0] == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".donkey-synth.json",
        "creature_0000.gif",
        "creature_0000.json",
        "creature_0007.json",
    ]
    for damaged in ("[", '{"files": "abc"}', '{"files": {"a": 1}}'):
        (out / ".donkey-synth.json").write_text(damaged)
        code, text = invoke(runner, *base, "-n", "1", "--overwrite")
        assert code == 1 and ".donkey-synth.json: damaged" in text and len(error_lines(text)) == 1


def test_an_empty_model_is_refused_not_replaced_by_the_bundled_one(runner, tmp_path):
    """`--model "$MODEL"` with MODEL unset ran the bundled model before."""
    source = good_gif(tmp_path / "s.gif", frames=2)
    for args in (
        ["animate", source, source, "-o", tmp_path / "o.gif", "--model", ""],
        ["info", "--model", " "],
        ["export", "-o", tmp_path / "e", "--model", ""],
    ):
        code, text = invoke(runner, *args)
        assert code == 1 and "--model is empty" in text and len(error_lines(text)) == 1, text
    assert not (tmp_path / "o.gif").exists() and not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2,,3", "--batch-sizes expects comma-separated integers, got '2,,3'"),
        ("8,8", "--batch-sizes lists a value twice: '8,8'"),
        ("0,-1", "--batch-sizes expects positive integers, got '0,-1'"),
        ("", "--batch-sizes expects comma-separated integers, got ''"),
    ],
)
def test_bench_batch_sizes_are_refused_not_guessed(runner, value, message):
    code, text = invoke(runner, "bench", "--batch-sizes", value, "--device", "cpu")
    assert code == 1 and message in text and len(error_lines(text)) == 1, text


def test_file_names_that_are_not_utf8_train_and_evaluate(runner, tmp_path, tiny_ckpt):
    """A name with a stray byte (0xff) was a UnicodeEncodeError traceback in train and eval."""
    from donkey.data.datasets import split_fraction

    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(3):
        good_gif(folder / f"c{i}.gif", frames=3, seed=i)
    odd = os.fsdecode(b"bad\xffname.gif")
    good_gif(folder / odd, frames=3, seed=9)
    assert split_fraction("c0.gif") == split_fraction(os.fsdecode(b"c0.gif"))  # unchanged
    assert 0 <= split_fraction(odd) < 1
    code, text = invoke(runner, "eval", "--model", tiny_ckpt, "--data", folder, "--split", "all")
    assert code == 0 and "Traceback" not in text, text
    code, text = invoke(
        runner, "train", "tiny", "--data", folder, "-b", "2", "--steps", "1",
        "-o", tmp_path / "run", "--val-fraction", "0",
    )  # fmt: skip
    assert code == 0 and (tmp_path / "run" / "last.ckpt").is_file(), text


def test_train_refuses_run_folders_it_cannot_own(runner, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    good_gif(folder / "c.gif", frames=3)
    base = ["train", "tiny", "--data", folder, "--steps", "1"]
    for where, message in (
        ("", "-o is empty: name a run folder"),
        (" ", "-o is empty: name a run folder"),
        (os.fsdecode(b"run\xff"), "the name is not valid UTF-8"),
    ):
        code, text = invoke(runner, *base, "-o", where)
        assert code == 1 and message in text and len(error_lines(text)) == 1, text
    assert not (Path.cwd() / "last.ckpt").exists()


def test_vgg_weights_of_the_wrong_shapes_are_one_line(runner, tmp_path):
    import torch

    folder = tmp_path / "videos"
    folder.mkdir()
    good_gif(folder / "c.gif", frames=3)
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "v.pth")
    code, text = invoke(
        runner, "train", "tiny", "--data", folder, "--steps", "1", "-o", tmp_path / "run",
        "--set", "train.loss.perceptual=1", "--vgg19-weights", tmp_path / "v.pth",
    )  # fmt: skip
    assert code == 1 and len(error_lines(text)) == 1, text
    assert "v.pth: not VGG-19 weights (0.weight is (3,), expected (64, 3, 3, 3))" in text
