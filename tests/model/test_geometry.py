import math

import torch

from donkey.model.geometry import (
    heatmap_to_keypoints,
    inverse_2x2,
    keypoints_to_gaussians,
    make_coordinate_grid,
    smallest_singular_2x2,
    spatial_softmax,
    warp,
)


def test_coordinate_grid_corners_are_x_first():
    grid = make_coordinate_grid(3, 5, torch.zeros(1))
    assert grid.shape == (3, 5, 2)
    assert grid[0, 0].tolist() == [-1.0, -1.0]
    assert grid[0, 4].tolist() == [1.0, -1.0]  # x varies along width
    assert grid[2, 0].tolist() == [-1.0, 1.0]


def test_single_peak_heatmap_gives_that_keypoint():
    h = w = 17
    heat = torch.zeros(1, 2, h, w)
    heat[0, 0, 4, 12] = 1.0
    heat[0, 1, 16, 0] = 1.0
    mean, var = heatmap_to_keypoints(heat, clip_variance=1e-3)
    expected = torch.tensor([[2 * 12 / 16 - 1, 2 * 4 / 16 - 1], [-1.0, 1.0]])
    torch.testing.assert_close(mean[0], expected, atol=1e-6, rtol=0)
    # A delta has zero spread: the clip lifts the covariance to the floor, no NaNs.
    assert torch.isfinite(var).all()


def test_covariance_clip_holds_and_leaves_wide_covariances_alone():
    torch.manual_seed(0)
    logits = torch.randn(4, 3, 16, 16) * 8
    heat = spatial_softmax(logits, temperature=0.1)
    _, var = heatmap_to_keypoints(heat, clip_variance=1e-3)
    sv = torch.linalg.svdvals(var.double()).min(dim=-1).values
    assert (sv >= 1e-3 * (1 - 1e-4)).all()
    wide = torch.full((1, 1, 16, 16), 1.0 / 256)
    _, var_wide = heatmap_to_keypoints(wide, clip_variance=1e-3)
    # uniform on a 16-point grid in [-1, 1]: variance = mean(x^2)
    xs = torch.linspace(-1, 1, 16)
    torch.testing.assert_close(var_wide[0, 0], torch.eye(2) * (xs**2).mean(), atol=1e-5, rtol=0)


def test_inverse_2x2_matches_linalg():
    torch.manual_seed(1)
    m = torch.randn(5, 7, 2, 2, dtype=torch.float64) + 3 * torch.eye(2, dtype=torch.float64)
    torch.testing.assert_close(inverse_2x2(m), torch.linalg.inv(m))


def test_smallest_singular_matches_svd():
    torch.manual_seed(2)
    m = torch.randn(50, 2, 2, dtype=torch.float64)
    expected = torch.linalg.svdvals(m).min(dim=-1).values
    torch.testing.assert_close(smallest_singular_2x2(m), expected)


def test_gaussian_has_peak_one_at_mean_and_right_falloff():
    mean = torch.tensor([[[0.0, 0.0]]])
    var = torch.tensor([[[[0.01, 0.0], [0.0, 0.04]]]])
    g = keypoints_to_gaussians(mean, var, 21, 21)
    assert g.shape == (1, 1, 21, 21)
    assert g[0, 0, 10, 10].item() == 1.0
    x = 0.1  # one pixel to the right: exp(-0.5 * x^2 / 0.01)
    assert math.isclose(g[0, 0, 10, 11].item(), math.exp(-0.5 * x * x / 0.01), rel_tol=1e-5)
    assert math.isclose(g[0, 0, 11, 10].item(), math.exp(-0.5 * x * x / 0.04), rel_tol=1e-5)


def test_identity_grid_warp_is_exact():
    torch.manual_seed(3)
    img = torch.rand(2, 3, 9, 9)
    grid = make_coordinate_grid(9, 9, img).expand(2, 9, 9, 2)
    torch.testing.assert_close(warp(img, grid), img, atol=1e-6, rtol=0)
