import copy
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pytest
import torch

from donkey.cli.app import app
from donkey.data.datasets import list_videos, load_videos
from donkey.data.manifest import load_manifest
from donkey.data.synthetic import synthesize
from donkey.model.checkpoint import load_checkpoint, load_networks, save_checkpoint
from donkey.model.config import apply_overrides, config_from_dict, config_to_dict, load_config
from donkey.model.errors import CheckpointError, ConfigError, DonkeyError
from donkey.model.provenance import describe_training, training_summary
from donkey.train.ema import WeightAverage
from donkey.train.trainer import TrainOptions, train
from tests.conftest import CONFIGS, MGIF_TRAIN, ROOT, error_lines, invoke, needs_shared_data


@pytest.fixture(scope="module")
def synth_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth videos") / "creatures"
    synthesize(folder, 16, size=32, seed=11, frames=(4, 8))
    return folder


@pytest.fixture(scope="module")
def synth_pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth pairs") / "pairs"
    synthesize(folder, 4, size=32, seed=12, pairs=True, frames=(5, 8))
    return folder / "pairs.json"


def _cfg(**overrides):
    data = config_to_dict(load_config(CONFIGS / "tiny.yaml"))
    apply_overrides(data, [f"{k}={v}" for k, v in overrides.items()])
    return config_from_dict(data)


def _mean(history, key, part):
    values = [h[key] for h in history]
    return statistics.mean(values[:20] if part == "first" else values[-20:])


@needs_shared_data()
def test_tiny_config_loss_falls_on_mgif(tmp_path):
    files = list_videos(MGIF_TRAIN)[:8]
    videos, _ = load_videos(files, 32)
    result = train(
        _cfg(**{"train.steps": 200}),
        videos,
        None,
        TrainOptions(run_dir=tmp_path / "run", device="cpu"),
    )
    first, last = (
        _mean(result.history, "g_total", "first"),
        _mean(result.history, "g_total", "last"),
    )
    print(f"mgif tiny 200 steps: first-20 mean {first:.3f}, last-20 mean {last:.3f}")
    assert last <= 0.7 * first
    assert result.step == 200 and (tmp_path / "run" / "last.ckpt").exists()


def test_tiny_config_loss_falls_on_synthetic(tmp_path, synth_videos):
    videos, _ = load_videos(list_videos(synth_videos), 32)
    result = train(
        _cfg(**{"train.steps": 120}),
        videos,
        None,
        TrainOptions(run_dir=tmp_path / "run", device="cpu"),
    )
    first, last = _mean(result.history, "g_rec", "first"), _mean(result.history, "g_rec", "last")
    assert last <= 0.7 * first
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 120 and log[-1]["step"] == 120
    assert (tmp_path / "run" / "samples" / "step_0000100.png").exists()
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, synth_videos):
    videos, _ = load_videos(list_videos(synth_videos), 32)
    cfg = _cfg(**{"train.steps": 24, "train.checkpoint_every": 5})
    straight = train(cfg, videos, None, TrainOptions(run_dir=tmp_path / "straight", device="cpu"))
    half = train(
        cfg, videos, None, TrainOptions(run_dir=tmp_path / "split", device="cpu", until=12)
    )
    assert half.step == 12
    resumed = train(
        cfg,
        videos,
        None,
        TrainOptions(
            run_dir=tmp_path / "split", device="cpu", resume=tmp_path / "split" / "last.ckpt"
        ),
    )
    assert straight.step == resumed.step == 24 and len(resumed.history) == 12
    a = load_checkpoint(tmp_path / "straight" / "last.ckpt")
    b = load_checkpoint(tmp_path / "split" / "last.ckpt")
    assert a.training["step"] == b.training["step"] == 24
    for key, value in a.state.items():
        assert torch.equal(value, b.state[key]), key
    drop = {"seconds"}
    assert {k: v for k, v in straight.history[-1].items() if k not in drop} == {
        k: v for k, v in resumed.history[-1].items() if k not in drop
    }


def test_init_loads_weights_and_starts_at_step_zero(tmp_path, synth_videos):
    videos, _ = load_videos(list_videos(synth_videos), 32)
    first = train(
        _cfg(**{"train.steps": 3}), videos, None, TrainOptions(run_dir=tmp_path / "a", device="cpu")
    )
    assert first.step == 3
    second = train(
        _cfg(**{"train.steps": 2}),
        videos,
        None,
        TrainOptions(run_dir=tmp_path / "b", device="cpu", init=tmp_path / "a" / "last.ckpt"),
    )
    assert second.history[0]["step"] == 1 and second.step == 2


