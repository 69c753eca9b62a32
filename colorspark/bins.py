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

from .colorspace import _check_shape, rgb_to_lab

GRID = 10
GRID_EXTENT = 110
HALF_WIDTH = 10.0

_AB_ANY = "an H×W×2 ab array (any shape ending in 2)"


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
    """The convex hull, in the ab plane, of all 8-bit sRGB colours: the region the bins must cover.

    Only the surface of the RGB cube is converted (393,216 colours instead of 16.7M); see the module docstring for why
    that gives the same hull. Not cached: `gamut_centres` is its one user and is cached itself.

    Returns
    -------
    vertices : (V, 2) ndarray of float64
        The hull's vertices (a, b), counter-clockwise. a spans about [-86, 98] and b about [-108, 95].
    """
    ab = rgb_to_lab(_rgb_cube_surface()[None])[0, :, 1:].astype(np.float64)
    hull = ConvexHull(ab)
    return ab[hull.vertices]


def squares_touching_polygon(centres: np.ndarray, half: float, polygon: np.ndarray) -> np.ndarray:
    """Which axis-aligned squares (given by their centres and half-width) intersect a convex polygon.

    The separating-axis theorem for all squares at once: two convex shapes are disjoint exactly when their projections
    onto one of the axes (the two coordinate axes and the normals of the polygon's edges) do not overlap. A square's
    projection onto an axis n is its centre's ± half·(|n_x| + |n_y|). Vectorised because every Python worker derives the
    bins at start-up (a loop over the 529 grid squares took 1.2 s of it).

    Returns
    -------
    touches : (N,) ndarray of bool
    """
    edges = np.roll(polygon, -1, axis=0) - polygon
    axes = np.concatenate([np.eye(2), np.stack([-edges[:, 1], edges[:, 0]], 1)])
    poly = polygon @ axes.T
    mid, reach = centres @ axes.T, half * np.abs(axes).sum(1)
    separated = (poly.max(0) < mid - reach) | (mid + reach < poly.min(0))
    return ~separated.any(1)


@functools.lru_cache(maxsize=1)
def gamut_centres() -> np.ndarray:
    """The Q = 313 ab bin centres of Zhang et al.: the colour classes the network predicts over.

    Derived, not stored (see the module docstring), and cached because every bin index in the samples, the prior, the
    class weights and the model's output layer refers to this order. The array is read-only since all callers in a
    process share the cached object.

    Returns
    -------
    centres : (313, 2) ndarray of float32, read-only
        (a, b) multiples of 10 with a in [-90, 100] and b in [-110, 100], ordered by a, then b.
    """
    hull = srgb_ab_hull()
    grid = np.arange(-GRID_EXTENT, GRID_EXTENT + 1, GRID, dtype=np.float64)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    candidates = np.stack([a.ravel(), b.ravel()], 1)
    centres = candidates[squares_touching_polygon(candidates, HALF_WIDTH, hull)].astype(np.float32)
    centres.setflags(write=False)
    return centres


def _check_per_bin(func: str, value) -> None:
    """For the prior and its relatives: one value per bin, shape (Q,)."""
    q = len(gamut_centres())
    _check_shape(func, value, f"a vector of {q} entries (one per bin)", last=q, ndim=1)


@functools.lru_cache(maxsize=1)
def _nearest_table() -> np.ndarray:
    """Nearest-centre index for every integer (a, b) in [-128, 127]^2: hard binning of int8 ab is one lookup.

    Squared distances split into (a − c_a)² + (b − c_b)², so one row of the table (one a) is a 256×313 sum of two small
    tables. The integers are exact, so ties (points halfway between centres) go to the lower index, as `argmin` does.
    Built in every Python worker at start-up: this takes 20 ms where the full 65,536×313 distance array took 0.6 s.
    """
    centres = gamut_centres().astype(np.int32)
    v = np.arange(-128, 128, dtype=np.int32)
    da2, db2 = (v[:, None] - centres[:, 0]) ** 2, (v[:, None] - centres[:, 1]) ** 2
    table = np.stack([(row + db2).argmin(1) for row in da2]).astype(np.int16)
    table.setflags(write=False)
    return table


