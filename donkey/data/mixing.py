"""Several datasets behind one index space, and the step schedule of mixed training.

Mixed training alternates batches of single videos (self-reconstruction) with batches of GIF
pairs. Each batch must come from one kind, and a resumed run must see exactly the batches an
uninterrupted one would, so the schedule is a pure function of the global step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch.utils.data import Dataset

from donkey.data.datasets import StepBatchSampler


class JoinedDataset(Dataset):
    """Parts one after the other: item (i, seed) goes to the part that holds index i."""

    def __init__(self, parts: Sequence[Dataset]) -> None:
        self.parts = list(parts)
        self.offsets: list[int] = []
        total = 0
        for part in self.parts:
            self.offsets.append(total)
            total += len(part)
        self.total = total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, item: tuple[int, int]):
        index, seed = item
        for part, offset in zip(reversed(self.parts), reversed(self.offsets)):
            if index >= offset:
                return part[(index - offset, seed)]
        raise IndexError(index)


def is_pair_step(step: int, pair_every: int) -> bool:
    """Steps pair_every - 1, 2 * pair_every - 1, ... train on pairs."""
    return step % pair_every == pair_every - 1


class MixedStepSampler:
    """Batches for steps [start, stop) of mixed training over JoinedDataset([singles, pairs]).

    A pair step draws from the pairs' own StepBatchSampler at its count of earlier pair steps,
    a single-video step likewise, so each kind walks through its epochs as if trained alone.
    """

    def __init__(
        self,
        singles: StepBatchSampler,
        pairs: StepBatchSampler,
        pair_offset: int,
        pair_every: int,
        start: int,
        stop: int,
    ) -> None:
        self.singles, self.pairs = singles, pairs
        self.pair_offset, self.pair_every = pair_offset, pair_every
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)

    def batch_for(self, step: int) -> list[tuple[int, int]]:
        earlier_pair_steps = step // self.pair_every
        if is_pair_step(step, self.pair_every):
            batch = self.pairs.batch_for(earlier_pair_steps)
            return [(i + self.pair_offset, seed) for i, seed in batch]
        return self.singles.batch_for(step - earlier_pair_steps)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start, self.stop):
            yield self.batch_for(step)