def test_freeze_keeps_the_motion_networks_as_loaded(tmp_path, synth_videos):
    videos, _ = load_videos(list_videos(synth_videos), 32)
    train(
        _cfg(**{"train.steps": 2}), videos, None, TrainOptions(run_dir=tmp_path / "a", device="cpu")
    )
    before = load_checkpoint(tmp_path / "a" / "last.ckpt").state
    cfg = _cfg(**{"train.steps": 3, "train.freeze": "[kp_detector, dense_motion]"})
    with pytest.raises(DonkeyError, match="needs weights to keep: start from --init"):
        train(cfg, videos, None, TrainOptions(run_dir=tmp_path / "c", device="cpu"))
    train(
        cfg,
        videos,
        None,
        TrainOptions(run_dir=tmp_path / "b", device="cpu", init=tmp_path / "a" / "last.ckpt"),
    )
    after = load_checkpoint(tmp_path / "b" / "last.ckpt").state
    frozen = ("kp_detector.", "generator.dense_motion_module.")
    # Weights and batch-norm statistics alike: frozen parts run in eval mode.
    kept = [k for k in before if k.startswith(frozen)]
    assert any(k.endswith("running_mean") for k in kept) and len(kept) > 20
    for key in kept:
        assert torch.equal(before[key], after[key]), key
    trained = [k for k in before if not k.startswith(frozen) and k.endswith("weight")]
    changed = [k for k in trained if not torch.equal(before[k], after[k])]
    assert len(changed) == len(trained), set(trained) - set(changed)


def test_freeze_names_are_checked():
    with pytest.raises(
        ConfigError,
        match=r"train.freeze takes distinct names from kp_detector, dense_motion; got \['generator'\]",
    ):
        _cfg(**{"train.freeze": "[generator]"})
    with pytest.raises(ConfigError, match="train.freeze takes distinct names"):
        _cfg(**{"train.freeze": "[kp_detector, kp_detector]"})


def test_dual_mode_trains_from_a_pairs_manifest(tmp_path, synth_pairs):
    manifest = load_manifest(synth_pairs)
    cfg = _cfg(**{"train.steps": 6, "train.mode": "dual", "train.disc_keypoints": "driving"})
    result = train(cfg, None, [manifest], TrainOptions(run_dir=tmp_path / "dual", device="cpu"))
    assert result.step == 6 and all(np.isfinite(h["g_total"]) for h in result.history)


