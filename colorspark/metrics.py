"""Colour-quality metrics for a colorized photo and for its gray baseline.

Every metric is reported twice, for the network's prediction and for the
"gray" image (same lightness, ab = 0), because a colorizer is only useful if
it beats doing nothing: a desaturated guess already scores well on PSNR/SSIM,
so the ab-error AuC of Zhang, Isola & Efros (2016) and its class-rebalanced
variant, plus the colourfulness of Hasler & Süsstrunk (2003), are added to
expose washed-out predictions, and the colour cast (how far the mean colour
is off) to expose a tint laid over the whole photo, such as a sepia wash.

Colorize scores every colour input at full resolution, so the metrics are built for speed on one photo: SSIM comes
from exact integer window sums taken in strips (no float64 copies of the images), with the original's statistics
shared by the prediction and the gray baseline; each AuC is a single sum over the per-pixel errors, computed once per
image for the plain and the rebalanced curve, whose per-pixel ab differences also give the colour cast; PSNR and
colourfulness sum over float64 chunks. Against the plain
float64 definitions (scikit-image's for PSNR and SSIM), PSNR and colourfulness agree to rounding, SSIM within 1e-6,
and the AuCs, whose errors are float32 for float32 Lab, within 1e-6 on photos (see ab_error_auc for the bound), as
is the colour cast.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

import numpy as np

from .bins import gamut_centres, hard_bins
from .colorspace import _check_shape

# The keys of score_colorization's result, in the order the results table, summary and report list them.
SCORE_KEYS = ("psnr", "psnr_gray", "ssim", "ssim_gray", "auc", "auc_gray", "auc_rebal", "auc_rebal_gray",
              "colourfulness", "colourfulness_gray", "colourfulness_truth", "cast", "cast_gray")

__all__ = [
    "SCORE_KEYS",
    "psnr",
    "ssim",
    "ab_error_auc",
    "rebalancing_pixel_weights",
    "colourfulness",
    "colour_cast",
    "score_colorization",
]

_DATA_RANGE = 255.0
_SSIM_DEFAULT_WIN = 7
# scikit-image's structural_similarity defaults, which ssim reproduces: these constants, a uniform win×win window and
# the sample covariance (normalised by N − 1).
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
# SSIM works through the image in strips of rows holding about this many values (pixels × 3): its two dozen buffers
# then take about 10 MB whatever the photo's size (scikit-image makes a dozen float64 copies of the whole image), and
# measured on 0.13 to 12 MP photos, this size is faster than larger strips.
_SSIM_STRIP = 1 << 17
_AUC_MAX_THRESHOLD = 150
# PSNR and colourfulness sum over chunks of this many pixels, converted to float64 one chunk at a time: a float64
# copy of a whole multi-megapixel photo would cost more in memory traffic than the arithmetic.
_CHUNK_PIXELS = 1 << 15


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


def _squared_error_sums(truth: np.ndarray, others: Sequence[np.ndarray]) -> list[float]:
    """Σ(truth − other)² over all values, for each uint8 image of `others` (shaped like `truth`); exact, since the
    float64 dot product of each chunk sums integers below 2**53."""
    flat_truth = truth.reshape(-1)
    flat_others = [other.reshape(-1) for other in others]
    step = 3 * _CHUNK_PIXELS
    sums = [0.0] * len(others)
    for start in range(0, flat_truth.size, step):
        chunk = flat_truth[start:start + step].astype(np.float64)
        for j, flat in enumerate(flat_others):
            diff = chunk - flat[start:start + step]
            sums[j] += float(np.dot(diff, diff))
    return sums


def _psnr_of(squared_error_sum: float, count: int) -> float:
    """PSNR in dB from Σ(error²) over `count` values: inf for no error, nan for no values."""
    if count == 0:
        return math.nan
    mse = squared_error_sum / count
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(_DATA_RANGE * _DATA_RANGE / mse)


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
        the images are identical, ``nan`` when they have no pixels.

    Raises
    ------
    ValueError
        If either image is not H×W×3, or their shapes differ.
    TypeError
        If either image is not uint8.
    """
    truth, pred = _check_rgb_pair("psnr", truth_rgb, pred_rgb)
    return _psnr_of(_squared_error_sums(truth, (pred,))[0], truth.size)


