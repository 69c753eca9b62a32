"""The quantized ab colour space of Zhang, Isola & Efros (2016) and everything defined on it.

Derivation of the Q = 313 bin centres (see `gamut_centres`): take the ab coordinates of every 8-bit sRGB colour
(the surface of the RGB cube suffices: sRGB -> Lab is a homeomorphism, so the extreme ab points come from the cube's
boundary), build their convex hull, and keep each point of the grid of multiples of 10 in [-110, 110]^2 whose square of
half-width 10 (side 20) intersects that hull. This reproduces the 313 centres the authors released; the stricter rule
"cells that contain an sRGB colour" gives only 261.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.spatial import ConvexHull

from .colorspace import rgb_to_lab

GRID = 10
GRID_EXTENT = 110
HALF_WIDTH = 10.0


def _rgb_cube_surface() -> np.ndarray:
    """All 8-bit sRGB colours with at least one channel at 0 or 255, as an N×3 uint8 array."""
    v = np.arange(256, dtype=np.uint8)
    a, b = np.meshgrid(v, v, indexing="ij")
    a, b = a.ravel(), b.ravel()
    faces = []
    for fixed in (0, 255):
        c = np.full_like(a, fixed)
        faces += [np.stack([c, a, b], 1), np.stack([a, c, b], 1), np.stack([a, b, c], 1)]
    return np.concatenate(faces)


def srgb_ab_hull() -> np.ndarray:
    """Vertices (counter-clockwise) of the convex hull of the ab values of all 8-bit sRGB colours."""
    ab = rgb_to_lab(_rgb_cube_surface()[None])[0, :, 1:].astype(np.float64)
    hull = ConvexHull(ab)
    return ab[hull.vertices]


def _square_touches_polygon(centre: np.ndarray, half: float, polygon: np.ndarray) -> bool:
    """Separating-axis test between an axis-aligned square and a convex polygon."""
    square = centre + half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    edges = np.roll(polygon, -1, axis=0) - polygon
    axes = np.concatenate([np.array([[1.0, 0.0], [0.0, 1.0]]), np.stack([-edges[:, 1], edges[:, 0]], 1)])
    for axis in axes:
        p, s = polygon @ axis, square @ axis
        if p.max() < s.min() or s.max() < p.min():
            return False
    return True


@functools.lru_cache(maxsize=1)
def gamut_centres() -> np.ndarray:
    """The Q×2 float32 ab bin centres (Q = 313), ordered by a, then b."""
    hull = srgb_ab_hull()
    grid = np.arange(-GRID_EXTENT, GRID_EXTENT + 1, GRID, dtype=np.float64)
    keep = [(a, b) for a in grid for b in grid if _square_touches_polygon(np.array([a, b]), HALF_WIDTH, hull)]
    centres = np.array(keep, dtype=np.float32)
    centres.setflags(write=False)
    return centres


@functools.lru_cache(maxsize=1)
def _nearest_table() -> np.ndarray:
    """Nearest-centre index for every integer (a, b) in [-128, 127]^2: hard binning of int8 ab is one lookup."""
    centres = gamut_centres()
    v = np.arange(-128, 128, dtype=np.float32)
    a, b = np.meshgrid(v, v, indexing="ij")
    ab = np.stack([a.ravel(), b.ravel()], 1)
    table = np.empty(len(ab), dtype=np.int16)
    for start in range(0, len(ab), 8192):
        chunk = ab[start:start + 8192]
        d2 = ((chunk[:, None, :] - centres[None]) ** 2).sum(-1)
        table[start:start + 8192] = d2.argmin(1)
    table = table.reshape(256, 256)
    table.setflags(write=False)
    return table


def hard_bins(ab: np.ndarray) -> np.ndarray:
    """Index (int16) of the nearest bin centre for each ab pair (last axis 2); values are rounded to integers first."""
    idx = np.clip(np.rint(ab).astype(np.int32), -128, 127) + 128
    return _nearest_table()[idx[..., 0], idx[..., 1]]


def soft_encode(ab: np.ndarray, k: int = 10, sigma: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Soft targets: the k nearest centres of each ab pair and Gaussian weights on them that sum to 1.

    Returns (indices (..., k) int32, weights (..., k) float32). The 313-vector is never built here; the training loss
    does the same computation in the graph (`losses.py`), and this reference implementation is what tests compare it to.
    """
    centres = gamut_centres()
    flat = ab.reshape(-1, 2).astype(np.float32)
    d2 = ((flat[:, None, :] - centres[None]) ** 2).sum(-1)
    idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
    near = np.take_along_axis(d2, idx, 1)
    w = np.exp(-(near - near.min(1, keepdims=True)) / (2 * sigma ** 2))
    w /= w.sum(1, keepdims=True)
    return idx.reshape(ab.shape[:-1] + (k,)).astype(np.int32), w.reshape(ab.shape[:-1] + (k,)).astype(np.float32)


def bin_counts(bins: np.ndarray) -> np.ndarray:
    """How often each of the Q bins occurs: the additive piece that Spark sums across partitions into the prior."""
    return np.bincount(np.asarray(bins, dtype=np.int64).ravel(), minlength=len(gamut_centres())).astype(np.int64)


def prior_from_counts(counts: np.ndarray) -> np.ndarray:
    """Empirical probability of each bin; uniform when nothing was counted (so downstream weights stay finite)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts))


def smooth_prior(prior: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """Gaussian smoothing of the prior in ab space (σ in ab units), renormalised."""
    centres = gamut_centres().astype(np.float64)
    d2 = ((centres[:, None, :] - centres[None]) ** 2).sum(-1)
    smoothed = np.exp(-d2 / (2 * sigma ** 2)) @ np.asarray(prior, dtype=np.float64)
    return smoothed / smoothed.sum()


def rebalance_weights(prior: np.ndarray, lam: float = 0.5, sigma: float = 5.0) -> np.ndarray:
    """Class-rebalancing weights w ∝ ((1 − λ)·p̃ + λ/Q)⁻¹ with p̃ the smoothed prior, scaled so E_p̃[w] = 1."""
    smoothed = smooth_prior(prior, sigma)
    w = 1.0 / ((1.0 - lam) * smoothed + lam / len(smoothed))
    return (w / (smoothed * w).sum()).astype(np.float32)


def annealed_mean(logits: np.ndarray, temperature: float = 0.38) -> np.ndarray:
    """Decode per-pixel logits (..., Q) to ab (..., 2): the mean of softmax(logits / T) over the centres.

    Re-normalising p^(1/T) equals softmax(logits / T), so no log of probabilities is needed. T = 1 is the mean of the
    predicted distribution, T -> 0 its mode; Zhang et al. use 0.38 to keep colours vivid without the mode's patchiness.
    """
    z = np.asarray(logits, dtype=np.float32) / np.float32(temperature)
    z = z - z.max(-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(-1, keepdims=True)
    return (p @ gamut_centres()).astype(np.float32)