def test_mixed_mode_alternates_and_resumes_bit_identically(tmp_path, synth_videos, synth_pairs):
    videos, _ = load_videos(list_videos(synth_videos), 32)
    manifests = [load_manifest(synth_pairs), load_manifest(synth_pairs)]
    cfg = _cfg(
        **{
            "train.steps": 9,
            "train.mode": "mixed",
            "train.pair_every": 3,
            "train.checkpoint_every": 2,
        }
    )
    straight = train(cfg, videos, manifests, TrainOptions(run_dir=tmp_path / "a", device="cpu"))
    assert [h["pair_step"] for h in straight.history] == [0.0, 0.0, 1.0] * 3
    train(cfg, videos, manifests, TrainOptions(run_dir=tmp_path / "b", device="cpu", until=4))
    resumed = train(
        cfg,
        videos,
        manifests,
        TrainOptions(run_dir=tmp_path / "b", device="cpu", resume=tmp_path / "b" / "last.ckpt"),
    )
    assert resumed.step == 9
    a, b = (load_checkpoint(tmp_path / r / "last.ckpt").state for r in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_settings_that_change_the_sampling(tmp_path, synth_videos):
    from donkey.model.errors import CheckpointError

    videos, _ = load_videos(list_videos(synth_videos), 32)
    train(_cfg(**{"train.steps": 2}), videos, None, TrainOptions(run_dir=tmp_path, device="cpu"))
    changed = _cfg(**{"train.steps": 4, "train.seed": 5, "train.batch_size": 2})
    resume = TrainOptions(run_dir=tmp_path, device="cpu", resume=tmp_path / "last.ckpt")
    with pytest.raises(CheckpointError) as err:
        train(changed, videos, None, resume)
    assert str(err.value) == (
        f"{tmp_path / 'last.ckpt'}: resuming would change the run's sampling (batch_size "
        f"{_cfg().train.batch_size} -> 2, seed 0 -> 5); use the run's own settings, or start a "
        "new run folder"
    )
    # More steps is fine: --steps is the one thing a resumed run may change.
    assert train(_cfg(**{"train.steps": 3}), videos, None, resume).step == 3


def test_mixed_mode_needs_both_videos_and_pairs(tmp_path, synth_videos):
    from donkey.model.errors import DonkeyError

    videos, _ = load_videos(list_videos(synth_videos), 32)
    cfg = _cfg(**{"train.steps": 2, "train.mode": "mixed"})
    with pytest.raises(DonkeyError, match="train.mode is mixed: give a pairs manifest"):
        train(cfg, videos, None, TrainOptions(run_dir=tmp_path / "m", device="cpu"))


def _train_args(run, synth_videos, *more):
    return [
        "train",
        str(CONFIGS / "tiny.yaml"),
        "--data",
        str(synth_videos),
        "-o",
        str(run),
        "--device",
        "cpu",
        "--val-fraction",
        "0",
        *more,
    ]


def test_cli_train_resume_auto_and_errors(runner, tmp_path, synth_videos):
    run = tmp_path / "cli run"
    args = _train_args(run, synth_videos)
    result = runner.invoke(app, [*args, "--steps", "4"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*args, "--steps", "6", "--resume", "auto"])
    assert result.exit_code == 0, result.output
    assert "step 6/6; 2 steps" in result.output
    log, ckpt = (run / "log.jsonl").read_bytes(), (run / "last.ckpt").read_bytes()
    result = runner.invoke(app, [*args, "--steps", "2"])  # a fresh start would replace the run
    assert result.exit_code == 1 and "holds a previous run (last.ckpt, log.jsonl)" in result.output
    assert (run / "log.jsonl").read_bytes() == log and (run / "last.ckpt").read_bytes() == ckpt
    result = runner.invoke(app, [*args, "--set", "train.stepz=3"])
    assert result.exit_code == 1 and "unknown config key 'train.stepz'" in result.output
    result = runner.invoke(app, [*args, "--overwrite", "--set", "train.loss.perceptual=1.0"])
    assert result.exit_code == 1 and "--vgg19-weights" in result.output
    result = runner.invoke(app, ["train", str(CONFIGS / "tiny.yaml"), "-o", str(run)])
    assert result.exit_code == 1 and "give --data DIR" in result.output
    # With weight averaging the next commands use the averaged weights.
    result = runner.invoke(app, [*args, "--overwrite", "--steps", "2", "--set", "train.ema=0.9"])
    assert result.exit_code == 0, result.output
    averaged = run / "ema.safetensors"
    assert f"averaged weights (train.ema 0.9): {averaged}" in result.output
    assert f"next: donkey eval --model {shlex.quote(str(averaged))}" in result.output.replace(
        "\n", ""
    )


@pytest.mark.slow
@pytest.mark.parametrize("frozen", ["[]", "[kp_detector]"])
def test_torchrun_two_processes_on_cpu(tmp_path, synth_videos, frozen, tiny_networks):
    if shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("torchrun not installed beside this Python")
    debug = tmp_path / "debug"
    env = dict(os.environ, DONKEY_DEBUG_DIR=str(debug), OMP_NUM_THREADS="1")
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_port",
        str(29500 + os.getpid() % 1000),
        "-m",
        "donkey",
        "train",
        str(CONFIGS / "tiny.yaml"),
        "--data",
        str(synth_videos),
        "-o",
        str(tmp_path / "ddp run"),
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--val-fraction",
        "0",
        "--device",
        "cpu",
        "--set",
        "train.checkpoint_every=1",
        "--set",
        f"train.freeze={frozen}",  # a frozen network is left out of DistributedDataParallel
    ]
    if frozen != "[]":  # freezing needs weights to keep
        cmd += ["--init", str(save_checkpoint(tmp_path / "init.ckpt", tiny_networks))]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    w0 = torch.load(debug / "rank0_weights.pt", weights_only=True)
    w1 = torch.load(debug / "rank1_weights.pt", weights_only=True)
    params = [
        k for k in w0 if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    ]
    for net in ("kp_detector.", "generator.", "discriminator."):
        assert any(k.startswith(net) for k in params)
    for key in params:
        assert torch.equal(w0[key], w1[key]), key
    r0 = json.loads((debug / "rank0.json").read_text())
    r1 = json.loads((debug / "rank1.json").read_text())
    seen0 = {i for batch in r0["samples"] for i in batch}
    seen1 = {i for batch in r1["samples"] for i in batch}
    assert len(seen0) == len(seen1) == 6 and not seen0 & seen1
    assert r1["written"] == [] and len(r0["written"]) == 4  # 3 periodic + 1 at exit
    ckpt = load_checkpoint(tmp_path / "ddp run" / "last.ckpt")
    assert ckpt.training["step"] == 3
    for key in params:
        assert torch.equal(ckpt.state[key], w0[key])


