"""An exponential moving average of the inference networks' weights (train.ema).

A GAN fine-tune at a small batch wanders around a good point, and an average of its weights
sits nearer it: averaging two checkpoints of the default model's CPU fine-tune, 400 steps
apart, reconstructed better than either (docs/default-model.md, "Weight averaging"). This
keeps that average at every step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from donkey.model.checkpoint import DISCRIMINATOR_PREFIX, check_same_layout
from donkey.model.errors import CheckpointError
from donkey.model.networks import Networks


class WeightAverage:
    """avg <- d * avg + (1 - d) * weights after every step, with d = min(decay, (1 + n) / (10 + n))
    after n updates, so the first steps of a run are not held to the weights it started from.

    Covers everything `donkey animate` uses (not the discriminator). Float tensors (weights and
    batch-norm statistics) are averaged; integer ones (batch-norm step counters) are copied.
    """

    def __init__(self, networks: Networks, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        # state_dict() tensors share storage with the live parameters and buffers, so these
        # pairs stay valid for the whole run and each update is two fused calls.
        live = {
            k: v for k, v in networks.state_dict().items() if not k.startswith(DISCRIMINATOR_PREFIX)
        }
        self.state = {k: v.detach().clone() for k, v in live.items()}
        floats = [k for k, v in live.items() if v.is_floating_point()]
        self._float_avg = [self.state[k] for k in floats]
        self._float_live = [live[k] for k in floats]
        self._int_pairs = [(self.state[k], v) for k, v in live.items() if not v.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_mul_(self._float_avg, d)
        torch._foreach_add_(self._float_avg, self._float_live, alpha=1 - d)
        for target, value in self._int_pairs:
            target.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "updates": self.updates,
            "state": {k: v.detach().cpu().clone() for k, v in self.state.items()},
        }

    def load_state_dict(self, saved: Any, source: object) -> None:
        """Restores a saved average (same names, shapes and dtypes) and its update count."""
        state = saved.get("state") if isinstance(saved, dict) else None
        if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
        ):
            raise CheckpointError(f"{source}: its weight average is not a mapping of tensors")
        check_same_layout(f"{source} (weight average)", self.state, state)
        updates = saved.get("updates")
        if not isinstance(updates, int) or isinstance(updates, bool) or updates < 0:
            raise CheckpointError(f"{source}: its weight average has no valid update count")
        for key, value in state.items():
            self.state[key].copy_(value)
        self.updates = updates

    def full_state(self, networks: Networks) -> dict[str, Tensor]:
        """`networks`' state (discriminator included) with the averaged tensors in place."""
        return {**networks.state_dict(), **self.state}
