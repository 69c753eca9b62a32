"""Small pure-numpy reference helpers shared by the unit tests (no Spark, no TensorFlow).

They are written from the definitions, independently of the code under test, so a test can compare the two.
"""

from __future__ import annotations

import numpy as np


def squared_distances(ab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(..., 2) ab and (Q, 2) centres -> (..., Q) squared Euclidean distances in float64."""
    ab = np.asarray(ab, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64)
    return ((ab[..., None, :] - centres) ** 2).sum(-1)


def nearest_centre(ab: np.ndarray, centres: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Brute-force index of the nearest centre (lowest index on ties, like numpy's argmin) for N×2 ab."""
    ab = np.asarray(ab).reshape(-1, 2)
    out = np.empty(len(ab), dtype=np.int64)
    for start in range(0, len(ab), chunk):
        out[start:start + chunk] = squared_distances(ab[start:start + chunk], centres).argmin(1)
    return out


def all_rgb_levels(levels: np.ndarray) -> np.ndarray:
    """Every (r, g, b) with each channel drawn from `levels`, as a 1×N×3 uint8 image."""
    levels = np.asarray(levels).astype(np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    return np.stack([r.ravel(), g.ravel(), b.ravel()], axis=-1)[None]


def grid_levels(step: int) -> np.ndarray:
    """0, step, 2·step, … plus 255, as uint8 (the corners of the RGB cube are always included)."""
    return np.unique(np.append(np.arange(0, 256, step), 255)).astype(np.uint8)


def smooth_rgb(height: int, width: int) -> np.ndarray:
    """A smooth, everywhere-coloured H×W×3 uint8 test photo (slow sinusoids, no two channels alike)."""
    y, x = np.mgrid[0:height, 0:width] / float(max(height, width))
    rgb = np.stack([127 + 120 * np.sin(3 * x + 1), 127 + 120 * np.cos(4 * y), 127 + 100 * np.sin(2 * x + 3 * y)], -1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