def test_sigterm_to_the_process_group_saves_and_exits_cleanly(tmp_path, synth_videos):
    # `timeout`, `kill -- -PGID` and job schedulers signal every process of the group, the data
    # loader's workers too; the run must still save where it stopped and exit 0 without a traceback.
    import signal
    import time

    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "donkey", "train", str(CONFIGS / "tiny.yaml")]
    cmd += ["--data", str(synth_videos), "-o", str(run), "--device", "cpu", "--threads", "1"]
    cmd += ["--workers", "2", "--steps", "100000", "--set", "train.log_every=1"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        log = run / "log.jsonl"
        while not (log.exists() and len(log.read_text().splitlines()) >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    last_logged = json.loads(log.read_text().splitlines()[-1])["step"]
    assert f"stopped by SIGTERM at step {last_logged} of 100000 (saved)" in stdout
    assert load_checkpoint(run / "last.ckpt").training["step"] == last_logged >= 3


def test_time_limit_stops_saves_and_resumes(tmp_path, synth_videos):
    videos, _ = load_videos(list_videos(synth_videos), 32)
    cfg = _cfg(**{"train.steps": 100000, "train.checkpoint_every": 100000})
    result = train(
        cfg, videos, None, TrainOptions(run_dir=tmp_path / "run", device="cpu", time_limit=1.5)
    )
    assert 1 <= result.step < 100000 and result.seconds >= 1.5
    assert result.stopped == "time limit"
    assert load_checkpoint(tmp_path / "run" / "last.ckpt").training["step"] == result.step
    again = train(
        cfg,
        videos,
        None,
        TrainOptions(
            run_dir=tmp_path / "run",
            resume=tmp_path / "run" / "last.ckpt",
            device="cpu",
            until=result.step + 2,
        ),
    )
    assert again.step == result.step + 2


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90.0), ("50m", 3000.0), ("1.5h", 5400.0), ("12", 12.0), (" 2M ", 120.0)],
)
def test_durations_parse(text, seconds):
    from donkey.cli.common import parse_duration

    assert parse_duration(text, "--time-limit") == seconds


