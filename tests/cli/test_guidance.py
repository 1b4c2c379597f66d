"""Checks before the work (ffmpeg, swapped inputs), progress with totals in logs, the next
steps printed after a command, and `bench --runs` meaning exactly that many runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from donkey.cli.app import app
from donkey.cli.common import PlainProgress
from donkey.data.synthetic import synthesize
from tests.conftest import ROOT, make_creature_frames, run_cli

FFMPEG_HELP = (
    "pip install imageio-ffmpeg (its wheels bundle ffmpeg), or install ffmpeg "
    "(apt-get install ffmpeg, brew install ffmpeg) and put it on PATH"
)


@pytest.fixture()
def clip(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    src = folder / "cat.png"
    Image.fromarray(make_creature_frames(1, 40, seed=3)[0]).save(src)
    frames = [Image.fromarray(f) for f in make_creature_frames(7, 40, seed=4)]
    drv = folder / "horse.gif"
    frames[0].save(drv, save_all=True, append_images=frames[1:], duration=80, loop=0)
    return src, drv


def test_missing_inputs_and_bad_suffix_are_refused_before_pytorch_loads(clip, tmp_path):
    src, drv = clip
    done = run_cli("animate", tmp_path / "nosuch.png", drv, "-o", tmp_path / "o.gif", timeout=120)
    assert (done.returncode, done.stderr) == (
        1,
        f"error: {tmp_path / 'nosuch.png'}: no such file\n",
    )
    done = run_cli("animate", src, drv, "-o", tmp_path / "o.avi", timeout=120)
    assert done.returncode == 1
    assert done.stderr == (
        f"error: {tmp_path / 'o.avi'}: unsupported output format '.avi' (use .gif, .mp4 or .png)\n"
    )
    # Neither imported PyTorch: the probe below runs the same command in one interpreter.
    code = (
        "import sys; from typer.testing import CliRunner; from donkey.cli.app import app; "
        f"r = CliRunner().invoke(app, ['animate', {str(src)!r}, {str(drv)!r}, '-o', 'o.avi']); "
        "print(r.exit_code, 'torch' in sys.modules)"
    )
    probe = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert probe.stdout.split() == ["1", "False"], probe.stderr


def test_mp4_without_a_usable_ffmpeg_is_refused_before_the_model_loads(
    runner, clip, tmp_path, monkeypatch
):
    src, drv = clip
    out = tmp_path / "out.mp4"
    # A model that does not exist: the ffmpeg check must come first.
    args = ["animate", str(src), str(drv), "-o", str(out), "--model", str(tmp_path / "no.ckpt")]
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "nowhere" / "ffmpeg"))
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: writing {out} needs ffmpeg, but IMAGEIO_FFMPEG_EXE={tmp_path / 'nowhere' / 'ffmpeg'} "
        f"is not an executable file: fix or unset IMAGEIO_FFMPEG_EXE, or {FFMPEG_HELP}"
    )
    assert not out.exists() and "Traceback" not in result.output
    # The same for a batch writing mp4 files.
    batch = ["animate", str(src.parent), str(drv.parent), "-o", str(tmp_path / "results")]
    result = runner.invoke(app, [*batch, "--out-format", "mp4"])
    assert result.exit_code == 1
    assert f"error: writing {tmp_path / 'results'}/*.mp4 needs ffmpeg" in result.output
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE")

    # Neither a bundled nor a system ffmpeg (imageio-ffmpeg's own search fails).
    import imageio_ffmpeg

    def none_found():
        raise RuntimeError("No ffmpeg exe could be found.")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", none_found)
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: writing {out} needs ffmpeg, and none was found: {FFMPEG_HELP}"
    )
    # imageio-ffmpeg itself missing.
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: writing {out} needs ffmpeg through imageio-ffmpeg, which is not installed: "
        f"{FFMPEG_HELP}"
    )
    # A GIF needs no ffmpeg: the run gets as far as the model.
    result = runner.invoke(app, [*args[:3], "-o", str(tmp_path / "out.gif"), *args[5:]])
    assert result.exit_code == 1 and "no.ckpt" in result.output


def test_swapped_inputs_warn_and_say_what_was_meant(runner, tiny_ckpt, clip, tmp_path):
    src, drv = clip
    out = tmp_path / "swapped.gif"
    args = ["--model", str(tiny_ckpt), "--device", "cpu", "--overwrite"]
    result = runner.invoke(app, ["animate", str(drv), str(src), "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    assert (
        f"warning: {src} has 1 frame and {drv} has 7: the inputs look swapped. The source image "
        f"comes first, the driving video second: donkey animate {src} {drv} -o OUTPUT"
    ) in result.output
    assert f"wrote {out} (1 frame, engine torch" in result.output
    still = tmp_path / "still.png"
    Image.fromarray(make_creature_frames(1, 40, seed=5)[0]).save(still)
    result = runner.invoke(app, ["animate", str(src), str(still), "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    assert f"warning: {still} has only 1 frame, so the result is one still frame" in result.output
    result = runner.invoke(app, ["animate", str(drv), str(drv), "-o", str(out), *args])
    assert result.exit_code == 0, result.output
    assert (
        f"warning: {drv} is an animation (7 frames); only its first frame is the source image"
    ) in result.output
    result = runner.invoke(app, ["animate", str(src), str(drv), "-o", str(out), *args])
    assert result.exit_code == 0 and "warning" not in result.output


def _gif(path: Path, frames: int, seed: int) -> Path:
    images = [Image.fromarray(f) for f in make_creature_frames(frames, 40, seed=seed)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=80, loop=0)
    return path


def _warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning:")]


def test_batch_mode_warns_once_per_kind_of_problem_not_per_file(runner, tiny_ckpt, tmp_path):
    """Folders get the single-file checks: each file probed once, a summary line per problem."""
    srcs, drvs = tmp_path / "srcs", tmp_path / "drvs"
    srcs.mkdir()
    drvs.mkdir()
    for i in range(5):
        _gif(srcs / f"anim{i}.gif", 3 + i, seed=i)
    for name in ("cat.png", "dog.png"):
        Image.fromarray(make_creature_frames(1, 40, seed=len(name))[0]).save(drvs / name)
    args = ["--model", str(tiny_ckpt), "--device", "cpu"]
    result = runner.invoke(app, ["animate", str(srcs), str(drvs), "-o", str(tmp_path / "o"), *args])
    assert result.exit_code == 0, result.output
    assert _warnings(result.output) == [
        "warning: every driving clip has 1 frame (cat.png, dog.png) and every source is an "
        "animation (anim0.gif, anim1.gif, anim2.gif and 2 more): the inputs look swapped. The "
        f"source images come first, the driving videos second: donkey animate {drvs} {srcs} "
        "-o OUTPUT"
    ]
    assert len(list((tmp_path / "o").iterdir())) == 10  # a warning, not a refusal

    _gif(drvs / "trot.gif", 4, seed=9)  # now only some pairs are odd: two lines, not ten
    result = runner.invoke(app, ["animate", str(srcs), str(drvs), "-o", str(tmp_path / "p"), *args])
    assert result.exit_code == 0, result.output
    assert _warnings(result.output) == [
        "warning: 2 of 3 driving clips have only 1 frame, so their results are still frames: "
        "cat.png, dog.png; a driving should be a video (GIF, MP4, PNG strip or a folder of "
        "frames)",
        "warning: 5 of 5 sources are animations (anim0.gif: 3 frames, anim1.gif: 4 frames, "
        "anim2.gif: 5 frames and 2 more); only their first frame is the source image",
    ]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("source,driving\nanim0.gif,cat.png\n")
    result = runner.invoke(
        app,
        [
            "animate",
            str(srcs),
            str(drvs),
            "-o",
            str(tmp_path / "q"),
            "--pair-list",
            str(pairs),
            *args,
        ],
    )
    assert result.exit_code == 0, result.output
    assert _warnings(result.output)[0].endswith(
        f"the inputs look swapped. The source images come first, the driving videos second: "
        f"list the source image first in each line of {pairs}"
    )
    # Stills driven by clips: nothing to say.
    result = runner.invoke(
        app, ["animate", str(drvs / "cat.png"), str(drvs), "-o", str(tmp_path / "r"), *args]
    )
    assert result.exit_code == 0, result.output
    assert _warnings(result.output) == [
        "warning: 2 of 3 driving clips have only 1 frame, so their results are still frames: "
        "cat.png, dog.png; a driving should be a video (GIF, MP4, PNG strip or a folder of "
        "frames)"
    ]
    shutil.rmtree(tmp_path / "r")
    (drvs / "cat.png").rename(tmp_path / "cat.png")
    (drvs / "dog.png").unlink()
    result = runner.invoke(
        app, ["animate", str(tmp_path / "cat.png"), str(drvs), "-o", str(tmp_path / "r"), *args]
    )
    assert result.exit_code == 0 and _warnings(result.output) == [], result.output


def test_progress_in_a_log_is_plain_lines_with_the_total(runner, tiny_ckpt, clip, tmp_path):
    src, drv = clip
    out = tmp_path / "o.gif"
    result = runner.invoke(
        app,
        ["animate", str(src), str(drv), "-o", str(out), "--model", str(tiny_ckpt), "-b", "3"],
        env={"DONKEY_PROGRESS_SECONDS": "0"},
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("animating")]
    assert [line.split(",")[0] for line in lines] == [
        "animating (frames): 3/7 (43%)",
        "animating (frames): 6/7 (86%)",
        "animating (frames): 7/7 (100%)",
    ]
    assert "ETA" in lines[0] and "ETA" not in lines[-1]


def test_plain_progress_lines(capsys, monkeypatch):
    import donkey.cli.common as common

    now = [100.0]
    monkeypatch.setattr(common.time, "monotonic", lambda: now[0])
    with PlainProgress(every=10) as bar:
        task = bar.add_task("reading", total=40)
        open_ended = bar.add_task("clustering")
        quick = bar.add_task("quick", total=2)
        now[0] += 5
        bar.update(task, completed=10)  # 5 s after the start: too soon for a line
        bar.update(quick, completed=2)  # done within one interval: no line at all
        now[0] += 5
        bar.update(task, completed=20)
        bar.advance(open_ended, 3)
        now[0] += 20
        bar.update(task, completed=40)  # done: its last line at once
        bar.advance(open_ended, 1)
        now[0] += 1
        bar.advance(open_ended, 1)  # 1 s after its last line: printed when the block ends
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "reading: 20/40 (50%), 0:10 elapsed, ETA 0:10",
        "clustering: 3, 0:10 elapsed",
        "reading: 40/40 (100%), 0:30 elapsed",
        "clustering: 4, 0:30 elapsed",
        "clustering: 5, 0:31 elapsed",
    ]


def test_bench_runs_means_exactly_that_many(runner, tmp_path):
    report = tmp_path / "bench.json"
    result = runner.invoke(
        app,
        [
            "bench",
            "--config",
            "tiny",
            "--engine",
            "torch",
            "--batch-sizes",
            "1,2",
            "--runs",
            "3",
            "--device",
            "cpu",
            "--json",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    assert [row["runs"] for row in json.loads(report.read_text())] == [3, 3]
    assert "[1/2] torch fp32 batch 1:" in result.output and "(3 runs, ETA" in result.output
    assert "[2/2] torch fp32 batch 2:" in result.output


def test_synth_and_pairs_print_next_steps(runner, tmp_path):
    folder = tmp_path / "made"
    result = runner.invoke(
        app,
        ["synth", str(folder), "-n", "1", "--size", "32", "--min-frames", "4", "--max-frames", "4"],
    )
    assert result.exit_code == 0, result.output
    assert f"next: donkey train small --data {folder} -o runs/synth" in result.output
    videos = tmp_path / "three"
    synthesize(videos, 3, size=32, seed=2, frames=(6, 6))
    clusters = tmp_path / "clusters.csv"
    clusters.write_text(
        "file,cluster\n" + "".join(f"{p.name},1\n" for p in sorted(videos.glob("*.gif")))
    )
    result = runner.invoke(
        app,
        [
            "pairs",
            str(videos),
            "-o",
            str(tmp_path / "p.json"),
            "--keypoints",
            "synth",
            "--clusters",
            str(clusters),
            "--max-repeated",
            "1",
            "--threshold",
            "-10",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "next: 3 rejected for score: raise --threshold (now -10.0) or raise --alpha (now 0.8; "
        "it rewards unique frames)" in result.output
    )


def test_train_and_eval_print_next_steps(runner, tmp_path):
    videos = tmp_path / "videos"
    synthesize(videos, 4, size=32, seed=3, frames=(4, 6))
    run = tmp_path / "run"
    base = [
        "train",
        "tiny",
        "--data",
        str(videos),
        "-o",
        str(run),
        "--device",
        "cpu",
        "--val-fraction",
        "0",
        "--steps",
        "2",
    ]
    result = runner.invoke(app, [*base, "--until", "1"])
    assert result.exit_code == 0, result.output
    ckpt = run / "last.ckpt"
    assert "next: continue to --steps with the same command and --resume auto" in result.output
    assert f"next: donkey eval --model {ckpt} --data {videos} --split val" in result.output
    assert f"next: donkey animate SOURCE DRIVING -o out.gif --model {ckpt}" in result.output
    assert f"next: donkey export --model {ckpt} -o exported/ --check" in result.output
    result = runner.invoke(
        app, ["eval", "--model", str(ckpt), "--data", str(videos), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    assert f"next: donkey eval --model {ckpt} --data {videos} --split val" in result.output
    assert f"next: donkey animate SOURCE DRIVING -o out.gif --model {ckpt}" in result.output


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_unwritable_output_is_refused_before_the_work(runner, clip, tmp_path):
    # /proc refuses new files even to root, for whom os.access says yes.
    src, drv = clip
    missing = tmp_path / "no.ckpt"  # the model is never reached
    for output in (Path("/proc/out.gif"), Path("/proc/new/folder/out.mp4")):
        result = runner.invoke(
            app, ["animate", str(src), str(drv), "-o", str(output), "--model", str(missing)]
        )
        assert result.exit_code == 1
        assert result.output.startswith(f"error: {output}: cannot write there (/proc: ")
    result = runner.invoke(
        app,
        [
            "animate",
            str(src.parent),
            str(drv.parent),
            "-o",
            "/proc/results",
            "--model",
            str(missing),
        ],
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: /proc/results: cannot write there (/proc: ")
    assert not list(tmp_path.glob(".donkey-write-check-*"))


def test_pairs_hints_when_nothing_was_clustered(capsys):
    from collections import Counter
    from types import SimpleNamespace

    from donkey.cli.pairs_cmd import _next_steps
    from donkey.data.pairing import PairingParams

    report = SimpleNamespace(kept=0, candidates=0, rejected_by=Counter())
    options = {"--appearance-min": 0.8, "--motion-max": 0.14, "--neighbours": 5}
    _next_steps(report, Path("p.json"), False, PairingParams(), options)
    _next_steps(report, Path("p.json"), True, PairingParams(), options)
    assert capsys.readouterr().out.splitlines() == [
        "next: no two videos were clustered together (--appearance-min 0.8, --motion-max 0.14, "
        "--neighbours 5): lower --appearance-min, raise --motion-max or --neighbours, or cluster "
        "by hand: --sheets DIR writes clusters_template.csv for --clusters",
        "next: no cluster of --clusters holds two readable videos; put videos that move alike "
        "in one cluster",
    ]


def test_mixed_training_hints_one_eval_per_pairs_manifest(runner, tmp_path):
    videos, pairs = tmp_path / "videos", tmp_path / "pairs"
    synthesize(videos, 4, size=32, seed=3, frames=(4, 6))
    synthesize(pairs, 2, size=32, seed=4, pairs=True, frames=(5, 6))
    manifests = [pairs / "pairs.json", pairs / "pairs.json"]
    run = tmp_path / "run"
    args = ["train", "tiny", "--data", str(videos), "-o", str(run), "--device", "cpu"]
    args += ["--steps", "2", "--set", "train.mode=mixed", "--val-fraction", "0"]
    for manifest in manifests:
        args += ["--pairs", str(manifest)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    line = f"next: donkey eval --model {run / 'last.ckpt'} --pairs {manifests[0]}"
    assert result.output.count(line) == 2


def test_a_cache_build_says_so_once(runner, tiny_ckpt, clip, tmp_path, monkeypatch):
    """The first --engine ort run on a checkpoint exports it (seconds for the tiny model,
    minutes for int8 of a paper-size one): one stderr line says what and that it is once."""
    monkeypatch.setenv("DONKEY_CACHE", str(tmp_path / "fresh cache"))
    src, drv = clip
    args = ["animate", str(src), str(drv), "--model", str(tiny_ckpt), "--engine", "ort"]
    args += ["--device", "cpu"]
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "a.gif")])
    assert first.exit_code == 0, first.output
    assert f"building the ONNX export of {tiny_ckpt} into the cache, once" in first.output
    second = runner.invoke(app, [*args, "-o", str(tmp_path / "b.gif")])
    assert second.exit_code == 0, second.output
    assert "building" not in second.output
    int8 = runner.invoke(app, [*args, "-o", str(tmp_path / "c.gif"), "--precision", "int8"])
    assert int8.exit_code == 0, int8.output
    assert f"building the int8 ONNX export of {tiny_ckpt}" in int8.output
    import donkey
    import donkey.cli.common

    said: list[str] = []
    monkeypatch.setattr(donkey.cli.common, "tagged", lambda *parts: said.append(parts[-1]))
    monkeypatch.setenv("DONKEY_CACHE", str(tmp_path / "another cache"))
    assert donkey.load_model(tiny_ckpt, "ort", "cpu").engine == "ort"
    assert said == []  # the Python API builds quietly
    monkeypatch.setenv("DONKEY_CACHE", str(tmp_path / "a third cache"))
    runner.invoke(app, [*args, "-o", str(tmp_path / "d.gif")])
    assert len(said) == 1 and said[0].startswith("the ONNX export of")  # the CLI does not


def test_a_damaged_cache_entry_is_built_again(runner, tiny_ckpt, clip, tmp_path, monkeypatch):
    """A truncated graph in the cache failed every later run with 'export the model again',
    which the user never did."""
    monkeypatch.setenv("DONKEY_CACHE", str(tmp_path / "cache"))
    src, drv = clip
    args = ["animate", str(src), str(drv), "--model", str(tiny_ckpt), "--engine", "ort"]
    args += ["--device", "cpu"]
    assert runner.invoke(app, [*args, "-o", str(tmp_path / "a.gif")]).exit_code == 0
    (entry,) = (tmp_path / "cache" / "onnx").iterdir()
    graph = entry / "generator.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "b.gif")])
    assert result.exit_code == 0, result.output
    assert f"rebuilding {entry} failed its check" in result.output
    assert "generator.onnx: sha256 differs" in result.output
    assert (tmp_path / "b.gif").read_bytes() == (tmp_path / "a.gif").read_bytes()
    assert len(graph.read_bytes()) > 1000  # built again in the same place
    # An export folder the user made is not the cache's to rebuild: its error stands.
    folder = tmp_path / "mine"
    assert (
        runner.invoke(app, ["export", "--model", str(tiny_ckpt), "-o", str(folder)]).exit_code == 0
    )
    (folder / "generator.onnx").write_bytes(b"x")
    result = runner.invoke(app, [*args[:3], "--model", str(folder), "-o", str(tmp_path / "c.gif")])
    assert result.exit_code == 1 and "export the model again" in result.output
    assert folder.is_dir()
