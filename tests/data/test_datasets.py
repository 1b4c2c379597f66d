import numpy as np
import pytest
import torch

from donkey.data.datasets import (
    PairedVideoDataset,
    SingleVideoDataset,
    StepBatchSampler,
    Video,
    load_videos,
    select_split,
    source_candidates,
    split_fraction,
)
from donkey.data.manifest import Pair, PairsManifest
from donkey.model.config import AugmentConfig
from donkey.model.errors import DonkeyError


def _video(name, t, size=16, offset=0):
    frames = np.zeros((t, size, size, 3), np.uint8)
    for i in range(t):
        frames[i] = (offset + i * 10) % 256  # each frame a distinct flat grey
    return Video(name, frames)


def test_split_is_stable_and_disjoint(tmp_path):
    files = [tmp_path / f"{i:05d}.png" for i in range(200)]
    val = select_split(files, "val", 0.1)
    train = select_split(files, "train", 0.1)
    assert not set(val) & set(train) and len(val) + len(train) == 200
    assert 8 <= len(val) <= 35
    assert split_fraction("00100.png") == split_fraction("00100.png")
    with pytest.raises(DonkeyError):
        select_split(files, "test", 0.1)


def test_sampler_is_a_pure_function_of_the_step():
    full = StepBatchSampler(10, batch_size=3, world=1, rank=0, seed=5, start=0, stop=9)
    resumed = StepBatchSampler(10, batch_size=3, world=1, rank=0, seed=5, start=4, stop=9)
    assert list(full)[4:] == list(resumed)
    assert len(resumed) == 5


def test_sampler_ranks_are_disjoint_within_an_epoch():
    ranks = [StepBatchSampler(12, 2, world=3, rank=r, seed=1, start=0, stop=2) for r in range(3)]
    seen = [[i for batch in sampler for i, _ in batch] for sampler in ranks]
    flat = [i for s in seen for i in s]
    assert len(flat) == 12 and len(set(flat)) == 12  # one epoch: every video once


def test_sampler_repeats_a_dataset_smaller_than_a_batch():
    sampler = StepBatchSampler(3, batch_size=4, world=2, rank=1, seed=0, start=0, stop=2)
    batches = list(sampler)
    assert all(len(b) == 4 for b in batches)
    assert all(0 <= i < 3 for b in batches for i, _ in b)


def test_single_video_samples_two_different_frames_with_identical_augmentation():
    ds = SingleVideoDataset([_video("v", 5)], AugmentConfig(hue=0.0, scale_min=1.0, scale_max=1.0))
    for seed in range(30):
        item = ds[(0, seed)]
        assert item["source"].shape == (3, 16, 16)
        assert not torch.equal(item["source"], item["driving"])
    again = ds[(0, 3)]
    assert torch.equal(again["source"], ds[(0, 3)]["source"])  # same seed, same sample


def test_source_candidates_exclude_the_target():
    assert source_candidates(4, 2).tolist() == [0, 1, 3]


def test_paired_sources_never_equal_targets_even_with_repeated_frames():
    a, b = _video("a", 6), _video("b", 4, offset=100)
    # B resampled to A repeats frame 1 three times; A resampled to B repeats frame 5.
    pair = Pair("a", "b", b_for_a=[0, 1, 1, 1, 2, 3], a_for_b=[0, 2, 5, 5])
    manifest = PairsManifest(root=".", pairs=[pair])
    ds = PairedVideoDataset(manifest, 16, None, repeats=3, videos={"a": a.frames, "b": b.frames})
    assert len(ds) == 3
    for seed in range(300):
        ids = ds.sample_ids(0, seed)
        assert ids["source_a"] != ids["driving_a"]
        assert ids["source_b"] != ids["driving_b"]
        mapping = pair.b_for_a if ids["a"] == "a" else pair.a_for_b
        assert mapping[ids["driving_a"]] == ids["driving_b"]
        item = ds[(0, seed)]
        assert not torch.equal(item["source_a"], item["driving_a"])
        assert not torch.equal(item["source_b"], item["driving_b"])


def test_paired_dataset_checks_mapping_lengths():
    pair = Pair("a", "b", b_for_a=[0, 1], a_for_b=[0, 1, 2])
    with pytest.raises(DonkeyError, match="do not match videos"):
        PairedVideoDataset(
            PairsManifest(".", [pair]),
            16,
            None,
            videos={"a": _video("a", 3).frames, "b": _video("b", 3).frames},
        )


def test_load_videos_with_nothing_usable_is_an_error_unless_a_shard(tmp_path):
    bad = [tmp_path / "a.gif", tmp_path / "b.gif"]
    for path in bad:
        path.write_bytes(b"GIF89a not really")
    with pytest.raises(DonkeyError, match="none of the 2 files could be used: .*a.gif"):
        load_videos(bad, 32)
    videos, skipped = load_videos(bad, 32, allow_empty=True)
    assert videos == [] and len(skipped) == 2 and "b.gif" in skipped[1]