@pytest.mark.parametrize("text", ["0", "-5m", "abc", "inf", "nan", "", "m", "5d"])
def test_bad_time_limit_is_one_line(runner, tmp_path, synth_videos, text):
    result = runner.invoke(
        app,
        [
            "train",
            "tiny",
            "--data",
            str(synth_videos),
            "-o",
            str(tmp_path / "r"),
            "--time-limit",
            text,
        ],
    )
    assert result.exit_code == 1
    assert f"--time-limit expects a duration like 90s, 50m or 1.5h, got {text!r}" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_torchrun_time_limit_stops_every_rank_at_the_same_step(tmp_path, synth_videos):
    # Each rank has its own clock; if one stopped a step before the other, the other's next
    # gradient all-reduce would wait forever.
    if shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None:
        pytest.skip("torchrun not installed beside this Python")
    debug = tmp_path / "debug"
    env = dict(os.environ, DONKEY_DEBUG_DIR=str(debug), OMP_NUM_THREADS="1")
    cmd = [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--nproc_per_node", "2"]
    cmd += ["--master_port", str(30500 + os.getpid() % 1000), "-m", "donkey", "train"]
    cmd += [str(CONFIGS / "tiny.yaml"), "--data", str(synth_videos), "-o", str(tmp_path / "run")]
    cmd += ["--steps", "100000", "--batch-size", "2", "--val-fraction", "0", "--device", "cpu"]
    cmd += ["--time-limit", "3s"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r0 = json.loads((debug / "rank0.json").read_text())
    r1 = json.loads((debug / "rank1.json").read_text())
    step = load_checkpoint(tmp_path / "run" / "last.ckpt").training["step"]
    assert 1 <= step < 100000 and len(r0["samples"]) == len(r1["samples"]) == step
    assert "stopped at --time-limit 3s" in proc.stdout


def test_weight_average_follows_its_formula(tiny_networks):
    live = copy.deepcopy(tiny_networks)  # the session fixture stays untouched
    average = WeightAverage(live, decay=0.5)
    assert not any(k.startswith("discriminator.") for k in average.state)
    key = next(k for k, v in average.state.items() if v.is_floating_point() and v.dim() == 4)
    counter = next(k for k, v in average.state.items() if not v.is_floating_point())
    start = average.state[key].clone()
    with torch.no_grad():  # the training step, as the optimiser does it: in place
        live.get_parameter(key).add_(1.0)
        live.state_dict()[counter].fill_(7)
    average.update()  # first update: d = min(0.5, 1/10) = 0.1
    torch.testing.assert_close(average.state[key], start + 0.9, rtol=0, atol=1e-6)
    assert int(average.state[counter]) == 7  # integers are copied, not averaged
    average.update()  # d = min(0.5, 2/11)
    d = 2 / 11
    torch.testing.assert_close(
        average.state[key], d * (start + 0.9) + (1 - d) * (start + 1), rtol=0, atol=1e-6
    )
    for _ in range(20):
        average.update()  # d reaches the decay: 0.5
    assert average.updates == 22
    torch.testing.assert_close(average.state[key], start + 1, rtol=0, atol=1e-5)


def test_weight_average_refuses_a_saved_average_that_does_not_fit(tiny_networks):
    average = WeightAverage(tiny_networks, decay=0.9)
    saved = average.state_dict()
    key = next(iter(saved["state"]))
    for bad, message in (
        ({**saved, "updates": -1}, "its weight average has no valid update count"),
        ({**saved, "updates": True}, "its weight average has no valid update count"),
        ([1, 2], "its weight average is not a mapping of tensors"),
        ({**saved, "state": {key: saved["state"][key]}}, r"\(weight average\): .*missing"),
        (
            {**saved, "state": {**saved["state"], key: saved["state"][key].long()}},
            r"\(weight average\): .*wrong dtype",
        ),
    ):
        with pytest.raises(CheckpointError, match=f"run.ckpt:? {message}"):
            average.load_state_dict(bad, "run.ckpt")


def test_ema_run_writes_averaged_weights_and_resumes_bit_identically(tmp_path, synth_videos):
    videos, _ = load_videos(list_videos(synth_videos), 32)
    cfg = _cfg(**{"train.steps": 12, "train.checkpoint_every": 5, "train.ema": 0.9})
    train(cfg, videos, None, TrainOptions(run_dir=tmp_path / "straight", device="cpu"))
    train(cfg, videos, None, TrainOptions(run_dir=tmp_path / "split", device="cpu", until=6))
    split_last = tmp_path / "split" / "last.ckpt"
    assert load_checkpoint(split_last).training["ema"]["updates"] == 6
    train(
        cfg, videos, None, TrainOptions(run_dir=tmp_path / "split", device="cpu", resume=split_last)
    )
    a = load_checkpoint(tmp_path / "straight" / "ema.safetensors")
    b = load_checkpoint(tmp_path / "split" / "ema.safetensors")
    last = load_checkpoint(tmp_path / "straight" / "last.ckpt")
    assert a.train_config["shipped_from_step"] == 12 and a.train_config["weight_average"] == 0.9
    assert not any(k.startswith("discriminator.") for k in a.state)
    for key, value in a.state.items():
        assert torch.equal(value, b.state[key]), key
    moved = [
        k for k, v in a.state.items() if v.is_floating_point() and not torch.equal(v, last.state[k])
    ]
    assert len(moved) > len(a.state) // 2  # an average, not a copy of the last weights
    # The averaged file is a model like any other.
    load_networks(tmp_path / "straight" / "ema.safetensors")
    summary = training_summary(a.model_config, a.train_config, a.training)
    assert summary["steps"] == 12 and "ema 0.9" in describe_training(summary)


def test_ema_across_resumes_starts_changes_refuses_and_is_cleared(tmp_path, synth_videos):
    videos, _ = load_videos(list_videos(synth_videos), 32)
    run, last = tmp_path / "run", tmp_path / "run" / "last.ckpt"

    def go(steps: int, ema: float, **options):
        cfg = _cfg(**{"train.steps": steps, "train.ema": ema})
        return train(cfg, videos, None, TrainOptions(run_dir=run, device="cpu", **options))

    go(8, 0.0, until=3)
    assert not (run / "ema.safetensors").exists()
    result = go(8, 0.99, until=5, resume=last)  # switched on mid-run
    assert result.notes == ["the weight average starts at step 3, from the weights there"]
    assert load_checkpoint(last).training["ema"]["updates"] == 2
    result = go(8, 0.9, until=6, resume=last)  # another decay continues the same average
    assert result.notes == ["the weight average continues with train.ema 0.9 (it was 0.99)"]
    assert load_checkpoint(last).training["ema"]["updates"] == 3
    before = last.read_bytes()
    with pytest.raises(CheckpointError, match=r"keeps a weight average \(train.ema 0.9\)"):
        go(8, 0.0, resume=last)  # would silently drop it
    assert last.read_bytes() == before
    go(2, 0.0, overwrite=True)  # a fresh start leaves no average of the old run behind
    assert not (run / "ema.safetensors").exists()


def _damage(training):
    state = training["optimizers"]["generator"]["state"]
    state[next(iter(state))]["exp_avg"] = torch.zeros(1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.pop("step"), "(step None)"),
        (lambda t: t.__setitem__("step", "abc"), "(step 'abc')"),
        (lambda t: t.__setitem__("step", -5), "(step -5)"),
        (
            lambda t: t.__setitem__("optimizers", {}),
            "(optimiser kp_detector: 'kp_detector' missing)",
        ),
        (
            lambda t: t["rng"].__setitem__("torch", torch.zeros(3)),
            "(random number generator state)",
        ),
        (_damage, "(optimiser generator: exp_avg is (1,) for a "),
        (lambda t: t.__setitem__("step", 10**30), "(step 1000000000000000000000000000000)"),
        (
            lambda t: t["optimizers"]["generator"]["param_groups"][0].__setitem__("betas", "xy"),
            "(optimiser generator: betas 'xy')",
        ),
        (
            lambda t: t["optimizers"]["generator"]["param_groups"][0].__setitem__("amsgrad", True),
            "(optimiser generator: amsgrad True)",
        ),
    ],
)
def test_a_damaged_training_state_is_one_line_before_anything_is_written(
    runner, tmp_path, synth_videos, change, message
):
    """Each of these was a traceback (KeyError, ValueError, TypeError, or Adam failing mid-run)."""
    base = tmp_path / "base"
    code, text = invoke(runner, *_train_args(base, synth_videos, "--steps", "2"))
    assert code == 0, text
    payload = torch.load(base / "last.ckpt", weights_only=True)
    change(payload["training"])
    torch.save(payload, tmp_path / "damaged.ckpt")
    run = tmp_path / "run"
    code, text = invoke(
        runner,
        *_train_args(run, synth_videos, "--steps", "3", "--resume", tmp_path / "damaged.ckpt"),
    )
    assert code == 1 and len(error_lines(text)) == 1, text
    assert "damaged.ckpt: training state is damaged " + message in text
    assert not run.exists()


