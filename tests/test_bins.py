"""colorspark.bins: the 313 ab bins, hard/soft encoding, the prior, rebalancing weights and annealed-mean decoding."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from helpers_pure import nearest_centre, squared_distances  # noqa: E402
from scipy.optimize import linprog
from scipy.spatial import ConvexHull

from colorspark.bins import (  # noqa: E402
    annealed_mean,
    bin_counts,
    gamut_centres,
    hard_bins,
    prior_from_counts,
    rebalance_weights,
    smooth_prior,
    soft_encode,
    squares_touching_polygon,
    srgb_ab_hull,
)
from colorspark.colorspace import rgb_to_lab  # noqa: E402

Q = 313
HALF_DIAGONAL = 5.0 * math.sqrt(2.0)


@pytest.fixture(scope="module")
def centres() -> np.ndarray:
    return gamut_centres()


def _index_of(centres: np.ndarray, a: float, b: float) -> int:
    hits = np.flatnonzero((centres[:, 0] == a) & (centres[:, 1] == b))
    assert len(hits) == 1, f"({a}, {b}) is not a bin centre"
    return int(hits[0])


# --- the centres ------------------------------------------------------------------------------------------------------


def test_there_are_313_centres(centres):
    assert centres.shape == (Q, 2)
    assert len(gamut_centres()) == Q


def test_centres_are_distinct_multiples_of_10_within_110(centres):
    assert np.array_equal(centres, np.rint(centres / 10) * 10)
    assert centres.min() >= -110 and centres.max() <= 110
    assert len({tuple(c) for c in centres.tolist()}) == Q


def test_centres_are_ordered_by_a_then_b(centres):
    order = np.lexsort((centres[:, 1], centres[:, 0]))
    assert np.array_equal(order, np.arange(Q))


def test_every_8bit_srgb_colour_lies_within_half_a_cell_diagonal_of_a_centre(centres):
    """All 16.7M colours, 65,536 at a time; the nearest centre is among the 3×3 grid points around the nearest grid
    point (anything farther is more than 10 away and fails the check anyway)."""
    started = time.perf_counter()
    occupied = np.zeros((23, 23), dtype=bool)
    grid_index = np.rint(centres / 10).astype(int) + 11
    occupied[grid_index[:, 0], grid_index[:, 1]] = True
    v = np.arange(256, dtype=np.uint8)
    g, b = np.meshgrid(v, v, indexing="ij")
    chunk = np.empty((65536, 3), dtype=np.uint8)
    chunk[:, 1], chunk[:, 2] = g.ravel(), b.ravel()
    worst = 0.0
    for red in range(256):
        chunk[:, 0] = red
        ab = rgb_to_lab(chunk)[:, 1:]
        near = np.rint(ab / 10).astype(int) + 11
        best = np.full(len(ab), np.inf, dtype=np.float32)
        for da in (-1, 0, 1):
            for db in (-1, 0, 1):
                ia, ib = np.clip(near[:, 0] + da, 0, 22), np.clip(near[:, 1] + db, 0, 22)
                d2 = (ab[:, 0] - (ia - 11) * 10.0) ** 2 + (ab[:, 1] - (ib - 11) * 10.0) ** 2
                best = np.where(occupied[ia, ib], np.minimum(best, d2), best)
        worst = max(worst, float(np.sqrt(best.max())))
    elapsed = time.perf_counter() - started
    print(f"\nfull-gamut coverage: worst distance {worst:.4f} (bound {HALF_DIAGONAL:.4f}), {elapsed:.1f} s")
    assert worst <= HALF_DIAGONAL
    assert worst > 5.0  # sanity: the check is tight enough to have found colours near cell corners


def _square_meets_polygon_by_lp(centre: np.ndarray, half: float, hull) -> bool:
    """Reference: is there a point inside both the square and the hull? A feasibility LP over the hull's facets."""
    bounds = [(centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)]
    result = linprog(np.zeros(2), A_ub=hull.equations[:, :2], b_ub=-hull.equations[:, 2], bounds=bounds,
                     method="highs")
    return result.status == 0


