import numpy as np
import pytest

from donkey.data.pairing import (
    PairingParams,
    Resampling,
    fit_affine,
    match_frames,
    matched_difference,
    motion_direction,
    rejection_reason,
    resample,
    residual_matrix,
)


def test_affine_fit_recovers_a_known_map_with_zero_residual():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(10, 2))
    m = np.array([[1.3, 0.2, 0.1], [-0.4, 0.8, -0.25]])
    y = x @ m[:, :2].T + m[:, 2]
    fitted, residual = fit_affine(x, y)
    np.testing.assert_allclose(fitted, m, atol=1e-12)
    assert residual < 1e-20


def test_residual_matrix_matches_per_pair_fits():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1, 1, (4, 6, 2)), rng.uniform(-1, 1, (3, 6, 2))
    matrix = residual_matrix(x, y)
    for i in range(4):
        for j in range(3):
            assert matrix[i, j] == pytest.approx(fit_affine(x[i], y[j])[1], rel=1e-9)


def test_resampling_an_affinely_moved_time_shifted_copy_is_exact():
    rng = np.random.default_rng(2)
    a = rng.uniform(-1, 1, (9, 8, 2))
    b = np.roll(a, -3, axis=0) * 0.7 + 0.1  # B[j] = A[j + 3], scaled and moved
    r = resample(a, b, PairingParams())
    assert r.b_for_a == [(t - 3) % 9 for t in range(9)]
    assert r.a_for_b == [(j + 3) % 9 for j in range(9)]
    assert r.residual < 1e-12 and r.unique == 1.0 and r.repeated == 0.0


def test_near_ties_continue_the_previous_match():
    residuals = np.array([[0.0, 1, 1, 0.0], [1, 0.0, 1, 1], [1, 1, 0.0, 1], [0.0, 1, 1, 0.0]])
    # column 3 ties rows 0 and 3: row 3 continues row 2
    assert match_frames(residuals, 1e-6).tolist() == [0, 1, 2, 3]


def _r(residual, unique):
    return Resampling([0], [0], residual, unique, 1 - unique, residual - 0.8 * unique)


def test_filters_just_inside_and_just_outside():
    p = PairingParams(max_repeated=0.25, alpha=0.8, threshold=0.14)
    assert rejection_reason(_r(0.0, 0.75), p) is None  # repeated exactly 0.25
    assert "repeated frames" in rejection_reason(_r(0.0, 0.7499), p)
    # score = residual - 0.8 * unique: unique 1 -> residual up to 0.94 kept
    assert rejection_reason(_r(0.94, 1.0), p) is None
    assert "score" in rejection_reason(_r(0.9401, 1.0), p)
    assert rejection_reason(_r(0.74, 0.75), p) is None  # 0.74 - 0.6 = 0.14
    assert "score" in rejection_reason(_r(0.7402, 0.75), p)


def test_motion_direction():
    t = np.arange(10)[:, None, None]
    base = np.zeros((1, 4, 2))
    right = base + np.concatenate([0.03 * t, 0 * t], axis=-1)
    assert motion_direction(right) == "right"
    assert motion_direction(right[::-1]) == "left"
    assert motion_direction(np.zeros((10, 4, 2))) == "still"
    looped = np.roll(right, 4, axis=0)  # a looping GIF that starts mid-way
    assert motion_direction(looped) == "right"


def test_matched_difference_follows_the_frame_mapping():
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    b = a[[2, 3, 0, 1]]  # B is A shifted by two frames
    assert matched_difference(a, b, [2, 3, 0, 1]) == 0.0
    assert matched_difference(a, b, [0, 1, 2, 3]) > 0.2
    brighter = np.clip(a.astype(int) + 51, 0, 255).astype(np.uint8)
    expected = (brighter.astype(int) - a).mean() / 255
    assert matched_difference(a, brighter, [0, 1, 2, 3]) == pytest.approx(expected)