def test_resume_auto_where_the_run_stopped_before_its_first_checkpoint(
    runner, tmp_path, synth_videos
):
    """It was refused with advice to run the same command again."""
    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)
    (run / "log.jsonl").write_text('{"step": 1, "g_total": 9.0}\n')
    (run / "tensorboard" / "events.out.tfevents.1.old.0").write_bytes(b"old curves")
    code, text = invoke(runner, *_train_args(run, synth_videos, "--steps", "2", "--resume", "auto"))
    assert code == 0, text
    assert "holds no last.ckpt (the run there stopped before its first checkpoint); starting " in (
        " ".join(text.split())
    )
    assert load_checkpoint(run / "last.ckpt").training["step"] == 2
    assert not (run / "tensorboard" / "events.out.tfevents.1.old.0").exists()
    logged = [json.loads(line) for line in (run / "log.jsonl").open()]
    assert [entry["step"] for entry in logged] == [1, 2]  # the old line is gone
    assert all(entry["g_total"] != 9.0 for entry in logged)


def test_resume_auto_refuses_a_run_whose_checkpoint_went_missing(runner, tmp_path, synth_videos):
    """Past its first checkpoint, a missing last.ckpt was moved away, not never written: the
    folder (its weight average above all) must not be wiped as a fresh start."""
    run = tmp_path / "run"
    args = _train_args(run, synth_videos, "--set", "train.checkpoint_every=2")
    assert invoke(runner, *args, "--steps", "3", "--set", "train.ema=0.9")[0] == 0
    (run / "last.ckpt").unlink()
    average = (run / "ema.safetensors").read_bytes()
    code, text = invoke(runner, *args, "--steps", "3", "--resume", "auto")
    assert code == 1 and "holds a previous run (log.jsonl)" in text, text
    (run / "ema.safetensors").unlink()  # the log alone, past step 2, still says it went further
    code, text = invoke(runner, *args, "--steps", "3", "--resume", "auto")
    assert code == 1 and "holds a previous run (log.jsonl)" in text, text
    assert average and len((run / "log.jsonl").read_text().splitlines()) == 3