def test_squares_touching_the_gamut_hull_agree_with_a_linear_program():
    """The vectorised separating-axis test against scipy's LP, on the real 23×23 grid of squares and on squares
    shifted so that many of them straddle, graze or just miss the hull."""
    hull = ConvexHull(srgb_ab_hull())
    polygon = hull.points[hull.vertices]
    grid = np.arange(-110, 111, 10, dtype=np.float64)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    real = np.stack([a.ravel(), b.ravel()], 1)
    shifted = real[::3] + np.random.default_rng(0).uniform(-5, 5, (len(real[::3]), 2))
    for candidates in (real, shifted):
        got = squares_touching_polygon(candidates, 10.0, polygon)
        want = np.array([_square_meets_polygon_by_lp(c, 10.0, hull) for c in candidates])
        assert np.array_equal(got, want)
    assert squares_touching_polygon(real, 10.0, polygon).sum() == Q


def test_squares_touching_polygon_counts_a_shared_edge_or_corner_as_touching():
    unit = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    centres = np.array([[2.0, 0.5], [2.0, 2.0], [2.01, 0.5], [-1.0, -1.0], [0.5, 0.5]])
    assert squares_touching_polygon(centres, 1.0, unit).tolist() == [True, True, False, True, True]


# --- hard binning -----------------------------------------------------------------------------------------------------


def test_hard_bins_equals_brute_force_on_every_integer_ab_pair(centres):
    v = np.arange(-128, 128)
    a, b = np.meshgrid(v, v, indexing="ij")
    ab = np.stack([a.ravel(), b.ravel()], -1)
    got = hard_bins(ab)
    assert got.dtype == np.int16
    assert np.array_equal(got.astype(np.int64), nearest_centre(ab, centres))
    # int8 input, the stored format of sample targets
    assert np.array_equal(hard_bins(ab.astype(np.int8)), got)


def test_hard_bins_on_float_ab_is_nearest_within_rounding(centres):
    ab = np.random.default_rng(0).uniform(-120, 120, size=(20_000, 2))
    got = hard_bins(ab).astype(np.int64)
    d2 = squared_distances(ab, centres)
    chosen = np.sqrt(d2[np.arange(len(ab)), got])
    best = np.sqrt(d2.min(1))
    # rounding moves a point by at most √0.5, so the chosen centre is at most 2·√0.5 farther than the nearest
    assert (chosen - best).max() <= math.sqrt(2.0) + 1e-9
    assert (got == d2.argmin(1)).mean() > 0.9
    assert np.array_equal(got, nearest_centre(np.rint(ab), centres))


def test_hard_bins_keeps_leading_shape_and_clips_outside_int8():
    ab = np.zeros((3, 4, 2))
    assert hard_bins(ab).shape == (3, 4)
    assert hard_bins(np.array([[500.0, -500.0]]))[0] == hard_bins(np.array([[127.0, -128.0]]))[0]


# --- soft encoding ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_ab() -> np.ndarray:
    return np.random.default_rng(1).uniform(-90, 90, size=(6, 7, 2)).astype(np.float32)


def test_soft_encode_shapes_and_dtypes(random_ab):
    idx, w = soft_encode(random_ab, k=5)
    assert idx.shape == (6, 7, 5) and w.shape == (6, 7, 5)
    assert idx.dtype == np.int32 and w.dtype == np.float32
    idx10, w10 = soft_encode(random_ab)
    assert idx10.shape == w10.shape == (6, 7, 10)


def test_soft_encode_weights_sum_to_one(random_ab):
    _, w = soft_encode(random_ab, k=10, sigma=5.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    assert (w > 0).all()


@pytest.mark.parametrize("k", [1, 5, 10])
def test_soft_encode_indices_are_the_k_nearest(random_ab, centres, k):
    idx, _ = soft_encode(random_ab, k=k)
    d2 = squared_distances(random_ab.reshape(-1, 2), centres)
    flat_idx = idx.reshape(-1, k)
    assert all(len(set(row)) == k for row in flat_idx.tolist())
    got = np.sort(np.take_along_axis(d2, flat_idx.astype(np.int64), 1), 1)
    expected = np.sort(d2, 1)[:, :k]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-3)