def hard_bins(ab: np.ndarray) -> np.ndarray:
    """The index of the nearest bin centre for each ab pair: one lookup in a 256×256 table per pixel.

    Integer ab is looked up exactly. That is the hot path of preprocessing: samples store ab as int8, the mean over each
    4×4 cell (the network predicts at a quarter of the input resolution, so its targets live there too), rounded.
    Float ab is rounded to integers first, so a point within about 0.7 of the boundary between two cells may get the
    neighbouring bin (never one more than √2 farther than the nearest). Values are clipped to the int8 range
    [-128, 127] first, which sRGB colours never leave.

    Parameters
    ----------
    ab : (..., 2) array_like
        a*, b* pairs, usually an H×W×2 array; the leading axes are free. Any real dtype; must be finite (NaN is not
        detected and lands in an arbitrary bin).

    Returns
    -------
    bins : (...) ndarray of int16
        Bin indices in [0, 313), with the shape of `ab` minus its last axis. int16 because 313 does not fit int8 and
        it is the stored format of the samples' bins.

    Raises
    ------
    ValueError
        If the last axis of `ab` does not have length 2.
    """
    _check_shape("hard_bins", ab, _AB_ANY, last=2)
    idx = np.clip(np.rint(ab).astype(np.int32), -128, 127) + 128
    return _nearest_table()[idx[..., 0], idx[..., 1]]


