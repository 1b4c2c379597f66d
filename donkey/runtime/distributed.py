"""Ranks under torchrun: which rank this process is, its device, small exchanges between ranks.

Without torchrun (no WORLD_SIZE > 1 in the environment) every function here is the identity
for one process, and no process group is created.

The commands exchange only small JSON values between ranks (plans, failures, per-item numbers),
so their process group is gloo on every machine, GPUs included: the exchange needs no CUDA
tensors and works the same whatever engine (torch, ONNX Runtime, TensorRT) runs the model.
JSON rather than pickle, so nothing a peer sends is executed. Training joins the same way
(`join`), with nccl on GPUs for DistributedDataParallel's gradients.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as torch_dist

from donkey.model.errors import DonkeyError
from donkey.runtime.device import rank_device

T = TypeVar("T")

# A collective waits for the slowest rank. Shards are balanced, but a rank on a slower GPU or
# a busier disk can finish hours after the others on a large batch; a short timeout would
# kill a run that is only uneven. Override with DONKEY_DIST_TIMEOUT_S.
DEFAULT_TIMEOUT_S = 24 * 3600


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise DonkeyError(f"environment variable {name} must be an integer, got {text!r}") from None


def ranks_from_env() -> Ranks:
    """What torchrun told this process (WORLD_SIZE, RANK, LOCAL_RANK); one rank without it."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Ranks()
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < world or local < 0:
        raise DonkeyError(f"RANK={rank} / LOCAL_RANK={local} do not fit WORLD_SIZE={world}")
    return Ranks(rank, world, local)


def join(ranks: Ranks, backend: str = "gloo", timeout_s: int | None = None) -> None:
    """Sets up the process group of the torchrun job `ranks` (once per process; nothing for
    one rank).

    `backend`: gloo for the commands' JSON exchanges; the trainer asks for nccl on GPUs, where
    DistributedDataParallel averages gradients. `timeout_s`: how long a collective waits for
    the slowest rank (None: PyTorch's default).
    """
    if not ranks.distributed:
        return
    if not torch_dist.is_initialized():
        timeout = timedelta(seconds=timeout_s) if timeout_s is not None else None
        try:
            torch_dist.init_process_group(backend, timeout=timeout)
        except (ValueError, RuntimeError) as exc:  # WORLD_SIZE set without torchrun, no peer
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DonkeyError(
                f"WORLD_SIZE={ranks.world} but cannot join the torchrun job ({first[:200]}); "
                "start with torchrun, or unset WORLD_SIZE for one process"
            ) from None
        atexit.register(_finish)
    if torch_dist.get_world_size() != ranks.world or torch_dist.get_rank() != ranks.rank:
        raise DonkeyError("the process group does not match WORLD_SIZE/RANK")


def start(device: str = "auto") -> tuple[Ranks, str]:
    """Joins the torchrun job (when there is one) and picks this rank's device."""
    ranks = ranks_from_env()
    if not ranks.distributed:
        return ranks, device
    join(ranks, "gloo", _env_int("DONKEY_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    return ranks, rank_device(device, ranks.local_rank)


def _finish() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def gather_json(ranks: Ranks, value: Any) -> list[Any]:
    """Every rank's `value` (JSON-able), in rank order, on every rank."""
    if not ranks.distributed:
        return [value]
    data = json.dumps(value, separators=(",", ":")).encode()
    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(ranks.world)]
    torch_dist.all_gather(sizes, torch.tensor([len(data)], dtype=torch.int64))
    longest = max(int(s) for s in sizes)
    mine = torch.zeros(longest, dtype=torch.uint8)
    mine[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    buffers = [torch.empty(longest, dtype=torch.uint8) for _ in range(ranks.world)]
    torch_dist.all_gather(buffers, mine)
    return [json.loads(b[: int(n)].numpy().tobytes()) for b, n in zip(buffers, sizes)]


def run_guarded(ranks: Ranks, work: Callable[[], T]) -> tuple[T | None, list[str | None]]:
    """Runs `work` on this rank, then tells every rank which ranks failed and why.

    Returns (this rank's result or None, per-rank error message or None). A DonkeyError on one
    rank thus reaches all of them instead of leaving the others waiting at the next exchange.
    """
    try:
        result, error = work(), None
    except DonkeyError as exc:
        result, error = None, str(exc)
    return result, gather_json(ranks, error)


def in_turn(ranks: Ranks, work: Callable[[], T]) -> T:
    """Runs `work` on each machine's first rank, then on the others.

    Loading a model may build shared caches (the ONNX export of a checkpoint, TensorRT engines);
    the first rank builds them once and the others find them built. A failure is raised on
    every rank with the first rank's message.
    """
    if not ranks.distributed:
        return work()
    first = ranks.local_rank == 0
    result, errors = run_guarded(ranks, work) if first else (None, gather_json(ranks, None))
    failed = [e for e in errors if e]
    if failed:
        raise DonkeyError(failed[0])
    if not first:
        result, errors = run_guarded(ranks, work)
    else:
        errors = gather_json(ranks, None)
    failed = [e for e in errors if e]
    if failed:
        raise DonkeyError(failed[0])
    return result  # type: ignore[return-value]