def test_soft_encode_weights_are_gaussian_and_decrease_with_distance(random_ab, centres):
    sigma = 5.0
    idx, w = soft_encode(random_ab, k=10, sigma=sigma)
    d2 = squared_distances(random_ab.reshape(-1, 2), centres)
    near = np.take_along_axis(d2, idx.reshape(-1, 10).astype(np.int64), 1)
    expected = np.exp(-near / (2 * sigma ** 2))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(w.reshape(-1, 10), expected, rtol=1e-4, atol=1e-7)
    order = np.argsort(near, 1)
    w_sorted = np.take_along_axis(w.reshape(-1, 10), order, 1)
    assert (np.diff(w_sorted, axis=1) <= 1e-7).all()  # farther centres never weigh more
    assert (w_sorted[:, 0] > w_sorted[:, -1]).all()


def test_soft_encode_pixel_at_a_centre_weighs_that_centre_most(centres):
    picks = [0, 100, 156, 200, Q - 1]
    ab = centres[picks].astype(np.float32)
    idx, w = soft_encode(ab, k=10, sigma=5.0)
    assert idx[np.arange(len(picks)), w.argmax(1)].tolist() == picks
    # four axis neighbours at distance 10 each weigh exp(-100/50) of the centre's weight
    zero = _index_of(centres, 0.0, 0.0)
    idx0, w0 = soft_encode(np.zeros((1, 2), np.float32), k=5, sigma=5.0)
    top = w0[0][idx0[0] == zero][0]
    others = w0[0][idx0[0] != zero]
    np.testing.assert_allclose(others / top, math.exp(-100 / 50), rtol=1e-5)


# --- counts and the prior ---------------------------------------------------------------------------------------------


def test_bin_counts_sums_to_the_pixel_count():
    bins = np.random.default_rng(2).integers(0, Q, size=(5, 16, 16)).astype(np.int16)
    counts = bin_counts(bins)
    assert counts.shape == (Q,) and counts.dtype == np.int64
    assert counts.sum() == bins.size
    assert counts[int(bins[0, 0, 0])] == int((bins == bins[0, 0, 0]).sum())
    assert bin_counts(np.array([], dtype=np.int16)).sum() == 0


def test_prior_from_counts_is_a_distribution():
    counts = np.zeros(Q, dtype=np.int64)
    counts[[3, 7]] = [30, 10]
    prior = prior_from_counts(counts)
    assert prior.sum() == pytest.approx(1.0, abs=1e-12)
    assert prior[3] == pytest.approx(0.75) and prior[7] == pytest.approx(0.25)


def test_prior_from_zero_counts_is_uniform():
    prior = prior_from_counts(np.zeros(Q, dtype=np.int64))
    np.testing.assert_allclose(prior, 1.0 / Q)
    assert np.isfinite(rebalance_weights(prior)).all()


def test_smooth_prior_keeps_sum_one():
    prior = prior_from_counts(np.random.default_rng(3).integers(0, 100, size=Q))
    smoothed = smooth_prior(prior, sigma=5.0)
    assert smoothed.sum() == pytest.approx(1.0, abs=1e-12)
    assert (smoothed > 0).all()


def test_smooth_prior_spreads_one_hot_to_neighbours_with_gaussian_ratio(centres):
    zero = _index_of(centres, 0.0, 0.0)
    prior = np.zeros(Q)
    prior[zero] = 1.0
    smoothed = smooth_prior(prior, sigma=5.0)
    assert smoothed.argmax() == zero
    for a, b in [(10.0, 0.0), (-10.0, 0.0), (0.0, 10.0), (0.0, -10.0)]:
        ratio = smoothed[_index_of(centres, a, b)] / smoothed[zero]
        assert ratio == pytest.approx(math.exp(-100 / 50), rel=1e-9)
    diagonal = smoothed[_index_of(centres, 10.0, 10.0)] / smoothed[zero]
    assert diagonal == pytest.approx(math.exp(-200 / 50), rel=1e-9)
    assert smoothed[zero] < 1.0  # some mass really moved away