def soft_encode(ab: np.ndarray, k: int = 10, sigma: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Soft targets: the k nearest bin centres of each ab pair and Gaussian weights on them that sum to 1.

    Zhang et al. train against this soft encoding (k = 10, σ = 5) rather than the single nearest bin, so a prediction
    one bin off is still partly right and the classes inherit the geometry of the ab plane. The 313-vector is never
    built here; the training loss does the same computation in the graph (`losses.py`), and this reference
    implementation is what tests compare it to.

    Parameters
    ----------
    ab : (..., 2) ndarray
        a*, b* pairs, usually an H×W×2 array; the leading axes are free. Any real dtype (computed in float32). The
        distances to all centres are held at once (a few kB per pair), so very large inputs are best passed in chunks.
    k : int, optional
        How many neighbours get weight, 1 ≤ k ≤ 313.
    sigma : float, optional
        Width of the Gaussian in ab units (a bin is 10 wide), > 0.

    Returns
    -------
    indices : (..., k) ndarray of int32
        The k nearest centres of each pair, in no particular order.
    weights : (..., k) ndarray of float32
        exp(-d² / 2σ²) for the centres in `indices`, normalised to sum to 1 over the last axis.

    Raises
    ------
    ValueError
        If the last axis of `ab` does not have length 2.
    """
    _check_shape("soft_encode", ab, _AB_ANY, last=2)
    centres = gamut_centres()
    flat = ab.reshape(-1, 2).astype(np.float32)
    d2 = ((flat[:, None, :] - centres[None]) ** 2).sum(-1)
    idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
    near = np.take_along_axis(d2, idx, 1)
    w = np.exp(-(near - near.min(1, keepdims=True)) / (2 * sigma ** 2))
    w /= w.sum(1, keepdims=True)
    return idx.reshape(ab.shape[:-1] + (k,)).astype(np.int32), w.reshape(ab.shape[:-1] + (k,)).astype(np.float32)


def bin_counts(bins: np.ndarray) -> np.ndarray:
    """How often each of the Q bins occurs: the additive piece that Spark sums across partitions into the prior.

    Counts rather than frequencies, so partial results from any number of crops and partitions add up exactly.

    Parameters
    ----------
    bins : array_like of int
        Bin indices in [0, 313), in any shape (it is flattened; preprocessing passes the raw int16 bins of a crop).
        A negative index raises numpy's ValueError; one ≥ 313 would lengthen the result, so it must not occur.

    Returns
    -------
    counts : (313,) ndarray of int64
        ``counts[q]`` is the number of entries of `bins` equal to q.
    """
    return np.bincount(np.asarray(bins, dtype=np.int64).ravel(), minlength=len(gamut_centres())).astype(np.int64)


def prior_from_counts(counts: np.ndarray) -> np.ndarray:
    """The empirical probability of each bin, from the counts summed over the training set.

    With nothing counted (every training crop gray, say) the prior is uniform instead of 0/0, so the rebalancing
    weights derived from it stay finite and training degrades to roughly unweighted rather than failing. (Preprocessing
    applies the same rule to the counts it sums in Spark.)

    Parameters
    ----------
    counts : (313,) array_like
        Non-negative counts per bin, as summed from `bin_counts`.

    Returns
    -------
    prior : (313,) ndarray of float64
        Non-negative, summing to 1.

    Raises
    ------
    ValueError
        If `counts` is not a vector of 313 entries.
    """
    _check_per_bin("prior_from_counts", counts)
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.full(len(counts), 1.0 / len(counts))


def smooth_prior(prior: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """Gaussian smoothing of the prior in ab space, renormalised.

    An empirical prior is noisy and zero for every bin the training set happened to miss; Zhang et al. smooth it
    (σ = 5) so that neighbouring colours get similar rebalancing weights and an unseen bin borrows its neighbours'
    frequency instead of getting an infinite weight.

    Parameters
    ----------
    prior : (313,) array_like
        Non-negative bin probabilities with a positive sum; since the result is renormalised, raw counts work too.
    sigma : float, optional
        Width of the Gaussian kernel in ab units (a bin is 10 wide), > 0.

    Returns
    -------
    smoothed : (313,) ndarray of float64
        Non-negative, summing to 1.

    Raises
    ------
    ValueError
        If `prior` is not a vector of 313 entries.
    """
    _check_per_bin("smooth_prior", prior)
    centres = gamut_centres().astype(np.float64)
    d2 = ((centres[:, None, :] - centres[None]) ** 2).sum(-1)
    smoothed = np.exp(-d2 / (2 * sigma ** 2)) @ np.asarray(prior, dtype=np.float64)
    return smoothed / smoothed.sum()


def rebalance_weights(prior: np.ndarray, lam: float = 0.5, sigma: float = 5.0) -> np.ndarray:
    """Class-rebalancing weights w ∝ ((1 − λ)·p̃ + λ/Q)⁻¹ with p̃ the smoothed prior, scaled so E_p̃[w] = 1.

    Natural photos are dominated by desaturated ab (sky, skin, walls), so an unweighted loss learns to predict
    brownish gray. Weighting each pixel by the inverse frequency of its colour counters that; mixing the prior with a
    uniform distribution (λ, 0.5 in Zhang et al.) caps a bin's weight at 1/λ times that of a bin of average frequency
    1/Q, so a handful of rare, noisy pixels cannot dominate the loss. Scaling to E_p̃[w] = 1 keeps the weighted loss on
    the scale of the unweighted one, so changing λ or the data does not change the effective learning rate.

    Parameters
    ----------
    prior : (313,) array_like
        Non-negative bin probabilities with a positive sum (see `prior_from_counts`); it is smoothed here.
    lam : float, optional
        Weight of the uniform distribution in the mix, in [0, 1]: 1 gives equal weights, 0 pure inverse frequency.
    sigma : float, optional
        Smoothing width passed to `smooth_prior`.

    Returns
    -------
    weights : (313,) ndarray of float32
        Positive weights per bin, with ``sum(smooth_prior(prior, sigma) * weights) == 1``.

    Raises
    ------
    ValueError
        If `prior` is not a vector of 313 entries.
    """
    _check_per_bin("rebalance_weights", prior)
    smoothed = smooth_prior(prior, sigma)
    w = 1.0 / ((1.0 - lam) * smoothed + lam / len(smoothed))
    return (w / (smoothed * w).sum()).astype(np.float32)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T) over the last axis, float32, the maximum subtracted first so huge logits cannot overflow:
    the predicted distribution that the annealed mean, a reference's divergence and the guard's entropy all read."""
    z = np.asarray(logits, dtype=np.float32) / np.float32(temperature)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return p


def annealed_mean(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Decode per-pixel logits to ab: the mean of softmax(logits / T) over the bin centres.

    T = 1 gives the mean of the predicted distribution, which averages competing colours into gray-brown; T -> 0
    gives its mode, which is vivid but patchy where the mode flips between neighbouring pixels. Zhang et al.'s 0.38
    keeps colours vivid without the patches for their strongly rebalanced model; the shipped, lightly rebalanced
    model uses 1.0 (`bins.temperature`, chosen on the selection split for the 64-px model; the default since).
    There is no default here: the temperature is the model's, from its `colorspark.json`, or the caller's.
    Re-normalising p^(1/T) equals softmax(logits / T), so no log of probabilities is needed, and the maximum is
    subtracted first so huge logits cannot overflow.

    Parameters
    ----------
    logits : (..., 313) array_like
        Unnormalised scores over the bins, usually the model's B×h×w×313 output; the leading axes are free. Any real
        dtype (computed in float32).
    temperature : float
        T > 0.

    Returns
    -------
    ab : (..., 2) ndarray of float32
        a*, b* per pixel, with the shape of `logits` minus its last axis, plus 2. Being a convex combination of the
        centres, it stays inside their hull (|a|, |b| ≤ 110).

    Raises
    ------
    ValueError
        If the last axis of `logits` does not have length 313.
    """
    q = len(gamut_centres())
    _check_shape("annealed_mean", logits, f"an H×W×{q} array of logits (any shape ending in {q})", last=q)
    return (softmax(logits, temperature) @ gamut_centres()).astype(np.float32)
