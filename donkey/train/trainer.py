"""The training loop: Monkey-Net self-reconstruction or Donkey-Net dual reconstruction.

One flat loop, top to bottom. The same command runs on one CPU, one GPU, or many processes
under torchrun (DistributedDataParallel; SyncBatchNorm on CUDA). Only rank 0 writes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from donkey.data.datasets import PairedVideoDataset, SingleVideoDataset, StepBatchSampler, Video
from donkey.data.manifest import PairsManifest
from donkey.data.mixing import JoinedDataset, MixedStepSampler, is_pair_step
from donkey.model.checkpoint import load_checkpoint, save_checkpoint, save_weights
from donkey.model.config import FREEZABLE, Config, TrainConfig, config_to_dict
from donkey.model.errors import CheckpointError, DonkeyError, brief
from donkey.model.fake_quant import enable_fake_quant
from donkey.model.networks import Networks
from donkey.runtime.device import pick_device
from donkey.runtime.distributed import Ranks, join, ranks_from_env
from donkey.train.ema import WeightAverage
from donkey.train.losses import build_perceptual
from donkey.train.steps import Models, discriminator_loss, generator_step_for
from donkey.train.visualize import save_sample_grid


@dataclass
class TrainOptions:
    run_dir: Path
    init: Path | None = None
    resume: Path | None = None
    vgg19_weights: Path | None = None
    device: str = "auto"
    threads: int | None = None
    until: int | None = (
        None  # stop at this step (an interruption); the lr schedule follows cfg steps
    )
    time_limit: float | None = None  # seconds of training (after loading); then save and stop
    debug_dir: Path | None = None  # per-rank weights and sample ids, for the multi-process test
    overwrite: bool = False  # a fresh start over a previous run: its curves and grids go
    on_step: Callable[[int, dict[str, float]], None] | None = None


@dataclass
class TrainResult:
    step: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    # Why the run ended before its last step: "time limit", "SIGTERM"; None if it did not.
    stopped: str | None = None
    notes: list[str] = field(default_factory=list)  # what the CLI should tell the user


def _leave_sigterm_to_the_trainer(_worker_id: int) -> None:
    """`timeout`, `kill -- -PGID` and schedulers signal the whole process group: a loader worker
    that died of the SIGTERM would crash the trainer before it saves. The trainer stops its
    workers itself once it has saved (and they exit if it dies)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _time_is_up(limit: float | None, t_start: float, dist: Ranks, device: torch.device) -> bool:
    if limit is None:
        return False
    up = time.perf_counter() - t_start >= limit
    if dist.world > 1:  # every rank must stop at the same step, or the next all-reduce hangs
        flag = torch.tensor([float(up)], device=device)
        torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MAX)
        up = bool(flag.item())
    return up


def rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": list(np.random.get_state()[1].tolist()),
        "python": list(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), 624, 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        # Saved on more GPUs than this machine has: the ones here continue their streams.
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def _damaged(path: Path | None, what: str) -> CheckpointError:
    return CheckpointError(
        f"{path}: training state is damaged ({what}); resume from another "
        "checkpoint, or start a new run"
    )


def saved_training_step(path: Path | None, training: Any) -> int:
    step = training.get("step") if isinstance(training, dict) else None
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 2**62:
        raise _damaged(path, f"step {brief(step)}")
    return step


# Adam's switches: the saved values replace the config's on load, and a run never changes them.
_OPTIMISER_SWITCHES = ("amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused")


def _unlike_settings(group: dict, expected: dict) -> str | None:
    """The first saved setting of another kind than a fresh optimiser's (betas as text, amsgrad
    switched on): each would fail inside Adam at the first step. A setting an older PyTorch did
    not save is absent, and load_state_dict fills it."""
    for key, value in expected.items():
        if key not in group:
            continue
        got = group[key]
        if type(got) is not type(value) or (isinstance(value, tuple) and len(got) != len(value)):
            return key
        if key in _OPTIMISER_SWITCHES and got != value:
            return key
    return None


