"""Known-answer tests for colorspark.metrics.

Expected values are computed by hand (or by scikit-image's reference
implementation) so a silent change of definition breaks a test.
"""

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage import color, data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorspark.metrics import (
    ab_error_auc,
    colour_cast,
    colourfulness,
    psnr,
    rebalancing_pixel_weights,
    score_colorization,
    ssim,
)


def _random_rgb(rng, shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


# --- PSNR -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psnr_matches_skimage_on_random_images(seed):
    rng = np.random.default_rng(seed)
    truth = _random_rgb(rng, (37, 53, 3))
    pred = _random_rgb(rng, (37, 53, 3))
    expected = peak_signal_noise_ratio(truth, pred, data_range=255)
    assert psnr(truth, pred) == pytest.approx(expected, rel=1e-12)


def test_psnr_constant_error_of_ten_is_hand_computed():
    truth = np.full((8, 9, 3), 100, dtype=np.uint8)
    pred = np.full((8, 9, 3), 110, dtype=np.uint8)
    # MSE = 100, so PSNR = 10·log10(255² / 10²) = 20·log10(25.5) ≈ 28.13 dB.
    assert psnr(truth, pred) == pytest.approx(20 * math.log10(255 / 10), rel=1e-12)
    assert psnr(truth, pred) == pytest.approx(28.130803608679106, rel=1e-12)


def test_psnr_identical_images_is_infinite():
    img = _random_rgb(np.random.default_rng(3), (5, 4, 3))
    result = psnr(img, img.copy())
    assert result == math.inf
    assert isinstance(result, float)


def test_psnr_rejects_float_and_mismatched_images():
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(TypeError):
        psnr(img, img.astype(np.float64))
    with pytest.raises(ValueError):
        psnr(img, np.zeros((4, 5, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        psnr(img[..., 0], img[..., 0])


# --- SSIM -------------------------------------------------------------------


# ssim computes scikit-image's definition from integer window sums with a float32 ratio per window; its docstring
# promises agreement within 1e-6 (measured: about 1e-8).
_SSIM_TOL = 1e-6


def test_ssim_identical_images_is_one():
    img = _random_rgb(np.random.default_rng(4), (32, 40, 3))
    assert ssim(img, img.copy()) == 1.0


def test_ssim_matches_skimage_with_default_window():
    rng = np.random.default_rng(5)
    truth = _random_rgb(rng, (30, 31, 3))
    pred = np.clip(truth.astype(int) + rng.integers(-20, 21, truth.shape), 0, 255).astype(np.uint8)
    expected = structural_similarity(truth, pred, channel_axis=-1, data_range=255)
    result = ssim(truth, pred)
    assert result == pytest.approx(expected, abs=_SSIM_TOL)
    assert 0.0 < result < 1.0


@pytest.mark.parametrize(
    ("shape", "window"),
    [((3, 5), 3), ((5, 3), 3), ((4, 9), 3), ((6, 6), 5), ((5, 200), 5), ((4000, 60), 7)],
)
def test_ssim_shrinks_window_to_largest_odd_fitting_size(shape, window):
    rng = np.random.default_rng(6)
    truth = _random_rgb(rng, shape + (3,))
    pred = _random_rgb(rng, shape + (3,))
    expected = structural_similarity(
        truth, pred, win_size=window, channel_axis=-1, data_range=255
    )
    assert ssim(truth, pred) == pytest.approx(expected, abs=_SSIM_TOL)
    assert ssim(truth, truth.copy()) == 1.0


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (2, 50), (70, 1)])
def test_ssim_is_nan_below_three_pixels(shape):
    img = np.zeros(shape + (3,), dtype=np.uint8)
    assert math.isnan(ssim(img, img))


def _sk_ssim(truth, pred, win=7):
    return structural_similarity(truth, pred, win_size=win, channel_axis=-1, data_range=255)


@pytest.mark.parametrize("strip", [1, 300, 5000])
def test_ssim_is_the_same_in_any_number_of_strips(monkeypatch, strip):
    """Strips of one row each, of a few rows with a short last one, and the whole image at once."""
    import colorspark.metrics as metrics

    rng = np.random.default_rng(13)
    truth = _random_rgb(rng, (41, 23, 3))
    pred = np.clip(truth.astype(int) + rng.integers(-40, 41, truth.shape), 0, 255).astype(np.uint8)
    monkeypatch.setattr(metrics, "_SSIM_STRIP", strip)
    assert ssim(truth, pred) == pytest.approx(_sk_ssim(truth, pred), abs=_SSIM_TOL)


@pytest.mark.parametrize("pattern", ["black_white", "checkerboard", "extremes"])
def test_ssim_exact_at_the_extremes_of_8_bit_data(pattern):
    """Window sums as large as 8-bit data allows (all 255, or 0/255 at random) stay exact in their integer types."""
    rng = np.random.default_rng(14)
    shape = (29, 31, 3)
    if pattern == "black_white":
        truth, pred = np.full(shape, 255, np.uint8), np.zeros(shape, np.uint8)
    elif pattern == "checkerboard":
        board = ((np.indices(shape).sum(axis=0) % 2) * 255).astype(np.uint8)
        truth, pred = board, np.full(shape, 255, np.uint8)
    else:
        truth = (rng.integers(0, 2, shape) * 255).astype(np.uint8)
        pred = (rng.integers(0, 2, shape) * 255).astype(np.uint8)
    assert ssim(truth, pred) == pytest.approx(_sk_ssim(truth, pred), abs=_SSIM_TOL)
    assert ssim(truth, truth.copy()) == 1.0


def test_ssim_takes_non_contiguous_views():
    rng = np.random.default_rng(15)
    truth = _random_rgb(rng, (60, 70, 3))
    pred = _random_rgb(rng, (70, 60, 3)).transpose(1, 0, 2)
    assert ssim(truth[::2, 1::2], pred[::2, 1::2]) == pytest.approx(
        _sk_ssim(truth[::2, 1::2], pred[::2, 1::2]), abs=_SSIM_TOL)


# --- ab-error AuC ---------------------------------------------------------------


def _random_ab(rng, shape=(12, 17)):
    # Integer ab values keep the offsets below exact in floating point.
    return rng.integers(-100, 101, size=shape + (2,)).astype(np.float64)


def test_auc_perfect_prediction_is_one():
    ab = _random_ab(np.random.default_rng(7))
    assert ab_error_auc(ab, ab.copy()) == 1.0


@pytest.mark.parametrize(
    ("offset", "error"),
    [((0, 0), 0), ((1, 0), 1), ((3, 4), 5), ((6, -8), 10), ((-5, 12), 13), ((7, 24), 25),
     ((90, 120), 150)],
)
def test_auc_constant_integer_error(offset, error):
    ab = _random_ab(np.random.default_rng(8))
    pred = ab + np.array(offset, dtype=np.float64)
    # Fractions are 0 for t < e and 1 for e ≤ t ≤ 150: 151 − e of 151 thresholds.
    assert ab_error_auc(ab, pred) == pytest.approx((150 - error + 1) / 151, abs=1e-15)


def test_auc_fractional_error_counts_from_next_integer_threshold():
    ab = np.zeros((4, 4, 2))
    pred = ab + np.array([2.5, 0.0])
    # err 2.5 ≤ t holds for t = 3..150: 148 of 151 thresholds.
    assert ab_error_auc(ab, pred) == pytest.approx(148 / 151, abs=1e-15)


def test_auc_custom_max_threshold():
    ab = np.zeros((3, 3, 2))
    pred = ab + np.array([3.0, 0.0])
    # Thresholds 0..10, hits at 3..10: 8 of 11.
    assert ab_error_auc(ab, pred, max_threshold=10) == pytest.approx(8 / 11, abs=1e-15)


@pytest.mark.parametrize("offset", [(151, 0), (150.001, 0), (120, 100), (-200, 200)])
def test_auc_error_above_max_threshold_everywhere_is_zero(offset):
    ab = _random_ab(np.random.default_rng(9))
    assert ab_error_auc(ab, ab + np.array(offset)) == 0.0


def test_auc_weighted_by_pixel_weights():
    ab = _random_ab(np.random.default_rng(10), shape=(6, 8))
    pred = ab.copy()
    wrong = np.zeros(ab.shape[:-1], dtype=bool)
    wrong[:, :4] = True
    pred[wrong] += 200.0  # error 200·√2 > 150: never counted.
    assert ab_error_auc(ab, pred) == pytest.approx(0.5, abs=1e-15)
    on_correct = (~wrong).astype(np.float64)
    assert ab_error_auc(ab, pred, on_correct) == pytest.approx(1.0, abs=1e-15)
    assert ab_error_auc(ab, pred, on_correct * 1e-6) == pytest.approx(1.0, abs=1e-12)
    three_to_one = np.where(wrong, 1.0, 3.0)
    assert ab_error_auc(ab, pred, three_to_one) == pytest.approx(0.75, abs=1e-15)
    assert ab_error_auc(ab, pred, wrong.astype(np.float64)) == 0.0


def test_auc_counts_non_finite_errors_as_misses():
    ab = np.zeros((1, 2, 2))
    pred = np.array([[[0.0, 0.0], [np.nan, 0.0]]])
    assert ab_error_auc(ab, pred) == pytest.approx(0.5, abs=1e-15)


def test_auc_rejects_bad_inputs():
    ab = np.zeros((3, 4, 2))
    with pytest.raises(ValueError):
        ab_error_auc(ab, np.zeros((3, 5, 2)))
    with pytest.raises(ValueError):
        ab_error_auc(np.zeros((3, 4, 3)), np.zeros((3, 4, 3)))
    with pytest.raises(ValueError):
        ab_error_auc(ab, ab, np.ones((4, 3)))
    with pytest.raises(ValueError):
        ab_error_auc(ab, ab, -np.ones((3, 4)))
    with pytest.raises(ValueError):
        ab_error_auc(ab, ab, np.zeros((3, 4)))
    with pytest.raises(ValueError):
        ab_error_auc(ab, ab, max_threshold=-1)


# --- rebalancing weights ------------------------------------------------------


from colorspark.bins import gamut_centres, hard_bins  # noqa: E402


def _centre(q):
    return gamut_centres()[q].astype(np.float64)


def test_rebalancing_weights_exact_on_chosen_bins():
    prior = np.full(313, 0.5 / 311)
    q_common, q_rare = 156, 10
    prior[q_common], prior[q_rare] = 0.4, 0.1 - 0.5 / 311
    prior /= prior.sum()
    ab = np.array([[_centre(q_common) + [1.0, -2.0], _centre(q_rare) + [-3.0, 2.5]]])
    weights = rebalancing_pixel_weights(ab, prior)
    assert weights.shape == (1, 2) and weights.dtype == np.float64
    np.testing.assert_allclose(weights, [[1 / prior[q_common], 1 / prior[q_rare]]], rtol=1e-15)


def test_rebalancing_zero_prior_bin_gets_smallest_positive_priors_weight():
    prior = np.zeros(313)
    prior[[0, 1]] = [0.8, 0.2]
    ab = np.array([[_centre(0), _centre(1), _centre(200)]])
    np.testing.assert_allclose(rebalancing_pixel_weights(ab, prior), [[1.25, 5.0, 5.0]], rtol=1e-15)


def test_rebalancing_rare_bin_gets_larger_weight():
    ab = np.zeros((10, 10, 2))
    ab[0, 0] = _centre(40)
    counts = np.bincount(hard_bins(ab).ravel(), minlength=313).astype(np.float64)
    prior = counts / counts.sum()
    weights = rebalancing_pixel_weights(ab, prior)
    assert weights[0, 0] == pytest.approx(100.0)
    assert weights[5, 5] == pytest.approx(100.0 / 99.0)


def test_rebalancing_weights_match_brute_force_nearest_centre():
    rng = np.random.default_rng(11)
    prior = rng.random(313)
    prior[::7] = 0.0
    prior /= prior.sum()
    ab = rng.integers(-100, 100, size=(40, 50, 2)).astype(np.float64)  # integers: no rounding at bin edges
    centres = gamut_centres().astype(np.float64)
    nearest = np.argmin(((ab.reshape(-1, 1, 2) - centres[None]) ** 2).sum(-1), axis=1)
    eff = np.where(prior > 0, prior, prior[prior > 0].min())
    np.testing.assert_array_equal(rebalancing_pixel_weights(ab, prior), (1.0 / eff[nearest]).reshape(40, 50))


def test_rebalancing_rejects_bad_inputs():
    ab = np.zeros((2, 2, 2))
    with pytest.raises(ValueError):
        rebalancing_pixel_weights(ab, np.array([0.5, 0.5]))
    with pytest.raises(ValueError):
        rebalancing_pixel_weights(ab, np.zeros(313))
    with pytest.raises(ValueError):
        rebalancing_pixel_weights(ab, np.r_[-0.1, np.full(312, 1.1 / 312)])
    with pytest.raises(ValueError):
        rebalancing_pixel_weights(np.full((2, 2, 2), np.nan), np.ones(313) / 313)


# --- colourfulness -------------------------------------------------------------


def test_colourfulness_of_gray_image_is_zero():
    rng = np.random.default_rng(12)
    gray = np.repeat(rng.integers(0, 256, size=(20, 30, 1), dtype=np.uint8), 3, axis=2)
    assert colourfulness(gray) == 0.0


def test_colourfulness_two_pixel_hand_computed():
    rgb = np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)
    # rg = [255, 0]: mean 127.5, std 127.5; yb = [127.5, −255]: mean −63.75, std 191.25.
    expected = math.sqrt(127.5**2 + 191.25**2) + 0.3 * math.sqrt(127.5**2 + 63.75**2)
    assert colourfulness(rgb) == pytest.approx(expected, rel=1e-12)
    assert colourfulness(rgb) == pytest.approx(272.61869388, rel=1e-9)
    assert colourfulness(rgb.astype(np.float32)) == pytest.approx(expected, rel=1e-6)


def test_colourfulness_single_colour_has_only_the_mean_term():
    rgb = np.zeros((3, 3, 3), dtype=np.uint8)
    rgb[...] = [200, 100, 50]
    # rg = 100, yb = 150 − 50 = 100 everywhere: M = 0.3·√(100² + 100²).
    assert colourfulness(rgb) == pytest.approx(0.3 * math.sqrt(2) * 100, rel=1e-12)


# --- colour cast -------------------------------------------------------------------


def _plain_cast(ab_true, ab_pred):
    """The definition in plain float64 numpy: the length of the difference of the two mean ab."""
    mean_true = np.asarray(ab_true, np.float64).reshape(-1, 2).mean(axis=0)
    mean_pred = np.asarray(ab_pred, np.float64).reshape(-1, 2).mean(axis=0)
    return float(np.linalg.norm(mean_true - mean_pred))


def test_colour_cast_of_a_uniform_tint_is_its_length():
    ab_true = _random_ab(np.random.default_rng(30))
    # Every pixel off by (3, −4): a tint of length 5, whatever the pixels' own errors would say about the AuC.
    assert colour_cast(ab_true, ab_true + [3.0, -4.0]) == pytest.approx(5.0, abs=1e-12)


def test_colour_cast_of_gray_is_the_length_of_the_true_mean():
    ab_true = np.zeros((4, 6, 2))
    ab_true[..., 0], ab_true[..., 1] = 6.0, 8.0  # mean (6, 8): length 10
    ab_true[0, 0] = [-18.0, 32.0]  # moves the mean by (−24, 24) / 24 = (−1, 1): to (5, 9)
    assert colour_cast(ab_true, np.zeros_like(ab_true)) == pytest.approx(math.hypot(5.0, 9.0), abs=1e-12)


def test_colour_cast_of_a_perfect_or_mean_preserving_prediction_is_zero():
    ab_true = _random_ab(np.random.default_rng(31)).astype(np.float32)
    assert colour_cast(ab_true, ab_true.copy()) == 0.0
    # The pixels turned upside down: wrong almost everywhere, right on average, so no cast (the AuC sees the rest).
    assert colour_cast(ab_true, ab_true[::-1, ::-1]) == pytest.approx(0.0, abs=1e-9)
    assert ab_error_auc(ab_true, ab_true[::-1, ::-1]) < 0.9


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_colour_cast_matches_plain_numpy(seed, dtype):
    rng = np.random.default_rng(40 + seed)
    shape = [(3, 5, 2), (64, 48, 2), (7, 300, 400, 2)][seed]
    ab_true = np.clip(rng.normal(5, 40, shape), -128, 127).astype(dtype)
    ab_pred = np.clip(rng.normal(-3, 20, shape), -128, 127).astype(dtype)
    assert colour_cast(ab_true, ab_pred) == pytest.approx(_plain_cast(ab_true, ab_pred), abs=1e-6)
    assert colour_cast(ab_true, np.zeros_like(ab_pred)) == pytest.approx(
        float(np.linalg.norm(ab_true.reshape(-1, 2).astype(np.float64).mean(axis=0))), abs=1e-6)


def test_colour_cast_on_a_photo_matches_plain_numpy_within_1e_6():
    """float32 Lab of a photo and a strided view of it, as colorize passes them (lab[..., 1:])."""
    lab = color.rgb2lab(data.coffee()).astype(np.float32)
    pred = lab.copy()
    pred[..., 1:] = ndimage.gaussian_filter(lab[..., 1:] * 0.5, sigma=(3, 3, 0)) + [2.0, 9.0]
    assert abs(colour_cast(lab[..., 1:], pred[..., 1:]) - _plain_cast(lab[..., 1:], pred[..., 1:])) < 1e-6


def test_colour_cast_is_nan_for_non_finite_values():
    ab = np.zeros((3, 4, 2))
    bad = ab.copy()
    bad[1, 2, 0] = np.nan
    assert math.isnan(colour_cast(ab, bad))


def test_colour_cast_rejects_bad_inputs():
    with pytest.raises(ValueError, match="no pixels"):
        colour_cast(np.zeros((0, 3, 2)), np.zeros((0, 3, 2)))
    _assert_rejects_shape(lambda: colour_cast(np.zeros((3, 4, 3)), np.zeros((3, 4, 3))), "colour_cast", "ab_true",
                          (3, 4, 3))
    _assert_rejects_shape(lambda: colour_cast(np.zeros((3, 4, 2)), np.zeros((3, 5, 2))), "colour_cast", "ab_pred",
                          (3, 5, 2))


# --- score_colorization -----------------------------------------------------------

_SCORE_KEYS = {
    "psnr", "psnr_gray", "ssim", "ssim_gray", "auc", "auc_gray", "auc_rebal",
    "auc_rebal_gray", "colourfulness", "colourfulness_gray", "colourfulness_truth", "cast", "cast_gray",
}


def _photo_and_gray():
    truth = data.chelsea()[::3, ::3]
    lab = color.rgb2lab(truth)
    ab_true = lab[..., 1:]
    gray_lab = lab.copy()
    gray_lab[..., 1:] = 0.0
    gray = np.round(np.clip(color.lab2rgb(gray_lab), 0, 1) * 255).astype(np.uint8)
    return truth, gray, ab_true


def _prior(ab_true):
    prior = np.bincount(hard_bins(ab_true).ravel(), minlength=313).astype(np.float64)
    return prior / prior.sum()


def test_score_colorization_perfect_prediction_beats_gray_baseline():
    truth, gray, ab_true = _photo_and_gray()
    weights = rebalancing_pixel_weights(ab_true, _prior(ab_true))
    scores = score_colorization(truth, truth.copy(), gray, ab_true, ab_true.copy(), weights)

    assert set(scores) == _SCORE_KEYS
    assert all(type(value) is float for value in scores.values())
    assert scores["psnr"] == math.inf
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert scores["auc"] == 1.0
    assert scores["auc_rebal"] == 1.0
    assert scores["colourfulness"] == scores["colourfulness_truth"]
    assert scores["cast"] == 0.0
    assert scores["cast_gray"] == pytest.approx(_plain_cast(ab_true, np.zeros_like(ab_true)), abs=1e-9)
    assert scores["cast_gray"] > 1.0  # the cat's photo is warm: gray misses its overall tint
    for metric in ("psnr", "ssim", "auc", "auc_rebal", "colourfulness"):
        assert scores[metric] > scores[metric + "_gray"], metric
    # The rebalanced AuC punishes the gray guess harder: rare colours are
    # the saturated ones it misses.
    assert scores["auc_rebal_gray"] < scores["auc_gray"]


def test_score_colorization_without_weights_reports_nan_rebalanced_auc():
    truth, gray, ab_true = _photo_and_gray()
    scores = score_colorization(truth, truth, gray, ab_true, ab_true, None)
    assert set(scores) == _SCORE_KEYS
    assert math.isnan(scores["auc_rebal"])
    assert math.isnan(scores["auc_rebal_gray"])
    assert scores["auc"] == 1.0


def test_score_colorization_equals_the_single_metrics():
    """Shared work gives the values each metric's own function gives (gray ab: zeros of ab_true's dtype)."""
    truth, gray, ab_true = _photo_and_gray()
    ab_true = ab_true.astype(np.float32)
    ab_pred = (ab_true * 0.5).astype(np.float32)
    pred = _render(truth, ab_pred)
    weights = rebalancing_pixel_weights(ab_true, _prior(ab_true))
    scores = score_colorization(truth, pred, gray, ab_true, ab_pred, weights)
    zeros = np.zeros_like(ab_true)
    assert scores == {
        "psnr": psnr(truth, pred), "psnr_gray": psnr(truth, gray),
        "ssim": ssim(truth, pred), "ssim_gray": ssim(truth, gray),
        "auc": ab_error_auc(ab_true, ab_pred), "auc_gray": ab_error_auc(ab_true, zeros),
        "auc_rebal": ab_error_auc(ab_true, ab_pred, weights), "auc_rebal_gray": ab_error_auc(ab_true, zeros, weights),
        "colourfulness": colourfulness(pred), "colourfulness_gray": colourfulness(gray),
        "colourfulness_truth": colourfulness(truth),
        "cast": colour_cast(ab_true, ab_pred), "cast_gray": colour_cast(ab_true, zeros),
    }


def test_score_colorization_cast_of_a_uniform_tint():
    """The truth plus one tint everywhere: the cast is the tint's length, gray's the length of the true mean."""
    truth, gray, ab_true = _photo_and_gray()
    ab_pred = ab_true + [-6.0, 8.0]
    scores = score_colorization(truth, _render(truth, ab_pred), gray, ab_true, ab_pred, None)
    assert scores["cast"] == pytest.approx(10.0, abs=1e-9)
    assert scores["cast_gray"] == pytest.approx(float(np.hypot(*ab_true.reshape(-1, 2).mean(axis=0))), abs=1e-9)


# --- against the plain float64 definitions -----------------------------------------
# The reference lives here only: scikit-image's PSNR and SSIM with the parameters metrics.ssim documents, the AuC one
# threshold at a time on float64 errors, colourfulness with numpy's two-pass variance. Colorize needs every score
# within 0.01 of these; the functions document far tighter bounds, which the tolerances below hold them to.

_TOLERANCE = {"psnr": 1e-9, "ssim": _SSIM_TOL, "colourfulness": 1e-9, "cast": 1e-6}


def _reference_scores(truth, pred, gray, ab_true, ab_pred, weights):
    ab_true = np.asarray(ab_true, dtype=np.float64)

    def auc(ab, w):
        err = np.hypot(ab_true[..., 0] - ab[..., 0], ab_true[..., 1] - ab[..., 1])
        w = np.ones(err.shape) if w is None else w
        return float(np.mean([np.sum(w * (err <= t)) / np.sum(w) for t in range(151)]))

    def colourful(rgb):
        r, g, b = np.moveaxis(rgb.astype(np.float64), -1, 0)
        rg, yb = r - g, 0.5 * (r + g) - b
        return math.sqrt(rg.var() + yb.var()) + 0.3 * math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)

    side = min(truth.shape[:2])
    win = min(7, side if side % 2 else side - 1)  # ssim's documented window
    zeros = np.zeros_like(ab_true)
    return {
        "psnr": peak_signal_noise_ratio(truth, pred, data_range=255),
        "psnr_gray": peak_signal_noise_ratio(truth, gray, data_range=255),
        "ssim": _sk_ssim(truth, pred, win), "ssim_gray": _sk_ssim(truth, gray, win),
        "auc": auc(np.asarray(ab_pred, np.float64), None), "auc_gray": auc(zeros, None),
        "auc_rebal": math.nan if weights is None else auc(np.asarray(ab_pred, np.float64), weights),
        "auc_rebal_gray": math.nan if weights is None else auc(zeros, weights),
        "colourfulness": colourful(pred), "colourfulness_gray": colourful(gray),
        "colourfulness_truth": colourful(truth),
        "cast": _plain_cast(ab_true, ab_pred), "cast_gray": _plain_cast(ab_true, zeros),
    }