# --- rebalancing weights ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def skewed_prior() -> np.ndarray:
    rng = np.random.default_rng(4)
    return prior_from_counts(rng.pareto(1.0, size=Q) * 100)


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.9])
def test_rebalance_weights_have_unit_expectation_under_smoothed_prior(skewed_prior, lam):
    w = rebalance_weights(skewed_prior, lam=lam, sigma=5.0)
    smoothed = smooth_prior(skewed_prior, sigma=5.0)
    assert w.shape == (Q,) and w.dtype == np.float32
    assert float((smoothed * w).sum()) == pytest.approx(1.0, abs=1e-6)


def test_rare_bins_get_larger_weights_than_frequent_ones(skewed_prior):
    w = rebalance_weights(skewed_prior, lam=0.5, sigma=5.0)
    smoothed = smooth_prior(skewed_prior, sigma=5.0)
    order = np.argsort(smoothed)
    assert w[order[0]] > w[order[-1]]
    assert (np.diff(w[order].astype(np.float64)) <= 1e-6).all()  # monotone: more frequent -> never heavier


def test_lambda_one_gives_uniform_weights(skewed_prior):
    np.testing.assert_allclose(rebalance_weights(skewed_prior, lam=1.0), 1.0, rtol=1e-6)


def test_rebalance_weights_hand_computed_on_two_bins(centres):
    """0.75 / 0.25 on two far-apart bins; σ so small that smoothing is the identity, so p̃ = p.

    w ∝ 1 / ((1 − λ)·p̃ + λ/Q), normalised by Σ p̃·w. With λ = 0.5, Q = 313:
      raw_A = 1 / (0.375 + 0.5/313), raw_B = 1 / (0.125 + 0.5/313), raw_other = 626
      E = 0.75·raw_A + 0.25·raw_B
    """
    a, b = _index_of(centres, 0.0, 0.0), _index_of(centres, 50.0, 50.0)
    prior = np.zeros(Q)
    prior[a], prior[b] = 0.75, 0.25
    raw_a, raw_b, raw_other = 1 / (0.375 + 0.5 / 313), 1 / (0.125 + 0.5 / 313), 626.0
    expectation = 0.75 * raw_a + 0.25 * raw_b
    w = rebalance_weights(prior, lam=0.5, sigma=0.1)
    assert w[a] == pytest.approx(raw_a / expectation, rel=1e-6)
    assert w[b] == pytest.approx(raw_b / expectation, rel=1e-6)
    others = np.delete(w, [a, b])
    np.testing.assert_allclose(others, raw_other / expectation, rtol=1e-6)
    # numbers: w_A ≈ 0.66948, w_B ≈ 1.99156, unseen bins ≈ 157.83
    assert w[a] == pytest.approx(0.66948, abs=1e-4)
    assert w[b] == pytest.approx(1.99156, abs=1e-4)
    assert others[0] == pytest.approx(157.83, abs=0.01)


# --- annealed mean ----------------------------------------------------------------------------------------------------


def test_one_hot_logits_decode_to_their_centre(centres):
    for i in (0, 42, 156, Q - 1):
        logits = np.zeros(Q, np.float32)
        logits[i] = 100.0
        np.testing.assert_allclose(annealed_mean(logits, temperature=0.38), centres[i], atol=1e-3)
        np.testing.assert_allclose(annealed_mean(logits, temperature=1.0), centres[i], atol=1e-3)


def test_temperature_one_is_the_softmax_mean(centres):
    logits = np.random.default_rng(5).normal(0, 2, size=(4, Q))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(annealed_mean(logits, temperature=1.0), p @ centres.astype(np.float64), atol=1e-3)


def test_small_temperature_gives_the_mode(centres):
    logits = np.random.default_rng(6).normal(0, 2, size=(8, Q))
    np.testing.assert_allclose(annealed_mean(logits, temperature=1e-3), centres[logits.argmax(1)], atol=1e-3)