def test_a_resumed_run_logs_each_step_once(runner, tmp_path, synth_videos):
    """The steps between the checkpoint and a crash were logged twice after the resume."""
    run = tmp_path / "run"
    args = _train_args(run, synth_videos, "--set", "train.log_every=1")
    assert invoke(runner, *args, "--steps", "2")[0] == 0
    at_two = (run / "last.ckpt").read_bytes()
    assert invoke(runner, *args, "--steps", "4", "--resume", "auto")[0] == 0
    (run / "last.ckpt").write_bytes(at_two)  # as if killed after step 4, saved at step 2
    code, text = invoke(runner, *args, "--steps", "4", "--resume", "auto")
    assert code == 0, text
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").open()] == [1, 2, 3, 4]
    # TensorBoard reads the three event files as one curve: steps 3 and 4 of the interrupted
    # run are hidden by the resumed run's purge_step.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = EventAccumulator(str(run / "tensorboard"))
    curves.Reload()
    assert [e.step for e in curves.Scalars("train/g_total")] == [1, 2, 3, 4]
    events = sorted((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 3
    code, text = invoke(runner, *args, "--steps", "1", "--overwrite")
    assert code == 0, text
    assert not any(path.exists() for path in events)
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_device_cuda_n_is_understood(runner, tmp_path, synth_videos):
    from donkey.runtime.device import pick_device

    if torch.cuda.is_available():
        assert pick_device("cuda:0", 0) == torch.device("cuda", 0)
        return
    code, text = invoke(runner, *_train_args(tmp_path / "r", synth_videos, "--device", "cuda:0"))
    assert code == 1 and "--device cuda:0 asked for, but PyTorch sees no CUDA GPU" in text


def test_resume_mistakes_are_explained(runner, tmp_path, synth_videos):
    run = tmp_path / "run"
    assert invoke(runner, *_train_args(run, synth_videos, "--steps", "4"))[0] == 0
    before = (run / "last.ckpt").read_bytes()
    code, text = invoke(runner, *_train_args(run, synth_videos, "--steps", "3", "--resume", "auto"))
    assert code == 1 and len(error_lines(text)) == 1, text
    assert "last.ckpt: the run is at step 4, past train.steps 3; give --steps above it" in text
    assert (run / "last.ckpt").read_bytes() == before  # it was saved with train.steps 3 before
    code, text = invoke(runner, *_train_args(run, synth_videos, "--steps", "5", "--resume", run))
    assert code == 1 and f"--resume {run}: is a folder; give its checkpoint" in text
    code, text = invoke(
        runner,
        *_train_args(run, synth_videos, "--steps", "5", "--resume", "auto", "--init", "x.ckpt"),
    )
    assert code == 0 and "--init x.ckpt is not used" in " ".join(text.split()), text
    code, text = invoke(runner, "info", "--model", run)
    assert code == 1 and f"a training run: give --model {run / 'last.ckpt'}" in text, text