def _assert_scores_match_reference(args, weights, auc_tolerance=1e-6):
    scores = score_colorization(*args, weights)
    reference = _reference_scores(*args, weights)
    for key, expected in reference.items():
        metric = key.removesuffix("_gray").removesuffix("_truth")
        tolerance = auc_tolerance if metric.startswith("auc") else _TOLERANCE[metric]
        if math.isnan(expected):
            assert math.isnan(scores[key]), key
        else:
            assert abs(scores[key] - expected) <= tolerance, (key, scores[key], expected)


def _render(truth, ab):
    """The photo's lightness with `ab`, as uint8 RGB (what colorize writes)."""
    lab = color.rgb2lab(truth)
    lab[..., 1:] = ab
    return np.round(np.clip(color.lab2rgb(lab), 0, 1) * 255).astype(np.uint8)


_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
_PREDICTIONS = {
    "half ab, blurred": lambda ab: ndimage.gaussian_filter(ab * 0.5, sigma=(3, 3, 0)),
    "constant ab": lambda ab: np.broadcast_to(np.float32([8.0, 25.0]), ab.shape),
    "gray": np.zeros_like,
}


@pytest.mark.parametrize("prediction", list(_PREDICTIONS))
@pytest.mark.parametrize("photo", _PHOTOS)
def test_score_colorization_matches_reference_on_photos(photo, prediction):
    """Inputs as colorize builds them: float32 Lab of the photo (here at half size), a prediction, the gray image."""
    truth = np.ascontiguousarray(getattr(data, photo)()[::2, ::2])
    ab_true = color.rgb2lab(truth)[..., 1:].astype(np.float32)
    ab_pred = _PREDICTIONS[prediction](ab_true).astype(np.float32)
    args = (truth, _render(truth, ab_pred), _render(truth, 0.0), ab_true, ab_pred)
    _assert_scores_match_reference(args, rebalancing_pixel_weights(ab_true, _prior(ab_true)))


