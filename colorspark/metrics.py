"""Colour-quality metrics for a colorized photo and for its gray baseline.

Every metric is reported twice, for the network's prediction and for the
"gray" image (same lightness, ab = 0), because a colorizer is only useful if
it beats doing nothing: a desaturated guess already scores well on PSNR/SSIM,
so the ab-error AuC of Zhang, Isola & Efros (2016) and its class-rebalanced
variant, plus the colourfulness of Hasler & Süsstrunk (2003), are added to
expose washed-out predictions.
"""

from __future__ import annotations

import math
import operator

import numpy as np
from skimage.metrics import structural_similarity

from .bins import gamut_centres, hard_bins
from .colorspace import _check_shape

# The keys of score_colorization's result, in the order the results table, summary and report list them.
SCORE_KEYS = ("psnr", "psnr_gray", "ssim", "ssim_gray", "auc", "auc_gray", "auc_rebal", "auc_rebal_gray",
              "colourfulness", "colourfulness_gray", "colourfulness_truth")

__all__ = [
    "SCORE_KEYS",
    "psnr",
    "ssim",
    "ab_error_auc",
    "rebalancing_pixel_weights",
    "colourfulness",
    "score_colorization",
]

_DATA_RANGE = 255.0
_SSIM_DEFAULT_WIN = 7


_RGB_IMAGE = "an H×W×3 RGB image"
_AB_ANY = "an H×W×2 ab array (any shape ending in 2)"


def _check_rgb_pair(
    func: str, truth_rgb: np.ndarray, pred_rgb: np.ndarray, pred_name: str = "pred_rgb"
) -> tuple[np.ndarray, np.ndarray]:
    """Reject anything but matching uint8 H×W×3 images: a float image in
    0..1 scored with data range 255 would give a plausible but wrong number."""
    truth = np.asarray(truth_rgb)
    pred = np.asarray(pred_rgb)
    for name, img in (("truth_rgb", truth), (pred_name, pred)):
        _check_shape(func, img, _RGB_IMAGE, last=3, ndim=3, arg=name)
        if img.dtype != np.uint8:
            raise TypeError(f"{func} expects {name} as uint8 RGB, got dtype {img.dtype}")
    if truth.shape != pred.shape:
        raise ValueError(
            f"{func} expects {pred_name} with the shape of truth_rgb {truth.shape}, got shape {pred.shape}"
        )
    return truth, pred


def _check_ab_pair(func: str, ab_true, ab_pred, pixel_weights=None) -> None:
    """Shapes of ab_true, ab_pred and pixel_weights; reads shapes only, so
    score_colorization can check up front without converting or copying."""
    _check_shape(func, ab_true, _AB_ANY, last=2, arg="ab_true")
    _check_shape(func, ab_pred, _AB_ANY, last=2, arg="ab_pred")
    true_shape, pred_shape = np.shape(ab_true), np.shape(ab_pred)
    if pred_shape != true_shape:
        raise ValueError(f"{func} expects ab_pred with the shape of ab_true {true_shape}, got shape {pred_shape}")
    if pixel_weights is not None and np.shape(pixel_weights) != true_shape[:-1]:
        raise ValueError(
            f"{func} expects pixel_weights of shape {true_shape[:-1]} (ab_true's without its last axis), "
            f"got shape {np.shape(pixel_weights)}"
        )


