"""The guided filter's local linear model (He, Sun and Tang 2010, "Guided Image Filtering"), for edge-aware ab.

Why it is here: colorize predicts ab on a coarse grid (1/4 of the network input: about 16 cells across the shorter
side of any photo) and brings it up to the photo's size bilinearly, so colour ramps across every edge over a cell
or two. The guided filter models the filtered input, in every window, as a linear function of a guide: p ≈ a·I + b,
with a = cov(I, p) / (var(I) + eps). With the photo's own full-resolution L as the guide, the slope `a` says how
much ab changes per unit of L around a cell, and L's detail within the cell then places the colour change where L
changes (`colorizer.guided_ab`).

Only the box filter comes from a library (SciPy's running sum; SciPy is already required, by scikit-image and by
`bins`); scikit-image has no guided filter and OpenCV's `ximgproc.guidedFilter` would add OpenCV to the runtime.
Windows are (2r+1)² squares clipped at the border, and each mean is over the pixels its window holds (the paper's
`boxfilter(·) ./ N`), so nothing depends on a padding rule.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.ndimage import uniform_filter1d


def _counts(n: int, radius: int) -> np.ndarray:
    """How many of the n positions along an axis each clipped window of `radius` holds."""
    index = np.arange(n)
    return (np.minimum(index + radius, n - 1) - np.maximum(index - radius, 0) + 1).astype(np.float32)


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean of `x` (H×W or H×W×C) over the (2·radius+1)² window around each pixel, clipped at the border; float32.

    SciPy's running-sum box filter (zeros outside the image, summed in double precision), rescaled by the number of
    pixels each clipped window holds: O(1) per pixel whatever the radius."""
    size = 2 * radius + 1
    total = uniform_filter1d(x, size, axis=0, mode="constant", output=np.float32)
    total = uniform_filter1d(total, size, axis=1, mode="constant", output=np.float32)
    scale = (size * size) / np.outer(_counts(x.shape[0], radius), _counts(x.shape[1], radius))
    return total * (scale if x.ndim == 2 else scale[..., None])


def linear_coefficients(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean a, mean b), each H×W×C: the paper's per-window fit src ≈ a_k·guide + b_k (its eqs. 5 and 6), averaged
    over the windows that hold each pixel. `guide` is H×W, `src` H×W×C; float32."""
    guide = np.asarray(guide, dtype=np.float32)
    src = np.asarray(src, dtype=np.float32)
    if guide.shape != src.shape[:2] or src.ndim != 3:
        raise ValueError(f"guide {guide.shape} must be H×W and input {src.shape} H×W×C of the same H and W")
    if radius < 1 or not eps > 0:
        raise ValueError(f"the guided filter needs radius >= 1 and eps > 0, got {radius} and {eps}")
    mean_i = box_mean(guide, radius)[..., None]
    var_i = np.maximum(box_mean(guide * guide, radius)[..., None] - mean_i * mean_i, 0.0)
    mean_p = box_mean(src, radius)
    a = (box_mean(guide[..., None] * src, radius) - mean_i * mean_p) / (var_i + eps)
    b = mean_p - a * mean_i
    return box_mean(a, radius), box_mean(b, radius)


@functools.lru_cache(maxsize=512)
def area_weights(n: int, cells: int) -> np.ndarray:
    """cells×n matrix of the mean over each cell of a grid of `cells` laid over n pixels: cell k covers [k, k+1) in
    cell units, pixel j covers [j, j+1)·cells/n, and each row holds the overlaps, normalised. `weights @ x` is x
    reduced to the cells along that axis."""
    bounds = np.arange(n + 1) * (cells / n)
    lower = np.arange(cells)[:, None]
    overlap = np.clip(np.minimum(bounds[1:], lower + 1) - np.maximum(bounds[:-1], lower), 0.0, None)
    total = overlap.sum(axis=1, keepdims=True)
    return (overlap / np.where(total > 0, total, 1.0)).astype(np.float32)