def _window_sums(values: np.ndarray, step: int, win: int, out: np.ndarray, spare: Sequence[np.ndarray]) -> None:
    """``out[i] = values[i] + values[i + step] + … + values[i + (win − 1)·step]`` for the flat integer array `values`.

    The first ``values.size − (win − 1)·step`` entries of `out` get the sums, the rest of ``out[:values.size]`` zeros.
    Sums of 2 and of 4 consecutive terms are formed once (in the two `spare` buffers, each as long as `values`) and
    combined by the binary digits of `win` (odd, 3 ≤ win ≤ 7): a window of 7 costs 4 additions instead of 6.
    The caller picks a dtype that holds every sum.
    """
    n = values.size - (win - 1) * step
    terms = []
    part, width, offset = values, 1, 0
    while True:
        if win & width:
            terms.append(part[offset * step:offset * step + n])
            offset += width
        if 2 * width > win:
            break
        m = part.size - width * step
        part = np.add(part[:m], part[width * step:width * step + m], out=spare[width.bit_length() - 1][:m])
        width *= 2
    total = np.add(terms[0], terms[1], out=out[:n])
    for term in terms[2:]:
        total += term
    out[n:values.size] = 0


def _ssim_window(shape: tuple[int, ...]) -> int | None:
    """The window side for an H×W×3 image: 7, or the largest odd size ≤ min(H, W); None below 3 pixels."""
    min_side = min(shape[0], shape[1])
    if min_side < 3:
        return None
    return min(_SSIM_DEFAULT_WIN, min_side if min_side % 2 else min_side - 1)


def _mean_ssims(truth: np.ndarray, others: Sequence[np.ndarray], win: int) -> list[float]:
    """Mean SSIM of the uint8 H×W×3 `truth` against each image of `others`, as scikit-image's
    ``structural_similarity(truth, other, win_size=win, channel_axis=-1, data_range=255)`` defines it.

    scikit-image filters whole images and then drops a border of (win − 1)/2 pixels, so only the windows that lie
    wholly inside the image count; each is a sum of N = win² pixels here. With Sx = Σx, Sy = Σy, Sxy = Σxy and
    Sq = Σ(x² + y²) over a window (x the truth, y the other image; one channel), the sample (co)variances and the
    constants c1 = (K1·255·N)², c2 = (K2·255)²·N·(N − 1), its SSIM is

        (2·Sx·Sy + c1)·(2·(N·Sxy − Sx·Sy) + c2) / ((Sx² + Sy² + c1)·(N·Sq − Sx² − Sy² + c2)).

    For 8-bit data every one of those integers lies within ±2·N²·255² < 2³¹, so they are exact in int32 (Sx and Sy,
    at most N·255, are summed in int16); only the ratio is taken in float32 (a relative error below 1e-6 per window)
    and the mean is summed in float64. What depends on the truth alone is computed once for all of `others`. Images
    are treated as flat row-major arrays, a window sum being a sum down the columns (step W·3) and then along the rows
    (step 3); the sums that run past a row's end land in its last win − 1 columns, which are left out of the mean.
    Rows are taken in strips (`_SSIM_STRIP`), overlapping by win − 1.
    """
    strips = _SsimStrips(truth.shape, win)
    totals = [0.0] * len(others)
    for top, rows in strips.spans():
        strips.load_truth(strips.rows_of(truth, top, rows), rows)
        for j, other in enumerate(others):
            totals[j] += strips.ssim_sum(strips.rows_of(other, top, rows), rows)
    return [total / strips.count for total in totals]


