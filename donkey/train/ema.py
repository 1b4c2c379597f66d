"""An exponential moving average of the inference networks' weights (train.ema).

GAN fine-tunes at a small batch wander around a good point; their average sits nearer it.
Averaging two checkpoints of the default model's CPU fine-tune 400 steps apart reconstructed
better than either (docs/default-model.md), which is what this does at every step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from donkey.model.checkpoint import DISCRIMINATOR_PREFIX
from donkey.model.errors import CheckpointError
from donkey.model.networks import Networks


def _averaged(networks: Networks) -> dict[str, Tensor]:
    """The state the average covers: everything `donkey animate` uses, not the discriminator."""
    return {
        k: v for k, v in networks.state_dict().items() if not k.startswith(DISCRIMINATOR_PREFIX)
    }


class WeightAverage:
    """avg <- d * avg + (1 - d) * weights after every step, with d = min(decay, (1 + n) / (10 + n))
    after n updates, so the first steps of a run are not held to the weights it started from.

    Float tensors (weights and batch-norm statistics) are averaged; integer ones (batch-norm
    step counters) are copied.
    """

    def __init__(self, networks: Networks, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in _averaged(networks).items()}

    @torch.no_grad()
    def update(self, networks: Networks) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in _averaged(networks).items():
            target = self.state[key]
            if target.is_floating_point():
                target.mul_(d).add_(value.detach().to(target.dtype), alpha=1 - d)
            else:
                target.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "updates": self.updates,
            "state": {k: v.detach().cpu().clone() for k, v in self.state.items()},
        }

    def load_state_dict(self, saved: Any, source: object) -> None:
        """Restores a saved average; a run saved without one starts from the current weights."""
        if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict):
            raise CheckpointError(f"{source}: its weight average is not a mapping of tensors")
        state = saved["state"]
        if set(state) != set(self.state) or any(
            not isinstance(state[k], Tensor) or state[k].shape != v.shape
            for k, v in self.state.items()
        ):
            raise CheckpointError(f"{source}: its weight average does not fit these networks")
        updates = saved.get("updates")
        if not isinstance(updates, int) or updates < 0:
            raise CheckpointError(f"{source}: its weight average has no valid update count")
        for key, value in state.items():
            self.state[key].copy_(value)
        self.updates = updates

    def networks_like(self, networks: Networks) -> Networks:
        """A CPU copy of `networks` (config and discriminator included) holding the average."""
        copy = Networks(networks.config)
        full = {k: v.detach().cpu() for k, v in networks.state_dict().items()}
        full.update({k: v.detach().cpu() for k, v in self.state.items()})
        copy.load_state_dict(full)
        return copy.eval()