def psnr(truth_rgb: np.ndarray, pred_rgb: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit RGB images.

    Identical images give ``math.inf`` (zero error) rather than a division
    warning, so a perfect prediction still sorts above every other one;
    callers that average PSNR over many images must cap it themselves
    (training does, at 100 dB).

    Parameters
    ----------
    truth_rgb : (H, W, 3) ndarray of uint8
        The original photo on 0..255.  uint8 is required because the peak
        is fixed at 255: a float image on 0..1 would score a plausible but
        wrong number.
    pred_rgb : (H, W, 3) ndarray of uint8
        The image to score, of the same shape.

    Returns
    -------
    psnr : float
        10·log10(255² / MSE) over all pixels and channels; ``inf`` when
        the images are identical.

    Raises
    ------
    ValueError
        If either image is not H×W×3, or their shapes differ.
    TypeError
        If either image is not uint8.
    """
    truth, pred = _check_rgb_pair("psnr", truth_rgb, pred_rgb)
    diff = truth.astype(np.float64) - pred.astype(np.float64)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(_DATA_RANGE * _DATA_RANGE / mse)


def ssim(truth_rgb: np.ndarray, pred_rgb: np.ndarray) -> float:
    """Mean structural similarity of two 8-bit RGB images (channels averaged).

    scikit-image refuses images smaller than its 7×7 default window, yet a
    batch job meets thumbnails and 4000×60 panorama strips.  The window is
    therefore shrunk to the largest odd size ≤ min(H, W) (so 3×5 uses 3×3 and
    4000×60 keeps 7×7).  With a side shorter than 3 pixels there is no
    neighbourhood to compare, so ``nan`` is returned rather than a number
    that would look comparable to the rest.

    Parameters
    ----------
    truth_rgb : (H, W, 3) ndarray of uint8
        The original photo on 0..255 (uint8 for the same reason as in
        :func:`psnr`: the data range is fixed at 255).
    pred_rgb : (H, W, 3) ndarray of uint8
        The image to score, of the same shape.

    Returns
    -------
    ssim : float
        Mean SSIM over pixels and channels, at most 1.0 (identical images);
        ``nan`` if H or W is below 3.

    Raises
    ------
    ValueError
        If either image is not H×W×3, or their shapes differ.
    TypeError
        If either image is not uint8.
    """
    truth, pred = _check_rgb_pair("ssim", truth_rgb, pred_rgb)
    min_side = min(truth.shape[0], truth.shape[1])
    if min_side < 3:
        return math.nan
    win = min(_SSIM_DEFAULT_WIN, min_side if min_side % 2 else min_side - 1)
    value = structural_similarity(
        truth, pred, win_size=win, channel_axis=-1, data_range=_DATA_RANGE
    )
    return float(value)


def ab_error_auc(
    ab_true: np.ndarray,
    ab_pred: np.ndarray,
    pixel_weights: np.ndarray | None = None,
    max_threshold: int = 150,
) -> float:
    """Zhang et al.'s AuC of the cumulative ab-error curve, in [0, 1].

    For every integer threshold t in 0..max_threshold the (weighted) fraction
    of pixels whose Euclidean ab error is ≤ t is taken; the score is the mean
    of those fractions, so a perfect prediction scores 1.0 and a constant
    error e scores (max_threshold − e + 1) / (max_threshold + 1).  Unlike
    PSNR it does not reward hedging towards gray, which is the failure mode
    the paper set out to measure.  Non-finite errors count as misses at every
    threshold.

    Parameters
    ----------
    ab_true : (..., 2) array_like
        Ground-truth a*, b*, usually H×W×2; the leading axes are free.  Any
        real dtype (computed in float64).
    ab_pred : (..., 2) array_like
        Predicted a*, b*, same shape as `ab_true`.
    pixel_weights : (...) array_like, optional
        One finite, non-negative weight per pixel, shaped like `ab_true`
        without its last axis (see :func:`rebalancing_pixel_weights`);
        normalised here to sum to one.  None weighs every pixel equally.
    max_threshold : int, optional
        The largest threshold, ≥ 0.  150 is the paper's: beyond it every
        error is equally wrong.

    Returns
    -------
    auc : float
        The area under the curve, in [0, 1].

    Raises
    ------
    ValueError
        If an ab array does not end in an axis of 2, the two differ in
        shape, `pixel_weights` has the wrong shape, a negative or non-finite
        entry or a zero sum, `max_threshold` is negative, or there are no
        pixels.
    TypeError
        If `max_threshold` is not an integer.
    """
    true = np.asarray(ab_true, dtype=np.float64)
    pred = np.asarray(ab_pred, dtype=np.float64)
    _check_ab_pair("ab_error_auc", true, pred, pixel_weights)
    max_t = operator.index(max_threshold)
    if max_t < 0:
        raise ValueError(f"max_threshold must be >= 0, got {max_t}")
    if true.size == 0:
        raise ValueError("ab arrays contain no pixels")

    err = np.hypot(true[..., 0] - pred[..., 0], true[..., 1] - pred[..., 1]).ravel()

    if pixel_weights is None:
        weights = None
        total = float(err.size)
    else:
        weights = np.asarray(pixel_weights, dtype=np.float64).ravel()
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("pixel_weights must be finite and non-negative")
        total = float(weights.sum())
        if total <= 0.0:
            raise ValueError("pixel_weights sum to zero")

    # For integer t, err <= t exactly when ceil(err) <= t, so one weighted
    # histogram of ceil(err) plus a cumulative sum gives the whole curve in a
    # single pass instead of one comparison per threshold.
    miss_bin = max_t + 1
    bins = np.full(err.shape, miss_bin, dtype=np.int64)
    hit = err <= max_t  # False for nan, so non-finite errors stay misses
    bins[hit] = np.ceil(err[hit]).astype(np.int64)
    hist = np.bincount(bins, weights=weights, minlength=miss_bin + 1)
    # Summation order differs between the cumsum and the total, so clip the
    # rounding that would let a perfect weighted score read 1.0000000000000002.
    curve = np.minimum(np.cumsum(hist[:miss_bin]) / total, 1.0)
    return float(np.mean(curve))


def rebalancing_pixel_weights(ab_true: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Per-pixel weights 1/prior[q], q the ground truth's ab bin (`colorspark.bins.hard_bins`).

    This is the weighting behind Zhang et al.'s "rebalanced" AuC: rare,
    saturated colours count as much as the common desaturated ones, so a
    model that paints everything brownish-gray cannot score well.  Bins with
    prior 0 (seen in the image but never in the training set) take the weight
    of the smallest positive prior instead of an infinite one.

    Parameters
    ----------
    ab_true : (..., 2) array_like
        Ground-truth a*, b*, usually H×W×2; the leading axes are free.  Any
        real dtype; must be finite.
    prior : (313,) array_like
        The training set's bin probabilities (preprocessing's prior.npy, not
        smoothed): finite, non-negative, with at least one positive entry.
        It need not sum to one; :func:`ab_error_auc` normalises the weights.

    Returns
    -------
    weights : (...) ndarray of float64
        Positive weights, shaped like `ab_true` without its last axis.

    Raises
    ------
    ValueError
        If `ab_true` does not end in an axis of 2 or has a non-finite value,
        or `prior` is not a vector of 313 entries, has a negative or
        non-finite entry, or no positive one.
    """
    q = len(gamut_centres())
    _check_shape("rebalancing_pixel_weights", ab_true, _AB_ANY, last=2, arg="ab_true")
    _check_shape("rebalancing_pixel_weights", prior, f"a vector of {q} entries (one per bin)", last=q, ndim=1,
                 arg="prior")
    ab = np.asarray(ab_true)
    prior_arr = np.asarray(prior, dtype=np.float64)
    if not np.all(np.isfinite(prior_arr)) or np.any(prior_arr < 0):
        raise ValueError("prior must be finite and non-negative")
    positive = prior_arr[prior_arr > 0]
    if positive.size == 0:
        raise ValueError("prior has no positive entry")
    if not np.all(np.isfinite(ab)):
        raise ValueError("ab values must be finite")
    inv_prior = 1.0 / np.where(prior_arr > 0, prior_arr, positive.min())
    return inv_prior[hard_bins(ab)]


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk's (2003) colourfulness M of an RGB image on 0..255.

    M = sqrt(σ_rg² + σ_yb²) + 0.3·sqrt(μ_rg² + μ_yb²) with rg = R − G,
    yb = (R + G)/2 − B and population standard deviations.  It needs no
    ground truth, so it shows whether a prediction is as vivid as the
    original or has collapsed towards sepia; a neutral gray image scores 0.
    Values are taken as they are: pass 0..255 data, not 0..1 floats.

    Parameters
    ----------
    rgb : (H, W, 3) array_like
        An RGB image on 0..255, any real dtype (uint8 in the pipeline).

    Returns
    -------
    m : float
        Colourfulness, ≥ 0; 0 for a neutral gray image.  On 0..255 data
        Hasler & Süsstrunk rate about 15 "slightly", 33 "moderately" and
        59 "quite" colourful.

    Raises
    ------
    ValueError
        If `rgb` is not H×W×3, or has no pixels.
    """
    _check_shape("colourfulness", rgb, _RGB_IMAGE, last=3, ndim=3)
    img = np.asarray(rgb)
    if img.shape[0] * img.shape[1] == 0:
        raise ValueError("rgb contains no pixels")
    img = img.astype(np.float64)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = math.sqrt(float(rg.var()) + float(yb.var()))
    centre = math.sqrt(float(rg.mean()) ** 2 + float(yb.mean()) ** 2)
    return spread + 0.3 * centre


def score_colorization(
    truth_rgb: np.ndarray,
    pred_rgb: np.ndarray,
    gray_rgb: np.ndarray,
    ab_true: np.ndarray,
    ab_pred: np.ndarray,
    pixel_weights: np.ndarray | None,
) -> dict[str, float]:
    """All metrics for one photo, for the prediction and the gray baseline.

    ``gray_rgb`` is the photo rendered with ab = 0, so its ab is all zeros.
    ``pixel_weights`` (see :func:`rebalancing_pixel_weights`) drive the
    rebalanced AuC; without them ``auc_rebal`` and ``auc_rebal_gray`` are nan
    rather than silently repeating the unweighted AuC.  Values are plain
    Python floats so they serialise to JSON/Spark rows without numpy types.

    Every argument is checked here, before any metric runs, so an error
    names this function rather than whichever metric met the input first.

    Parameters
    ----------
    truth_rgb : (H, W, 3) ndarray of uint8
        The original photo.
    pred_rgb : (H, W, 3) ndarray of uint8
        The colorized photo, same shape.
    gray_rgb : (H, W, 3) ndarray of uint8
        The photo's lightness rendered with ab = 0, same shape.
    ab_true : (..., 2) array_like
        The original's a*, b*, usually H×W×2.
    ab_pred : (..., 2) array_like
        The predicted a*, b*, same shape as `ab_true`.
    pixel_weights : (...) array_like or None
        Per-pixel weights for the rebalanced AuC, shaped like `ab_true`
        without its last axis; see :func:`ab_error_auc`.

    Returns
    -------
    scores : dict of str to float
        One value per key of `SCORE_KEYS`: each metric for the prediction,
        with ``_gray`` for the gray baseline, and ``colourfulness_truth``
        for the original.

    Raises
    ------
    ValueError
        If an image is not H×W×3 or its shape differs from `truth_rgb`'s,
        an ab array does not end in an axis of 2 or the two differ in shape,
        `pixel_weights` has the wrong shape, or any other check of
        :func:`ab_error_auc` or :func:`colourfulness` fails.
    TypeError
        If an image is not uint8.
    """
    _check_rgb_pair("score_colorization", truth_rgb, pred_rgb)
    _check_rgb_pair("score_colorization", truth_rgb, gray_rgb, "gray_rgb")
    _check_ab_pair("score_colorization", ab_true, ab_pred, pixel_weights)
    ab_true_arr = np.asarray(ab_true, dtype=np.float64)
    ab_gray = np.zeros_like(ab_true_arr)
    if pixel_weights is None:
        auc_rebal = auc_rebal_gray = math.nan
    else:
        auc_rebal = ab_error_auc(ab_true_arr, ab_pred, pixel_weights)
        auc_rebal_gray = ab_error_auc(ab_true_arr, ab_gray, pixel_weights)
    return {
        "psnr": float(psnr(truth_rgb, pred_rgb)),
        "psnr_gray": float(psnr(truth_rgb, gray_rgb)),
        "ssim": float(ssim(truth_rgb, pred_rgb)),
        "ssim_gray": float(ssim(truth_rgb, gray_rgb)),
        "auc": float(ab_error_auc(ab_true_arr, ab_pred)),
        "auc_gray": float(ab_error_auc(ab_true_arr, ab_gray)),
        "auc_rebal": float(auc_rebal),
        "auc_rebal_gray": float(auc_rebal_gray),
        "colourfulness": float(colourfulness(pred_rgb)),
        "colourfulness_gray": float(colourfulness(gray_rgb)),
        "colourfulness_truth": float(colourfulness(truth_rgb)),
    }
