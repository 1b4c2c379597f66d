import pytest

from donkey.data.datasets import StepBatchSampler
from donkey.data.mixing import JoinedDataset, MixedStepSampler, is_pair_step


class _Named:
    """A dataset whose items say which part and which local index answered."""

    def __init__(self, name, size):
        self.name, self.size = name, size

    def __len__(self):
        return self.size

    def __getitem__(self, item):
        index, seed = item
        if not 0 <= index < self.size:
            raise IndexError(index)
        return (self.name, index, seed)


def test_joined_dataset_routes_each_index_to_its_part():
    joined = JoinedDataset([_Named("a", 3), _Named("b", 2), _Named("c", 4)])
    assert len(joined) == 9
    got = [joined[(i, 7)] for i in range(9)]
    assert got == [("a", 0, 7), ("a", 1, 7), ("a", 2, 7), ("b", 0, 7), ("b", 1, 7)] + [
        ("c", i, 7) for i in range(4)
    ]


def _mixed(start, stop, every=3):
    singles = StepBatchSampler(5, 2, 1, 0, seed=1, start=0, stop=10**6)
    pairs = StepBatchSampler(4, 2, 1, 0, seed=2, start=0, stop=10**6)
    return MixedStepSampler(singles, pairs, 5, every, start, stop), singles, pairs


@pytest.mark.parametrize("every", [1, 2, 3])
def test_mixed_schedule_walks_each_kind_as_if_trained_alone(every):
    mixed, singles, pairs = _mixed(0, 30, every)
    batches = list(mixed)
    assert len(batches) == len(mixed) == 30
    pair_steps = [s for s in range(30) if is_pair_step(s, every)]
    assert pair_steps == [s for s in range(30) if s % every == every - 1]
    single_steps = [s for s in range(30) if s not in pair_steps]
    # Pair batches: the pairs sampler's steps 0, 1, 2, ... with indices moved past the singles.
    for local, step in enumerate(pair_steps):
        assert batches[step] == [(i + 5, seed) for i, seed in pairs.batch_for(local)]
        assert all(5 <= i < 9 for i, _ in batches[step])
    for local, step in enumerate(single_steps):
        assert batches[step] == singles.batch_for(local)
        assert all(0 <= i < 5 for i, _ in batches[step])


def test_mixed_schedule_resumed_midway_gives_the_same_batches():
    whole, _, _ = _mixed(0, 20)
    resumed, _, _ = _mixed(7, 20)
    assert list(resumed) == list(whole)[7:]