class _SsimStrips:
    """The constants and reusable buffers of `_mean_ssims` for one image shape and window: the truth's window sums
    of the current strip (`load_truth`), then each other image's SSIM sum over that strip (`ssim_sum`)."""

    def __init__(self, shape: tuple[int, ...], win: int):
        height, width, channels = shape
        self.win, self.width, self.channels, self.n = win, width, channels, win * win
        self.c1 = np.float32((_SSIM_K1 * _DATA_RANGE * self.n) ** 2)
        self.c2 = np.float32((_SSIM_K2 * _DATA_RANGE) ** 2 * self.n * (self.n - 1))
        self.row = width * channels
        self.out_rows, self.out_cols = height - win + 1, width - win + 1
        self.count = self.out_rows * self.out_cols * channels
        self.strip_rows = max(1, min(self.out_rows, _SSIM_STRIP // self.row))
        size_in, size = (self.strip_rows + win - 1) * self.row, self.strip_rows * self.row
        self.x16, self.y16, *self.scratch16 = (np.empty(size_in, np.int16) for _ in range(5))
        self.x, self.x2n, self.xx, self.y, self.product, *self.scratch32 = (
            np.empty(size_in, np.int32) for _ in range(8))
        self.sum16 = np.empty(size, np.int16)
        self.sx, self.sx_sq, self.sy, self.sxy, self.sq, self.cross = (np.empty(size, np.int32) for _ in range(6))
        self.ratio, self.part, self.other_part = (np.empty(size, np.float32) for _ in range(3))

    def spans(self):
        """(first output row, output rows) of each strip."""
        for top in range(0, self.out_rows, self.strip_rows):
            yield top, min(self.strip_rows, self.out_rows - top)

    def rows_of(self, image: np.ndarray, top: int, rows: int) -> np.ndarray:
        """The input rows a strip's windows cover, as rows of W·3 values."""
        return image.reshape(-1, self.row)[top:top + rows + self.win - 1]

    def window_sums(self, values: np.ndarray, out: np.ndarray, m: int, scratch: list[np.ndarray]) -> np.ndarray:
        """The win×win sums of a strip of `values` (rows of W·3), `m` of them: down the columns, then along the
        rows."""
        vertical, *spare = scratch
        _window_sums(values, self.row, self.win, vertical, spare)
        _window_sums(vertical[:m], self.channels, self.win, out, spare)
        return out[:m]

    def load_truth(self, strip: np.ndarray, rows: int) -> None:
        """What depends on the truth alone, for this strip: 2·Sx, Sx², 2N·x and x²."""
        m_in, m = (rows + self.win - 1) * self.row, rows * self.row
        xs = self.x[:m_in]
        xs.reshape(-1, self.row)[...] = strip
        self.x16[:m_in].reshape(-1, self.row)[...] = strip
        two_sx = self.sx[:m]
        two_sx[...] = self.window_sums(self.x16[:m_in], self.sum16, m, self.scratch16)  # Sx, doubled below
        np.multiply(two_sx, two_sx, out=self.sx_sq[:m])
        two_sx *= 2
        np.multiply(xs, 2 * self.n, out=self.x2n[:m_in])
        np.multiply(xs, xs, out=self.xx[:m_in])

    def ssim_sum(self, strip: np.ndarray, rows: int) -> float:
        """The sum of the SSIMs of this strip's windows between the loaded truth and `strip` of another image."""
        m_in, m = (rows + self.win - 1) * self.row, rows * self.row
        ys = self.y[:m_in]
        ys.reshape(-1, self.row)[...] = strip
        self.y16[:m_in].reshape(-1, self.row)[...] = strip
        s_y = self.sy[:m]
        s_y[...] = self.window_sums(self.y16[:m_in], self.sum16, m, self.scratch16)
        product = self.product[:m_in]
        s_xy = self.window_sums(np.multiply(self.x2n[:m_in], ys, out=product), self.sxy, m, self.scratch32)  # 2N·Sxy
        np.multiply(ys, ys, out=product)
        s_q = self.window_sums(np.add(product, self.xx[:m_in], out=product), self.sq, m, self.scratch32)
        s_xsy = np.multiply(self.sx[:m], s_y, out=self.cross[:m])  # 2·Sx·Sy
        numerator = np.add(s_xsy, self.c1, out=self.ratio[:m], dtype=np.float32)
        s_xy -= s_xsy  # 2·(N·Sxy − Sx·Sy)
        numerator *= np.add(s_xy, self.c2, out=self.part[:m], dtype=np.float32)
        s_y *= s_y
        s_y += self.sx_sq[:m]  # Sx² + Sy²
        s_q *= self.n
        s_q -= s_y  # N·Sq − Sx² − Sy²
        denominator = np.add(s_y, self.c1, out=self.part[:m], dtype=np.float32)
        denominator *= np.add(s_q, self.c2, out=self.other_part[:m], dtype=np.float32)
        numerator /= denominator
        return float(numerator.reshape(rows, self.width, self.channels)[:, :self.out_cols].sum(dtype=np.float64))


def ssim(truth_rgb: np.ndarray, pred_rgb: np.ndarray) -> float:
    """Mean structural similarity of two 8-bit RGB images (channels averaged).

    The definition is scikit-image's ``structural_similarity(truth, pred, win_size=7, channel_axis=-1,
    data_range=255)``: a uniform 7×7 window (or the smaller one below), sample covariances, K1 = 0.01, K2 = 0.03, and
    only the windows that lie wholly inside the image.  It is computed from exact integer window sums with a float32
    ratio per window, so the result is within 1e-6 of scikit-image's, at a fraction of its time and memory.

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
        Mean SSIM over pixels and channels, at most 1.0 (exactly 1.0 for
        identical images); ``nan`` if H or W is below 3.

    Raises
    ------
    ValueError
        If either image is not H×W×3, or their shapes differ.
    TypeError
        If either image is not uint8.
    """
    truth, pred = _check_rgb_pair("ssim", truth_rgb, pred_rgb)
    win = _ssim_window(truth.shape)
    if win is None:
        return math.nan
    return _mean_ssims(truth, (pred,), win)[0]


def _difference_dtype(ab_true: np.ndarray, ab_pred: np.ndarray | None) -> type:
    """float32 when the arrays are float32 (as the pipeline's Lab is), so full-resolution differences take half the
    memory traffic; float64 otherwise."""
    dtypes = {ab_true.dtype, ab_true.dtype if ab_pred is None else ab_pred.dtype}
    return np.float32 if dtypes == {np.dtype(np.float32)} else np.float64


def _channel_difference(ab_true: np.ndarray, ab_pred: np.ndarray | None, channel: int, dtype: type) -> np.ndarray:
    """A new array ab_true[..., channel] − ab_pred[..., channel] of `dtype`, reading both as strided views;
    ``ab_pred=None`` stands for ab = 0 (the gray baseline)."""
    if ab_pred is None:
        return ab_true[..., channel].astype(dtype)
    return np.subtract(ab_true[..., channel], ab_pred[..., channel], dtype=dtype)


def _cast_of(difference_sums: Sequence[float], pixels: int) -> float:
    """The colour cast from Σ(ab_true − ab_pred) per channel over `pixels` pixels: the length of the mean offset."""
    return math.hypot(difference_sums[0] / pixels, difference_sums[1] / pixels)


def _capped_errors(
    ab_true: np.ndarray, ab_pred: np.ndarray | None, max_t: int, *, with_sums: bool = False
) -> tuple[np.ndarray, list[float] | None]:
    """min(ceil(err), max_t + 1) for each pixel's Euclidean ab error err, flattened, with max_t + 1 for a non-finite
    error too; ``ab_pred=None`` stands for ab = 0 (the gray baseline), whose error is the length of `ab_true`.

    With `with_sums`, also Σ(ab_true − ab_pred) per channel (float64 sums of the same differences, for the colour
    cast), else None: a sum is cheap next to the errors, but ab_error_auc alone need not pay for it.

    Computed in `_difference_dtype`; the two channels are read as strided views, never copied. The errors are whole
    numbers in either dtype.
    """
    dtype = _difference_dtype(ab_true, ab_pred)
    sq = None
    sums = [] if with_sums else None
    for c in (0, 1):
        diff = _channel_difference(ab_true, ab_pred, c, dtype)
        if with_sums:
            sums.append(float(diff.sum(dtype=np.float64)))
        if sq is None:
            sq = np.multiply(diff, diff, out=diff)
        else:
            sq += np.multiply(diff, diff, out=diff)
    err = np.sqrt(sq, out=sq)
    np.ceil(err, out=err)
    np.fmin(err, max_t + 1, out=err)  # fmin, unlike minimum, maps nan to max_t + 1 too: a miss at every threshold
    return err.ravel(), sums


def _checked_weights(pixel_weights) -> tuple[np.ndarray, float]:
    """`pixel_weights` flattened to float64, and their sum; ValueError unless finite, non-negative, summing above 0."""
    weights = np.asarray(pixel_weights, dtype=np.float64).ravel()
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("pixel_weights must be finite and non-negative")
    total = float(weights.sum())
    if total <= 0.0:
        raise ValueError("pixel_weights sum to zero")
    return weights, total


def _auc_of_errors(capped: np.ndarray, weights: np.ndarray | None, total: float, max_t: int) -> float:
    """The AuC from `_capped_errors` (`weights` None, `total` the pixel count; or the weights and their sum).

    A pixel with capped error c (an integer) is within threshold t for the max_t + 1 − c thresholds t = c..max_t, so
    the mean over t of the weighted fraction within t is 1 − Σ w·c / ((max_t + 1)·Σ w): one sum or dot product
    instead of a histogram. Sums of the whole numbers c are exact in float64; the clip keeps rounding of the weighted
    sums from leaving [0, 1].
    """
    if weights is None:
        missed = float(capped.sum(dtype=np.float64))
    else:
        missed = float(np.dot(weights, capped.astype(np.float64, copy=False)))
    return min(max(1.0 - missed / ((max_t + 1) * total), 0.0), 1.0)


def ab_error_auc(
    ab_true: np.ndarray,
    ab_pred: np.ndarray,
    pixel_weights: np.ndarray | None = None,
    max_threshold: int = _AUC_MAX_THRESHOLD,
) -> float:
    """Zhang et al.'s AuC of the cumulative ab-error curve, in [0, 1].

    For every integer threshold t in 0..max_threshold the (weighted) fraction of pixels whose Euclidean ab error is
    ≤ t is taken; the score is the mean of those fractions, so a perfect prediction scores 1.0 and a constant error e
    scores (max_threshold − e + 1) / (max_threshold + 1). Unlike PSNR it does not reward hedging towards gray, the
    failure mode the paper set out to measure. Non-finite errors count as misses at every threshold.

    `ab_true` and `ab_pred` are (..., 2) arrays of a*, b* of one shape (usually H×W×2), any real dtype: errors are
    computed in float32 when both are float32 (the pipeline's Lab), else in float64. In float32 a pixel whose error
    lies within rounding (about 3e-5 at an error of 150) of an integer may count from the neighbouring threshold;
    that moves the score by the pixel's share of the weight / (max_threshold + 1): less than 1e-6 on photos, at most
    1 / (max_threshold + 1) if every pixel sat on such a boundary. `pixel_weights` (optional) holds one finite,
    non-negative weight per pixel, shaped like `ab_true` without its last axis (see `rebalancing_pixel_weights`),
    normalised here to sum to one; None weighs every pixel equally. `max_threshold` ≥ 0: the paper's 150, beyond
    which every error is equally wrong.

    Raises ValueError if an ab array does not end in an axis of 2, the two differ in shape, `pixel_weights` has the
    wrong shape, a negative or non-finite entry or a zero sum, `max_threshold` is negative, or there are no pixels;
    TypeError if `max_threshold` is not an integer.
    """
    true, pred = np.asarray(ab_true), np.asarray(ab_pred)
    _check_ab_pair("ab_error_auc", true, pred, pixel_weights)
    max_t = _checked_max_threshold(max_threshold)
    _check_has_pixels(true)
    weights, total = _weights_and_total(pixel_weights, true.size // 2)
    return _auc_of_errors(_capped_errors(true, pred, max_t)[0], weights, total, max_t)


def _checked_max_threshold(max_threshold) -> int:
    max_t = operator.index(max_threshold)
    if max_t < 0:
        raise ValueError(f"max_threshold must be >= 0, got {max_t}")
    return max_t


def _check_has_pixels(ab: np.ndarray) -> None:
    if ab.size == 0:
        raise ValueError("ab arrays contain no pixels")


def _weights_and_total(pixel_weights, pixels: int) -> tuple[np.ndarray | None, float]:
    """What `_auc_of_errors` takes: no weights and the pixel count, or the checked weights and their sum."""
    if pixel_weights is None:
        return None, float(pixels)
    return _checked_weights(pixel_weights)


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
    if not ab.flags.c_contiguous:
        # numpy runs its loops along the last axis, so on a strided (H, W, 2) view such as lab[..., 1:] every loop
        # below would take 2 values at a time; copying the view channel by channel first is 10× faster than that.
        ab = np.stack([ab[..., 0], ab[..., 1]], axis=-1)
    if not np.all(np.isfinite(ab)):
        raise ValueError("ab values must be finite")
    inv_prior = 1.0 / np.where(prior_arr > 0, prior_arr, positive.min())
    return inv_prior.take(hard_bins(ab))


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
    pixels = img.reshape(-1, 3)
    count = pixels.shape[0]
    sum_rg = sum_yb = sq_rg = sq_yb = 0.0
    for start in range(0, count, _CHUNK_PIXELS):
        chunk = pixels[start:start + _CHUNK_PIXELS].astype(np.float64)
        rg = chunk[:, 0] - chunk[:, 1]
        yb = chunk[:, 0] + chunk[:, 1]
        yb *= 0.5
        yb -= chunk[:, 2]
        sum_rg += float(rg.sum())
        sum_yb += float(yb.sum())
        sq_rg += float(np.dot(rg, rg))
        sq_yb += float(np.dot(yb, yb))
    # Moments from sums (exact for integer data), the variances clipped at 0 against rounding on flat images.
    mean_rg, mean_yb = sum_rg / count, sum_yb / count
    var_rg = max(sq_rg / count - mean_rg * mean_rg, 0.0)
    var_yb = max(sq_yb / count - mean_yb * mean_yb, 0.0)
    return math.sqrt(var_rg + var_yb) + 0.3 * math.sqrt(mean_rg * mean_rg + mean_yb * mean_yb)


def colour_cast(ab_true: np.ndarray, ab_pred: np.ndarray) -> float:
    """The colour cast of a prediction: the ab distance between its mean colour and the original's.

    A colorizer that lays one tint over everything (a sepia or olive wash) can still score a fair AuC and PSNR,
    because most pixels of a photo are near-neutral; the tint shows in the mean. The gray baseline's cast
    (``ab_pred`` all zeros) is the length of the original's mean ab, so a cast below gray's means the prediction
    got the photo's overall colour closer than leaving it gray would.

    Parameters
    ----------
    ab_true : (..., 2) array_like
        Ground-truth a*, b*, usually H×W×2; the leading axes are free.  Any real dtype: differences are taken in
        float32 when both arrays are float32 (the pipeline's Lab), else in float64, and summed in float64; against
        the float64 definition that is within 1e-6 on photos.
    ab_pred : (..., 2) array_like
        Predicted a*, b*, same shape as `ab_true`.

    Returns
    -------
    cast : float
        ``|mean(ab_true) − mean(ab_pred)|`` in ab units, ≥ 0: 0 when the means agree (a perfect prediction, or
        any prediction off by zero on average); nan if a value is not finite.

    Raises
    ------
    ValueError
        If an ab array does not end in an axis of 2, the two differ in shape, or there are no pixels.
    """
    true, pred = np.asarray(ab_true), np.asarray(ab_pred)
    _check_ab_pair("colour_cast", true, pred)
    _check_has_pixels(true)
    dtype = _difference_dtype(true, pred)
    sums = [float(_channel_difference(true, pred, c, dtype).sum(dtype=np.float64)) for c in (0, 1)]
    return _cast_of(sums, true.size // 2)


def score_colorization(
    truth_rgb: np.ndarray,
    pred_rgb: np.ndarray,
    gray_rgb: np.ndarray,
    ab_true: np.ndarray,
    ab_pred: np.ndarray,
    pixel_weights: np.ndarray | None,
) -> dict[str, float]:
    """All metrics for one photo, for the prediction and the gray baseline: one plain Python float (JSON- and
    Spark-ready) per key of `SCORE_KEYS`, each metric for the prediction, with ``_gray`` for the gray baseline, and
    ``colourfulness_truth`` for the original. ``cast`` is `colour_cast`; ``cast_gray``, the length of the original's
    mean ab.

    `truth_rgb`, `pred_rgb` and `gray_rgb` are uint8 H×W×3 images of one shape: the original, the colorized photo and
    the photo's lightness rendered with ab = 0 (so its ab is all zeros). `ab_true` and `ab_pred` are the original's
    and the predicted a*, b* ((..., 2), usually H×W×2). `pixel_weights` (see `rebalancing_pixel_weights`), shaped
    like `ab_true` without its last axis, drive the rebalanced AuC; without them ``auc_rebal`` and
    ``auc_rebal_gray`` are nan rather than silently repeating the unweighted AuC.

    Every argument is checked here, before any metric runs, so an error (the ValueError or TypeError of `psnr`,
    `ab_error_auc` or `colourfulness`) names this function rather than whichever metric met the input first.

    Each value equals what the metric's own function returns (for the gray AuCs and cast: with `ab_pred` all zeros
    of `ab_true`'s dtype), but work is shared: the original's SSIM statistics and float64 chunks serve both the
    prediction and the baseline, each image's ab errors serve both the plain and the rebalanced AuC, and the colour
    cast is summed from the ab differences those errors are made of.
    """
    truth, pred = _check_rgb_pair("score_colorization", truth_rgb, pred_rgb)
    _, gray = _check_rgb_pair("score_colorization", truth_rgb, gray_rgb, "gray_rgb")
    _check_ab_pair("score_colorization", ab_true, ab_pred, pixel_weights)
    true_ab, pred_ab = np.asarray(ab_true), np.asarray(ab_pred)
    _check_has_pixels(true_ab)
    scores = {**_ab_scores(true_ab, pred_ab, pixel_weights), **_rgb_scores(truth, pred, gray)}
    return {key: scores[key] for key in SCORE_KEYS}


def _ab_scores(true_ab: np.ndarray, pred_ab: np.ndarray, pixel_weights) -> dict[str, float]:
    """The AuCs, plain and rebalanced, and the colour casts, of the prediction and of the gray baseline, from one
    pass over each one's ab errors."""
    max_t = _AUC_MAX_THRESHOLD
    err_pred, sums_pred = _capped_errors(true_ab, pred_ab, max_t, with_sums=True)
    err_gray, sums_true = _capped_errors(true_ab, None, max_t, with_sums=True)
    pixels = float(err_pred.size)
    if pixel_weights is None:
        auc_rebal = auc_rebal_gray = math.nan
    else:
        weights, total = _checked_weights(pixel_weights)
        auc_rebal = _auc_of_errors(err_pred, weights, total, max_t)
        auc_rebal_gray = _auc_of_errors(err_gray, weights, total, max_t)
    return {"auc": _auc_of_errors(err_pred, None, pixels, max_t),
            "auc_gray": _auc_of_errors(err_gray, None, pixels, max_t),
            "auc_rebal": float(auc_rebal), "auc_rebal_gray": float(auc_rebal_gray),
            "cast": _cast_of(sums_pred, err_pred.size), "cast_gray": _cast_of(sums_true, err_gray.size)}


def _rgb_scores(truth: np.ndarray, pred: np.ndarray, gray: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of the prediction and the gray baseline against the original (its statistics shared), and the
    colourfulness of all three."""
    sse_pred, sse_gray = _squared_error_sums(truth, (pred, gray))
    win = _ssim_window(truth.shape)
    ssim_pred, ssim_gray = (math.nan, math.nan) if win is None else _mean_ssims(truth, (pred, gray), win)
    return {"psnr": _psnr_of(sse_pred, truth.size), "psnr_gray": _psnr_of(sse_gray, truth.size),
            "ssim": ssim_pred, "ssim_gray": ssim_gray,
            "colourfulness": float(colourfulness(pred)), "colourfulness_gray": float(colourfulness(gray)),
            "colourfulness_truth": float(colourfulness(truth))}