@pytest.mark.parametrize(("seed", "shape"), list(enumerate([(3, 5), (4, 9), (6, 6), (37, 53), (64, 80), (90, 31)])))
def test_score_colorization_matches_reference_on_random_images(seed, shape):
    """Sizes down to the 3×3 window, noise and unrelated images, float32 and float64 ab, with and without weights."""
    rng = np.random.default_rng(100 + seed)
    h, w = shape
    truth = _random_rgb(rng, (h, w, 3))
    noisy = np.clip(truth + rng.normal(0, 30, truth.shape), 0, 255).astype(np.uint8)
    pred = noisy if seed % 2 else _random_rgb(rng, (h, w, 3))
    gray = np.repeat(truth.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    dtype = np.float32 if seed % 3 else np.float64
    ab_true = rng.normal(0, 40, (h, w, 2)).astype(dtype)
    ab_pred = (ab_true + rng.normal(0, 30, (h, w, 2))).astype(dtype)
    weights = rng.random((h, w)) if seed < 4 else None
    # A float32 error that rounds across an integer would move a 15-pixel image's AuC by 1/15/151 = 4e-4 (see
    # ab_error_auc); on photos such pixels are too rare to reach 1e-6.
    _assert_scores_match_reference((truth, pred, gray, ab_true, ab_pred), weights, auc_tolerance=1e-3)


def test_rebalancing_weights_same_for_a_strided_view():
    rng = np.random.default_rng(16)
    lab = rng.normal(0, 40, (30, 20, 3)).astype(np.float32)
    prior = rng.random(313)
    np.testing.assert_array_equal(rebalancing_pixel_weights(lab[..., 1:], prior),
                                  rebalancing_pixel_weights(np.ascontiguousarray(lab[..., 1:]), prior))


# --- shape checks -----------------------------------------------------------------


def _assert_rejects_shape(call, func_name, arg, shape):
    """The ValueError names the function, the argument (if given) and the shape it got."""
    with pytest.raises(ValueError) as raised:
        call()
    message = str(raised.value)
    assert message.startswith(f"{func_name} expects {arg + ' ' if arg else ''}"), message
    assert message.endswith(f"got shape {shape}"), message


_BAD_RGB_SHAPES = [(4, 4), (4, 4, 4), (4, 4, 1), (1, 4, 4, 3), (3,), ()]


@pytest.mark.parametrize("func", [psnr, ssim], ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", _BAD_RGB_SHAPES, ids=str)
def test_image_pair_metrics_reject_wrong_shapes(func, shape):
    good = np.zeros((4, 4, 3), dtype=np.uint8)
    bad = np.zeros(shape, dtype=np.uint8)
    _assert_rejects_shape(lambda: func(bad, good), func.__name__, "truth_rgb", shape)
    _assert_rejects_shape(lambda: func(good, bad), func.__name__, "pred_rgb", shape)


@pytest.mark.parametrize("func", [psnr, ssim], ids=lambda f: f.__name__)
def test_image_pair_metrics_name_both_shapes_on_mismatch(func):
    with pytest.raises(ValueError, match=rf"^{func.__name__} expects pred_rgb .*\(4, 4, 3\), got shape \(4, 5, 3\)$"):
        func(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(TypeError, match=rf"^{func.__name__} expects pred_rgb as uint8"):
        func(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3)))


@pytest.mark.parametrize("shape", [(3, 4, 3), (3, 4, 1), (3, 4), (5,), ()], ids=str)
def test_auc_rejects_ab_without_a_trailing_axis_of_two(shape):
    good = np.zeros((3, 4, 2))
    bad = np.zeros(shape)
    _assert_rejects_shape(lambda: ab_error_auc(bad, bad), "ab_error_auc", "ab_true", shape)
    _assert_rejects_shape(lambda: ab_error_auc(good, bad), "ab_error_auc", "ab_pred", shape)


def test_auc_rejects_mismatched_prediction_and_weights():
    ab = np.zeros((3, 4, 2))
    _assert_rejects_shape(lambda: ab_error_auc(ab, np.zeros((3, 5, 2))), "ab_error_auc", "ab_pred", (3, 5, 2))
    _assert_rejects_shape(lambda: ab_error_auc(ab, ab, np.ones((4, 3))), "ab_error_auc", "pixel_weights", (4, 3))
    _assert_rejects_shape(lambda: ab_error_auc(ab, ab, np.ones((3, 4, 1))), "ab_error_auc", "pixel_weights",
                          (3, 4, 1))


@pytest.mark.parametrize("shape", [(2, 2, 3), (2, 5), ()], ids=str)
def test_rebalancing_weights_reject_wrong_ab_shape(shape):
    _assert_rejects_shape(lambda: rebalancing_pixel_weights(np.zeros(shape), np.full(313, 1 / 313)),
                          "rebalancing_pixel_weights", "ab_true", shape)


@pytest.mark.parametrize("shape", [(312,), (314,), (313, 1), (1, 313), ()], ids=str)
def test_rebalancing_weights_reject_wrong_prior_shape(shape):
    _assert_rejects_shape(lambda: rebalancing_pixel_weights(np.zeros((2, 2, 2)), np.ones(shape)),
                          "rebalancing_pixel_weights", "prior", shape)


@pytest.mark.parametrize("shape", _BAD_RGB_SHAPES, ids=str)
def test_colourfulness_rejects_wrong_shapes(shape):
    _assert_rejects_shape(lambda: colourfulness(np.zeros(shape, np.uint8)), "colourfulness", "", shape)
    with pytest.raises(ValueError, match=r"^colourfulness expects an H×W×3 RGB image, got shape \(4, 4\)$"):
        colourfulness(np.zeros((4, 4)))


@pytest.mark.parametrize("arg", ["truth_rgb", "pred_rgb", "gray_rgb", "ab_true", "ab_pred", "pixel_weights"])
def test_score_colorization_names_itself_and_the_bad_argument(arg):
    """Each argument is checked up front, so the error names score_colorization, not the metric it calls."""
    args = {"truth_rgb": np.zeros((6, 5, 3), np.uint8), "pred_rgb": np.zeros((6, 5, 3), np.uint8),
            "gray_rgb": np.zeros((6, 5, 3), np.uint8), "ab_true": np.zeros((6, 5, 2)),
            "ab_pred": np.zeros((6, 5, 2)), "pixel_weights": np.ones((6, 5))}
    assert all(type(v) is float for v in score_colorization(**args).values())
    bad_shape = (6, 5) if arg.endswith("rgb") else (6, 5, 3) if arg.startswith("ab") else (5, 6)
    args[arg] = np.zeros(bad_shape, args[arg].dtype)
    _assert_rejects_shape(lambda: score_colorization(**args), "score_colorization", arg, bad_shape)
