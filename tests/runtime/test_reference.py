import math

import numpy as np
import pytest
import torch

from donkey.model.errors import DonkeyError
from donkey.runtime.motion import relative_keypoints
from donkey.runtime.reference import (
    layout_distance,
    pick_reference,
    relative_motion,
    smooth_track,
)

K = 10


def random_var(gen: torch.Generator, *shape: int) -> torch.Tensor:
    """Random symmetric positive definite (..., 2, 2), sizes like a keypoint's (std ~0.05)."""
    m = 0.05 * torch.randn(*shape, 2, 2, generator=gen)
    return m @ m.transpose(-1, -2) + 1e-3 * torch.eye(2)


def random_track(seed: int, frames: int = 20) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    src_mean = torch.rand(1, K, 2, generator=gen) * 1.2 - 0.6  # (1, K, 2)
    src_var = random_var(gen, 1, K)  # (1, K, 2, 2)
    drv_mean = torch.rand(frames, K, 2, generator=gen) * 1.2 - 0.6  # (T, K, 2)
    drv_var = random_var(gen, frames, K)  # (T, K, 2, 2)
    return src_mean, src_var, drv_mean, drv_var


def moved(mean: torch.Tensor, var: torch.Tensor, shift: tuple[float, float], scale: float):
    """The same layout translated and scaled (covariances scale by scale^2)."""
    return mean * scale + torch.tensor(shift), var * scale**2


def is_spd(var: torch.Tensor) -> bool:
    symmetric = torch.equal(var, var.transpose(-1, -2))
    return symmetric and bool((torch.linalg.eigvalsh(var.double()) > 0).all())


# ---------------------------------------------------------------- layout distance / picker


@pytest.mark.parametrize("use_covariance", [True, False])
def test_picker_finds_the_planted_frame(use_covariance):
    src_mean, src_var, drv_mean, drv_var = random_track(0)
    # Frame 7: the source's own layout, elsewhere in the frame and 1.6x larger.
    drv_mean[7], drv_var[7] = moved(src_mean[0], src_var[0], (0.2, -0.1), 1.6)
    assert pick_reference(src_mean, src_var, drv_mean, drv_var, use_covariance) == 7
    distance = layout_distance(src_mean, src_var, drv_mean, drv_var, use_covariance)
    assert distance.shape == (20,)
    assert float(distance[7]) < 1e-10
    assert bool((distance[torch.arange(20) != 7] > 1e-3).all())


def test_picker_finds_a_noisy_planted_frame_among_near_misses():
    gen = torch.Generator().manual_seed(1)
    src_mean, src_var, _, _ = random_track(1)
    # Every frame is the source's layout with noise, frame 12 with the least.
    noise = torch.full((20, 1, 1), 0.08)
    noise[12] = 0.01
    drv_mean = src_mean + noise * torch.randn(20, K, 2, generator=gen)
    drv_mean, drv_var = moved(drv_mean, src_var.expand(20, -1, -1, -1), (-0.3, 0.1), 0.7)
    assert pick_reference(src_mean, src_var, drv_mean, drv_var) == 12


@pytest.mark.parametrize("use_covariance", [True, False])
def test_layout_distance_ignores_translation_and_scale(use_covariance):
    src_mean, src_var, drv_mean, drv_var = random_track(2)
    base = layout_distance(src_mean, src_var, drv_mean, drv_var, use_covariance)
    for shift, scale in [((0.3, -0.2), 1.0), ((0.0, 0.0), 0.4), ((-0.5, 0.25), 2.5)]:
        # Moving the driving frames, or the source, changes nothing.
        m, v = moved(drv_mean, drv_var, shift, scale)
        torch.testing.assert_close(layout_distance(src_mean, src_var, m, v, use_covariance), base)
        m, v = moved(src_mean, src_var, shift, scale)
        torch.testing.assert_close(layout_distance(m, v, drv_mean, drv_var, use_covariance), base)