def test_temperature_038_lies_between_mean_and_mode(centres):
    rng = np.random.default_rng(7)
    # a bimodal prediction: a strong mode and a weaker, distant second colour, plus noise
    logits = rng.normal(0, 0.5, size=(16, Q))
    rows = np.arange(16)
    picked = rng.choice(Q, 32, replace=False)
    mode_bins, other_bins = picked[:16], picked[16:]
    logits[rows, mode_bins] += 6.0
    logits[rows, other_bins] += 5.0
    mode = centres[logits.argmax(1)]
    mean = annealed_mean(logits, temperature=1.0)
    annealed = annealed_mean(logits, temperature=0.38)
    d_annealed = np.linalg.norm(annealed - mode, axis=1)
    d_mean = np.linalg.norm(mean - mode, axis=1)
    assert (d_annealed < d_mean).all()
    assert (d_annealed > 1e-3).all()  # and it is not simply the mode


def test_annealed_mean_on_hwq_arrays(centres):
    logits = np.random.default_rng(8).normal(0, 3, size=(5, 6, Q)).astype(np.float32)
    ab = annealed_mean(logits, temperature=0.38)
    assert ab.shape == (5, 6, 2) and ab.dtype == np.float32
    np.testing.assert_allclose(ab[2, 3], annealed_mean(logits[2, 3], temperature=0.38), atol=1e-5)
    np.testing.assert_allclose(ab.reshape(-1, 2), annealed_mean(logits.reshape(-1, Q), 0.38), atol=1e-5)
    # decoded colours never leave the convex hull of the centres' bounding box
    assert np.abs(ab).max() <= 110.0


def test_annealed_mean_is_stable_for_huge_logits(centres):
    logits = np.full(Q, 1e4, np.float32)
    logits[10] = 2e4
    np.testing.assert_allclose(annealed_mean(logits, temperature=0.01), centres[10], atol=1e-3)


# --- shape checks -----------------------------------------------------------------------------------------------------


def _assert_rejects_shape(call, func_name: str, shape: tuple) -> None:
    with pytest.raises(ValueError) as raised:
        call()
    message = str(raised.value)
    assert message.startswith(f"{func_name} expects "), message
    assert message.endswith(f"got shape {shape}"), message


@pytest.mark.parametrize("shape", [(5, 3), (4, 4, 1), (2, 2, 313), (3,), ()], ids=str)
def test_ab_functions_reject_a_last_axis_other_than_2(shape):
    ab = np.zeros(shape, np.float32)
    _assert_rejects_shape(lambda: hard_bins(ab), "hard_bins", shape)
    _assert_rejects_shape(lambda: soft_encode(ab), "soft_encode", shape)


@pytest.mark.parametrize("func", [prior_from_counts, smooth_prior, rebalance_weights], ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(Q - 1,), (Q + 1,), (Q, 1), (1, Q), (2, Q), ()], ids=str)
def test_per_bin_functions_reject_anything_but_a_vector_of_q(func, shape):
    _assert_rejects_shape(lambda: func(np.ones(shape)), func.__name__, shape)


@pytest.mark.parametrize("shape", [(Q - 1,), (4, Q + 1), (2, 3, 2), (Q, 2), ()], ids=str)
def test_annealed_mean_rejects_a_last_axis_other_than_q(shape):
    _assert_rejects_shape(lambda: annealed_mean(np.zeros(shape, np.float32), 1.0), "annealed_mean", shape)


def test_shape_messages_say_what_was_expected():
    with pytest.raises(ValueError, match=r"^hard_bins expects an H×W×2 ab array .*, got shape \(4, 3\)$"):
        hard_bins(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=rf"^smooth_prior expects a vector of {Q} entries .*, got shape \(5,\)$"):
        smooth_prior(np.ones(5))
    with pytest.raises(ValueError, match=rf"^annealed_mean expects .*×{Q} array .*, got shape \(4, 312\)$"):
        annealed_mean(np.zeros((4, 312)), 1.0)


def test_bin_counts_takes_bins_of_any_shape():
    """bin_counts has no shape to check: any array of bin indices is flattened, a scalar included."""
    bins = np.array([[3, 3], [7, 3]], dtype=np.int16)
    np.testing.assert_array_equal(bin_counts(bins), bin_counts(bins.ravel()))
    assert bin_counts(np.int16(5))[5] == 1 and bin_counts(np.int16(5)).shape == (Q,)
