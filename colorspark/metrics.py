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

__all__ = [
    "psnr",
    "ssim",
    "ab_error_auc",
    "rebalancing_pixel_weights",
    "colourfulness",
    "score_colorization",
]

_DATA_RANGE = 255.0
_SSIM_DEFAULT_WIN = 7


def _check_rgb_pair(truth_rgb: np.ndarray, pred_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reject anything but matching uint8 H×W×3 images: a float image in
    0..1 scored with data range 255 would give a plausible but wrong number."""
    truth = np.asarray(truth_rgb)
    pred = np.asarray(pred_rgb)
    for name, img in (("truth_rgb", truth), ("pred_rgb", pred)):
        if img.dtype != np.uint8:
            raise TypeError(f"{name} must be uint8 RGB, got dtype {img.dtype}")
        if img.ndim != 3 or img.shape[-1] != 3:
            raise ValueError(f"{name} must have shape (H, W, 3), got {img.shape}")
    if truth.shape != pred.shape:
        raise ValueError(f"shape mismatch: truth {truth.shape} vs prediction {pred.shape}")
    return truth, pred


def psnr(truth_rgb: np.ndarray, pred_rgb: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit RGB images.

    Identical images give ``math.inf`` (zero error) rather than a division
    warning, so a perfect prediction still sorts above every other one.
    """
    truth, pred = _check_rgb_pair(truth_rgb, pred_rgb)
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
    """
    truth, pred = _check_rgb_pair(truth_rgb, pred_rgb)
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
    threshold; ``pixel_weights`` (non-negative, shape ``ab.shape[:-1]``) are
    normalised to sum to one.
    """
    true = np.asarray(ab_true, dtype=np.float64)
    pred = np.asarray(ab_pred, dtype=np.float64)
    if true.shape != pred.shape:
        raise ValueError(f"shape mismatch: ab_true {true.shape} vs ab_pred {pred.shape}")
    if true.ndim < 1 or true.shape[-1] != 2:
        raise ValueError(f"ab arrays must have a trailing axis of 2, got {true.shape}")
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
        weights = np.asarray(pixel_weights, dtype=np.float64)
        if weights.shape != true.shape[:-1]:
            raise ValueError(
                f"pixel_weights shape {weights.shape} does not match image shape {true.shape[:-1]}"
            )
        weights = weights.ravel()
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
    of the smallest positive prior instead of an infinite one.  Returns a
    float64 array of shape ``ab_true.shape[:-1]``.
    """
    ab = np.asarray(ab_true)
    prior_arr = np.asarray(prior, dtype=np.float64)
    if ab.ndim < 1 or ab.shape[-1] != 2:
        raise ValueError(f"ab_true must have a trailing axis of 2, got {ab.shape}")
    if prior_arr.shape != (len(gamut_centres()),):
        raise ValueError(f"prior must have {len(gamut_centres())} entries, got shape {prior_arr.shape}")
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
    """
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"rgb must have shape (H, W, 3), got {img.shape}")
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
    """
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