def test_layout_distance_sees_rotation_and_covariance():
    src_mean, src_var, _, _ = random_track(3)
    angle = 0.5
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    rotated = src_mean @ rot.T  # a tilted body is another pose
    assert float(layout_distance(src_mean, src_var, rotated, src_var, False)[0]) > 1e-2
    wider = src_var * torch.tensor([[4.0, 1.0], [1.0, 1.0]])  # x std doubled (still SPD)
    assert float(layout_distance(src_mean, src_var, src_mean, wider, False)[0]) == 0.0
    assert float(layout_distance(src_mean, src_var, src_mean, wider, True)[0]) > 0.0


# ---------------------------------------------------------------- smoothing


def test_smoothing_a_constant_track_is_exact():
    _, _, drv_mean, drv_var = random_track(4, frames=1)
    mean = drv_mean.expand(30, -1, -1).clone()
    var = drv_var.expand(30, -1, -1, -1).clone()
    for sigma in (0.5, 1.0, 2.0, 7.0):
        smooth_mean, smooth_var = smooth_track(mean, var, sigma)
        assert torch.equal(smooth_mean, mean)
        assert torch.equal(smooth_var, var)


def test_smoothing_reduces_jitter_and_keeps_the_motion():
    gen = torch.Generator().manual_seed(5)
    t = torch.arange(60, dtype=torch.float32)
    clean = 0.3 * torch.sin(2 * math.pi * t / 40)[:, None, None].expand(60, K, 2)  # (T, K, 2)
    noisy = clean + 0.02 * torch.randn(60, K, 2, generator=gen)
    var = random_var(gen, 60, K)

    def jitter(x):  # mean size of the second difference along time of the error
        error = x - clean
        return float((error[2:] - 2 * error[1:-1] + error[:-2]).abs().mean())

    smooth, _ = smooth_track(noisy, var, 1.5)
    assert jitter(smooth) < 0.2 * jitter(noisy)
    assert float((smooth - clean).abs().mean()) < float((noisy - clean).abs().mean())


def test_smoothing_keeps_a_steady_drift_at_the_ends():
    t = torch.arange(12, dtype=torch.float64)
    drift = (0.05 * t - 0.3)[:, None, None].expand(12, K, 2)  # (T, K, 2): a straight line
    var = random_var(torch.Generator().manual_seed(14), 12, K).double()
    for sigma in (0.5, 1.0, 2.0):
        smooth, _ = smooth_track(drift, var, sigma)
        torch.testing.assert_close(smooth, drift, rtol=0, atol=1e-12)


def test_sigma_zero_returns_the_input():
    _, _, drv_mean, drv_var = random_track(6)
    mean, var = smooth_track(drv_mean, drv_var, 0.0)
    assert mean is drv_mean and var is drv_var
    # A sigma so small that every neighbour's weight underflows: the input, not NaN.
    mean, var = smooth_track(drv_mean, drv_var, 0.01)
    assert torch.equal(mean, drv_mean) and torch.equal(var, drv_var)
    mean, var = smooth_track(drv_mean[:2], drv_var[:2], 0.2)  # two frames, tiny weights
    assert bool(mean.isfinite().all()) and bool(var.isfinite().all())


def test_smoothed_covariances_stay_spd():
    gen = torch.Generator().manual_seed(7)
    var = random_var(gen, 25, K)
    var[::3] *= torch.tensor([[9.0, 0.5], [0.5, 0.04]])  # badly conditioned frames among them
    var = 0.5 * (var + var.transpose(-1, -2))
    assert is_spd(var)
    for sigma in (0.5, 1.0, 2.0):
        _, smooth = smooth_track(torch.zeros(25, K, 2), var, sigma)
        assert smooth.shape == var.shape
        assert is_spd(smooth)


@pytest.mark.parametrize("sigma", [-1.0, float("nan"), float("inf"), True, "1"])
def test_smoothing_refuses_a_bad_sigma(sigma):
    _, _, drv_mean, drv_var = random_track(8)
    with pytest.raises(DonkeyError, match="sigma"):
        smooth_track(drv_mean, drv_var, sigma)