def restore_training_state(
    path: Path | None, training: dict, optimizers: dict[str, torch.optim.Optimizer]
) -> None:
    """Optimiser moments and RNG streams from a resumed checkpoint, checked as they load: a
    wrong-shaped moment would otherwise fail inside Adam, mid-run, as a traceback."""
    saved = training.get("optimizers")
    for name, opt in optimizers.items():
        fresh = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
        try:
            opt.load_state_dict(saved[name])  # type: ignore[index]
        except KeyError as exc:
            raise _damaged(path, f"optimiser {name}: {brief(exc.args[0])} missing") from None
        except (TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            raise _damaged(
                path, f"optimiser {name}: {brief(str(exc) or type(exc).__name__)}"
            ) from None
        for group, expected in zip(opt.param_groups, fresh, strict=True):
            bad = _unlike_settings(group, expected)
            if bad is not None:
                raise _damaged(path, f"optimiser {name}: {bad} {brief(group[bad])}")
            for param in group["params"]:
                for key, value in opt.state.get(param, {}).items():
                    if key == "step":
                        continue
                    if not isinstance(value, torch.Tensor) or value.shape != param.shape:
                        shape = (
                            tuple(value.shape) if isinstance(value, torch.Tensor) else brief(value)
                        )
                        raise _damaged(
                            path,
                            f"optimiser {name}: {key} is {shape} for a {tuple(param.shape)} weight",
                        )
    try:
        set_rng_state(training["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError):
        raise _damaged(path, "random number generator state") from None


def load_init_weights(networks: Networks, path: Path) -> list[str]:
    """--init: weights only. Attention modules absent from the file keep their fresh (gate 0)
    initialisation, so a Monkey-Net checkpoint starts a Donkey-Net fine-tune; so does the
    discriminator of an inference-only file (the shipped default model)."""
    ckpt = load_checkpoint(path)
    own = networks.state_dict()
    fresh = [k for k in own if k not in ckpt.state]
    bad = [k for k in fresh if ".attention." not in k and not k.startswith("discriminator.")]
    unexpected = [k for k in ckpt.state if k not in own]
    shapes = [k for k in ckpt.state if k in own and own[k].shape != ckpt.state[k].shape]
    if bad or unexpected or shapes:
        keys = (bad or unexpected or shapes)[:2]
        raise CheckpointError(
            f"{path}: weights do not fit this config's model (e.g. {', '.join(keys)})"
        )
    networks.load_state_dict(ckpt.state, strict=False)
    return fresh


def freeze(networks: Networks, names: list[str]) -> None:
    """train.freeze: no gradients, and batch norm keeps its loaded statistics (eval mode).

    The optimisers keep every parameter (Adam skips those without a gradient), so a run
    can be resumed with a different freeze list."""
    for name in names:
        module = networks.get_submodule(FREEZABLE[name])
        module.eval()
        module.requires_grad_(False)


def _optimizers(networks: Networks, cfg: Config) -> dict[str, torch.optim.Optimizer]:
    t = cfg.train
    betas = (t.betas[0], t.betas[1])
    return {
        name: torch.optim.Adam(getattr(networks, name).parameters(), lr=t.lr, betas=betas)
        for name in ("kp_detector", "generator", "discriminator")
    }


def _pairs_dataset(cfg: Config, manifests: list[PairsManifest] | None):
    if not manifests:
        raise DonkeyError(f"train.mode is {cfg.train.mode}: give a pairs manifest with --pairs")
    parts = [
        PairedVideoDataset(m, cfg.model.image_size, cfg.train.augment, cfg.train.pair_repeats)
        for m in manifests
    ]
    return parts[0] if len(parts) == 1 else JoinedDataset(parts)


def _singles_dataset(cfg: Config, videos: list[Video] | None):
    if videos is None:
        raise DonkeyError(f"train.mode is {cfg.train.mode}: give training videos with --data")
    return SingleVideoDataset(videos, cfg.train.augment)


def _data(
    cfg: Config,
    videos: list[Video] | None,
    manifests: list[PairsManifest] | None,
    dist: Ranks,
    start: int,
    stop: int,
):
    """The dataset and the sampler that picks its batch for every step in [start, stop)."""
    t = cfg.train

    def sampler(size: int, seed: int) -> StepBatchSampler:
        return StepBatchSampler(size, t.batch_size, dist.world, dist.rank, seed, start, stop)

    if t.mode == "mixed":
        singles, pairs = _singles_dataset(cfg, videos), _pairs_dataset(cfg, manifests)
        # A different seed for the pairs' order: the two kinds do not move in lockstep.
        mixed = MixedStepSampler(
            sampler(len(singles), t.seed),
            sampler(len(pairs), t.seed + 1),
            len(singles),
            t.pair_every,
            start,
            stop,
        )
        return JoinedDataset([singles, pairs]), mixed
    dataset = _pairs_dataset(cfg, manifests) if t.mode == "dual" else _singles_dataset(cfg, videos)
    return dataset, sampler(len(dataset), t.seed)


EMA_FILE = "ema.safetensors"


def _save(
    path: Path,
    networks: Networks,
    cfg: Config,
    optimizers: dict,
    step: int,
    average: WeightAverage | None,
) -> list[str]:
    """last.ckpt, and with train.ema the averaged weights beside it (ready for eval or export)."""
    training = {
        "step": step,
        "optimizers": {k: v.state_dict() for k, v in optimizers.items()},
        "rng": rng_state(),
    }
    if average is not None:
        training["ema"] = average.state_dict()
    train_config = config_to_dict(cfg.train)
    written = [str(save_checkpoint(path, networks, train_config=train_config, training=training))]
    if average is not None:
        meta = {**train_config, "shipped_from_step": step, "weight_average": cfg.train.ema}
        averaged = save_weights(
            path.parent / EMA_FILE,
            cfg.model,
            average.full_state(networks),
            train_config=meta,
            inference_only=True,
        )
        written.append(str(averaged))
    return written


# What picks each step's samples: a resumed run with other values would not continue the run.
SCHEDULE_KEYS = ("mode", "pair_steps", "pair_every", "pair_repeats", "batch_size", "seed")


def check_same_schedule(path: Path, saved: dict | None, t_cfg: TrainConfig) -> None:
    """Refuses to resume with settings that change which samples later steps draw."""
    if not saved:
        return
    now = config_to_dict(t_cfg)
    defaults = config_to_dict(type(t_cfg)())
    changed = [
        f"{key} {saved.get(key, defaults[key])!r} -> {now[key]!r}"
        for key in SCHEDULE_KEYS
        if saved.get(key, defaults[key]) != now[key]
    ]
    if changed:
        raise CheckpointError(
            f"{path}: resuming would change the run's sampling ({', '.join(changed)}); use "
            "the run's own settings, or start a new run folder"
        )


def _logged_steps(log: Path) -> Iterator[tuple[str, int | None]]:
    """Each line of a run's log.jsonl with its step (None where the line is not a log entry)."""
    with log.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                step = json.loads(line).get("step")
            except (ValueError, AttributeError, RecursionError):
                step = None
            yield line, step if isinstance(step, int) and not isinstance(step, bool) else None


def stopped_before_first_checkpoint(run_dir: Path, checkpoint_every: int) -> bool:
    """A run folder with a log but no last.ckpt whose log stops short of the first checkpoint
    (and no weight average): a run killed early, with nothing saved to continue."""
    log = run_dir / "log.jsonl"
    if (run_dir / "last.ckpt").exists() or (run_dir / EMA_FILE).exists() or not log.is_file():
        return False
    if log.stat().st_size > 1 << 20:  # more lines than any run this short writes
        return False
    return all(step is not None and step < checkpoint_every for _, step in _logged_steps(log))


def train(
    cfg: Config,
    videos: list[Video] | None,
    manifests: list[PairsManifest] | None,
    options: TrainOptions,
) -> TrainResult:
    """Trains until cfg.train.steps total steps; RUN_DIR/last.ckpt always holds the newest state.

    Whether RUN_DIR may be written is the caller's decision (`donkey.app.training.plan_run`
    refuses to replace a previous run unless asked): a fresh start here writes over it.
    """
    t_cfg = cfg.train
    if len(t_cfg.loss.feature_matching) != cfg.model.discriminator.num_blocks:
        raise DonkeyError(
            f"train.loss.feature_matching needs {cfg.model.discriminator.num_blocks} weights "
            f"(one per discriminator block), got {len(t_cfg.loss.feature_matching)}"
        )
    if options.threads:
        torch.set_num_threads(options.threads)
    dist = ranks_from_env()
    device = pick_device(options.device, dist.local_rank)
    join(dist, "nccl" if device.type == "cuda" else "gloo")
    run_dir = options.run_dir
    last = run_dir / "last.ckpt"

    torch.manual_seed(t_cfg.seed)
    networks = Networks(cfg.model)
    perceptual = build_perceptual(
        t_cfg.loss.perceptual,
        options.vgg19_weights,
        t_cfg.loss.perceptual_layers,
        t_cfg.loss.perceptual_scales,
    )
    step = 0
    resume_state = None
    if options.resume is not None:
        ckpt = load_checkpoint(options.resume)
        if ckpt.training is None:
            raise CheckpointError(
                f"{options.resume}: holds no training state; use --init for weights only"
            )
        if ckpt.model_config != cfg.model:
            raise CheckpointError(f"{options.resume}: its model config differs from the one given")
        check_same_schedule(options.resume, ckpt.train_config, t_cfg)
        networks.load_state_dict(ckpt.state)
        resume_state = ckpt.training
        step = saved_training_step(options.resume, resume_state)
        if step > t_cfg.steps:
            # Training on would do nothing and rewrite the checkpoint's train.steps below its step.
            raise DonkeyError(
                f"{options.resume}: the run is at step {step}, past train.steps {t_cfg.steps}; "
                "give --steps above it to continue"
            )
    elif options.init is not None:
        load_init_weights(networks, options.init)
    elif t_cfg.freeze:
        raise DonkeyError(
            f"train.freeze {t_cfg.freeze} needs weights to keep: start from --init (or --resume)"
        )

    if dist.world > 1 and device.type == "cuda":
        networks = torch.nn.SyncBatchNorm.convert_sync_batchnorm(networks)
    networks.to(device).train()
    freeze(networks, t_cfg.freeze)
    if t_cfg.qat:
        if "kp_detector" not in t_cfg.qat_float:
            enable_fake_quant(networks.kp_detector)
        enable_fake_quant(networks.generator)
    layout = torch.channels_last if t_cfg.channels_last else torch.contiguous_format
    networks.to(memory_format=layout)
    if perceptual is not None:
        perceptual.to(device)
    optimizers = _optimizers(networks, cfg)
    notes: list[str] = []
    saved_average = (resume_state or {}).get("ema")
    if saved_average is not None and t_cfg.ema == 0:
        decay = saved_average.get("decay") if isinstance(saved_average, dict) else None
        raise CheckpointError(
            f"{options.resume}: the run keeps a weight average (train.ema {decay}); resume "
            "with --set train.ema=DECAY to continue it, or start a new run folder"
        )
    # Only rank 0 writes the average, so only it keeps one.
    average = WeightAverage(networks, t_cfg.ema) if t_cfg.ema > 0 and dist.main else None
    if resume_state is not None:
        restore_training_state(options.resume, resume_state, optimizers)
        if average is not None and saved_average is not None:
            average.load_state_dict(saved_average, options.resume)
            if saved_average.get("decay") != t_cfg.ema:
                notes.append(
                    f"the weight average continues with train.ema {t_cfg.ema:g} "
                    f"(it was {saved_average.get('decay')})"
                )
        elif average is not None:
            notes.append(f"the weight average starts at step {step}, from the weights there")
    elif dist.main:
        # A fresh start (--overwrite) must not leave the previous run's average beside it.
        (run_dir / EMA_FILE).unlink(missing_ok=True)
    if dist.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        # DDP refuses a module with nothing to train (a frozen keypoint detector); such a
        # module needs no gradient averaging anyway.
        models = Models(
            *(
                DistributedDataParallel(module, device_ids=ids)
                if any(p.requires_grad for p in module.parameters())
                else module
                for module in (networks.kp_detector, networks.generator, networks.discriminator)
            )
        )
    else:
        models = Models(networks.kp_detector, networks.generator, networks.discriminator)

    dataset, sampler = _data(
        cfg, videos, manifests, dist, step, min(t_cfg.steps, options.until or t_cfg.steps)
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=t_cfg.num_workers,
        persistent_workers=t_cfg.num_workers > 0,
        pin_memory=device.type == "cuda",
        worker_init_fn=_leave_sigterm_to_the_trainer,
    )
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    drop_step = int(round(t_cfg.lr_drop_at * t_cfg.steps))

    writer = None
    if dist.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=1))
        if resume_state is not None:
            keep_log_until(run_dir / "log.jsonl", step)
        elif options.overwrite:
            clear_previous_run(run_dir)
        writer = _tensorboard(run_dir, step + 1 if resume_state is not None else None)
    # A fresh start (allowed by --overwrite) begins a new log; a resumed run continues its own.
    log_mode = "a" if resume_state is not None else "w"
    log_file = (run_dir / "log.jsonl").open(log_mode) if dist.main else None
    seen: list[list[int]] = []
    written: list[str] = []
    history: list[dict[str, float]] = []
    stop_requested = {"flag": False}
    stopped = None
    previous = (
        signal.signal(signal.SIGTERM, lambda *_: stop_requested.update(flag=True))
        if dist.main and _in_main_thread()
        else None
    )
    t_start = time.perf_counter()
    try:
        for batch in loader:
            lr = t_cfg.lr * (0.1 if step >= drop_step else 1.0)
            for opt in optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = lr
            batch = {
                k: v.to(device, non_blocking=True, memory_format=layout)
                if v.dim() == 4
                else v.to(device)
                for k, v in batch.items()
            }
            if options.debug_dir is not None:
                seen.append(batch["index"].tolist())

            for opt in optimizers.values():
                opt.zero_grad(set_to_none=True)
            with amp:
                out = generator_step_for(batch, t_cfg)(models, batch, t_cfg, perceptual)
            out.losses["total"].backward()
            optimizers["generator"].step()
            optimizers["kp_detector"].step()

            optimizers["discriminator"].zero_grad(set_to_none=True)
            with amp:
                loss_d = discriminator_loss(models, out)
            loss_d.backward()
            optimizers["discriminator"].step()
            if average is not None:
                average.update()
            step += 1

            record = {f"g_{k}": float(v.detach()) for k, v in out.losses.items()}
            record.update(
                step=step,
                d_loss=float(loss_d.detach()),
                lr=lr,
                seconds=round(time.perf_counter() - t_start, 3),
            )
            if t_cfg.mode == "mixed":
                record["pair_step"] = float(is_pair_step(step - 1, t_cfg.pair_every))
            history.append(record)
            if dist.main:
                log_file.write(json.dumps(record) + "\n")
                if step % t_cfg.log_every == 0 or step == t_cfg.steps:
                    log_file.flush()
                    for k, v in record.items():
                        if k != "step":
                            writer.add_scalar(f"train/{k}", v, step)
                if step % t_cfg.sample_every == 0:
                    save_sample_grid(run_dir / "samples" / f"step_{step:07d}.png", out.visuals)
                if step % t_cfg.checkpoint_every == 0:
                    written += _save(last, networks, cfg, optimizers, step, average)
            if options.on_step is not None:
                options.on_step(step, record)
            if stop_requested["flag"]:
                stopped = "SIGTERM"
                break
            if _time_is_up(options.time_limit, t_start, dist, device):
                stopped = "time limit"  # on every rank, whichever rank's clock ran out
                break
    finally:
        if dist.main and step > 0:
            written += _save(last, networks, cfg, optimizers, step, average)
        if log_file is not None:
            log_file.close()
        if writer is not None:
            writer.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if options.debug_dir is not None:
            _debug_dump(options.debug_dir, dist, networks, {"samples": seen, "written": written})
        if dist.world > 1 and torch_dist.is_initialized():
            torch_dist.barrier()
            torch_dist.destroy_process_group()
    return TrainResult(
        step=step,
        seconds=time.perf_counter() - t_start,
        history=history,
        stopped=stopped,
        notes=notes,
    )


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def clear_previous_run(run_dir: Path) -> None:
    """A fresh start in a folder that held a run (--overwrite, or --resume auto where the run
    stopped before its first checkpoint): the old run's curves and sample grids would otherwise
    mix with the new ones. Only the names the trainer writes are removed."""
    for folder, pattern in (("tensorboard", "events.out.tfevents.*"), ("samples", "step_*.png")):
        if (run_dir / folder).is_symlink():
            continue  # someone else's folder; only the run's own files go
        for path in (run_dir / folder).glob(pattern):
            path.unlink(missing_ok=True)


def keep_log_until(log: Path, step: int) -> None:
    """A resumed run repeats the steps after its checkpoint: their lines from the interrupted
    run are dropped, so the log holds each step once."""
    if not log.is_file():
        return
    kept = [
        line if line.endswith("\n") else line + "\n"
        for line, logged in _logged_steps(log)
        if logged is not None and logged <= step
    ]
    tmp = log.with_name(log.name + ".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, log)


def _tensorboard(run_dir: Path, purge_step: int | None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return _NullWriter()
    # purge_step hides the interrupted run's events from the resumed step on, as the log does.
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge_step)


class _NullWriter:
    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass


def _debug_dump(folder: Path, dist: Ranks, networks: Networks, record: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in networks.state_dict().items()}
    torch.save(state, folder / f"rank{dist.rank}_weights.pt")
    (folder / f"rank{dist.rank}.json").write_text(json.dumps(record))
