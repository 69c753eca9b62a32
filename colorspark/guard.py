"""Decoding that does no harm: hold the colour back where the network does not know it.

A colorizer that sometimes ruins a photo is one users stop trusting, whatever its mean. The annealed mean of a broad
predicted distribution is a muddy brown; spread over a near-neutral scene (an aerial city, a lamp, a desk) it becomes
a strong wash that costs many dB against plain gray. Two guards, applied to the network's output before it is
upsampled, each off when its setting is 0:

- **uncertainty** (`colorize.guard_entropy`): per output pixel, the entropy of the predicted distribution over the
  313 bins, as a share of its maximum log 313. At or below the threshold the colour is kept; above it the ab is
  scaled down linearly, to 0 (gray) at 1.5× the threshold. A confident sky or lawn keeps its colour; a pixel where the
  network spreads its bets over many colours falls back toward neutral.
- **global cast** (`colorize.guard_cast`): the image's mean predicted ab is a cast the whole photo gets. When its
  length exceeds the limit (in ab units), the excess is taken off every pixel, so the local variation stays and the
  photo's average colour is at most that far from neutral: a cast the image's own evidence does not support cannot
  tint all of it.

The defaults (config.py) were chosen on the selection split with the shipped model (models/README.md, "Do no
harm"): the cast limit of 7 ab units on, the entropy guard off, as it cost colour without cutting the harm.
"""

from __future__ import annotations

import math

import numpy as np

from .bins import softmax

ENTROPY_RAMP = 1.5  # the ab reaches 0 at this multiple of the entropy threshold


def normalized_entropy(logits: np.ndarray) -> np.ndarray:
    """(..., 313) logits -> (...) entropy of softmax(logits) over log(313): 0 for one bin, 1 for all alike."""
    p = softmax(logits)
    entropy = -(p * np.log(np.maximum(p, 1e-12))).sum(-1)
    return entropy / np.float32(math.log(p.shape[-1]))


def uncertainty_scale(logits: np.ndarray, threshold: float) -> np.ndarray:
    """(...) factor in [0, 1] per pixel: 1 up to `threshold` normalized entropy, then down linearly to 0 at
    ENTROPY_RAMP × threshold. threshold = 0 means no scaling."""
    if not threshold:
        return np.ones(np.shape(logits)[:-1], np.float32)
    entropy = normalized_entropy(logits)
    return np.clip((ENTROPY_RAMP * threshold - entropy) / ((ENTROPY_RAMP - 1) * threshold), 0.0, 1.0)


def cap_global_cast(ab: np.ndarray, limit: float) -> np.ndarray:
    """N×h×w×2 ab with each image's mean ab shortened to at most `limit` by taking the excess off every pixel;
    limit = 0 leaves it as it is."""
    if not limit:
        return ab
    mean = ab.mean(axis=(1, 2), keepdims=True)
    length = np.linalg.norm(mean, axis=-1, keepdims=True)
    excess = np.where(length > limit, 1.0 - limit / np.maximum(length, 1e-6), 0.0)
    return (ab - mean * excess).astype(np.float32)


def guard_ab(ab: np.ndarray, logits: np.ndarray, entropy_threshold: float, cast_limit: float) -> np.ndarray:
    """The decoded N×h×w×2 `ab` of N×h×w×313 `logits`, with both guards applied (uncertainty first); each is off
    at 0."""
    if entropy_threshold:
        ab = (ab * uncertainty_scale(logits, entropy_threshold)[..., None]).astype(np.float32)
    return cap_global_cast(ab, cast_limit)