# ---------------------------------------------------------------- relative motion


@pytest.mark.parametrize("adapt_scale", [False, True])
def test_reference_zero_at_full_motion_is_relative_keypoints(adapt_scale):
    src_mean, src_var, drv_mean, drv_var = random_track(9)
    expected = relative_keypoints(
        src_mean, src_var, drv_mean, drv_var, drv_mean[:1], drv_var[:1], adapt_scale
    )
    got = relative_motion(src_mean, src_var, drv_mean, drv_var, 0, 1.0, adapt_scale)
    assert torch.equal(got[0], expected[0])
    assert torch.equal(got[1], expected[1])


def test_numpy_scalars_are_accepted():
    src_mean, src_var, drv_mean, drv_var = random_track(15)
    expected = relative_motion(src_mean, src_var, drv_mean, drv_var, 4, 0.5)
    got = relative_motion(src_mean, src_var, drv_mean, drv_var, np.int64(4), np.float32(0.5))
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
    smooth_track(drv_mean, drv_var, np.float32(1.0))


def test_motion_scale_zero_gives_the_source_keypoints():
    src_mean, src_var, drv_mean, drv_var = random_track(10)
    for reference in (0, 11):
        mean, var = relative_motion(src_mean, src_var, drv_mean, drv_var, reference, 0.0)
        assert mean.shape == (20, K, 2) and var.shape == (20, K, 2, 2)
        assert torch.equal(mean, src_mean.expand_as(mean))
        assert torch.equal(var, src_var.expand_as(var))


@pytest.mark.parametrize("reference", [0, 5, 19])
@pytest.mark.parametrize("motion_scale", [1.0, 0.5])
def test_the_reference_frame_gets_the_source_keypoints(reference, motion_scale):
    src_mean, src_var, drv_mean, drv_var = random_track(11)
    mean, var = relative_motion(
        src_mean, src_var, drv_mean, drv_var, reference, motion_scale, adapt_scale=True
    )
    assert torch.equal(mean[reference], src_mean[0])
    # L_ref L_ref^-1 is the identity within float rounding (as in relative_keypoints).
    torch.testing.assert_close(var[reference], src_var[0], rtol=1e-5, atol=1e-9)


def test_movement_is_measured_from_the_reference_and_scaled():
    src_mean, src_var, drv_mean, drv_var = random_track(12)
    mean, var = relative_motion(src_mean, src_var, drv_mean, drv_var, 6, 0.75)
    torch.testing.assert_close(mean, src_mean + 0.75 * (drv_mean - drv_mean[6:7]))
    assert is_spd(0.5 * (var + var.transpose(-1, -2)))
    torch.testing.assert_close(var, var.transpose(-1, -2))
    # At a reference the driving's shape change from it equals the source's: full motion
    # from reference r equals relative_keypoints given frame r as the "first" frame.
    full = relative_motion(src_mean, src_var, drv_mean, drv_var, 6, 1.0)
    expected = relative_keypoints(src_mean, src_var, drv_mean, drv_var, drv_mean[6:7], drv_var[6:7])
    assert torch.equal(full[0], expected[0]) and torch.equal(full[1], expected[1])


@pytest.mark.parametrize(
    "reference, motion_scale, match",
    [
        (20, 1.0, "reference"),
        (-1, 1.0, "reference"),
        (1.0, 1.0, "reference"),
        (True, 1.0, "reference"),
        (0, -0.5, "motion scale"),
        (0, float("nan"), "motion scale"),
    ],
)
def test_relative_motion_refuses_bad_arguments(reference, motion_scale, match):
    src_mean, src_var, drv_mean, drv_var = random_track(13)
    with pytest.raises(DonkeyError, match=match):
        relative_motion(src_mean, src_var, drv_mean, drv_var, reference, motion_scale)
