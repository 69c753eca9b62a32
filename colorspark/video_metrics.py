"""Flicker metrics for colorized video: the warping error (Lai et al. 2018) and the colour distribution
consistency, CDC (Liu et al. 2021).

Warping error: frame t+1 of the output is warped back to frame t along the optical flow of the *input* (OpenCV's
DIS), and the mean squared difference to frame t is taken over the pixels that the forward-backward check finds
visible in both (Sundaram et al. 2010's test, as Lai et al. use it): |F(x) + B(x + F(x))|² <
0.01 (|F(x)|² + |B(x + F(x))|²) + 0.5. The mean runs over those pixels and the channels. It is reported on RGB in
[0, 1], as the literature does, and on the Lab chroma (a and b over 100) alone: the gray input's own RGB warping
error is most of the RGB figure, while the chroma is what colorizing adds.

CDC: the Jensen-Shannon divergence (natural logarithm) of the 256-bin histograms of each RGB channel between frames
1, 2 and 4 apart, averaged over channels, over frame pairs, and then over the three distances.

`FlickerMeter` takes the frames of a video in order and keeps sums, so that segments measured by separate tasks add
up to the video's figures.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .samples import L_SCALE

CDC_STEPS = (1, 2, 4)
# Mean |ΔL| (L units) between a frame and the previous one aligned with it above which they are different shots.
CUT_THRESHOLD = 12.0


def dis_flow(gray_from: np.ndarray, gray_to: np.ndarray, preset: str = "medium") -> np.ndarray:
    """H×W×2 float32 flow F with gray_from(x) ≈ gray_to(x + F(x)), by OpenCV's DIS on two H×W uint8 images."""
    dis = _dis(preset)
    return dis.calc(np.ascontiguousarray(gray_from), np.ascontiguousarray(gray_to), None)


_dis_cache: dict = {}


def _dis(preset: str):
    import cv2

    if preset not in _dis_cache:
        _dis_cache[preset] = cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))
    return _dis_cache[preset]


def warp_back(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` sampled at x + flow(x) for every pixel x (bilinear, edges repeated): the later frame brought back to
    the earlier one's pixels."""
    import cv2

    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), grid_x + flow[..., 0], grid_y + flow[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def visible(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """H×W bool: where the forward flow's target flows back to the start (not occluded), by the check above."""
    back = warp_back(backward, forward)
    round_trip = np.sum((forward + back) ** 2, axis=-1)
    return round_trip < 0.01 * (np.sum(forward ** 2, axis=-1) + np.sum(back ** 2, axis=-1)) + 0.5


def is_scene_cut(gray: np.ndarray, aligned_previous: np.ndarray, threshold: float = CUT_THRESHOLD) -> bool:
    """Whether two frames are different shots: their gray values (uint8 L codes, L·2.55) still differ by more than
    `threshold` L units on average once the previous one is aligned with the current one (warped along the flow;
    or not at all, for a caller without a flow). Motion that the flow follows leaves little difference; a new shot
    leaves a large one."""
    return float(np.mean(np.abs(aligned_previous.astype(np.float32) - gray))) / L_SCALE > threshold


def warping_error(frame: np.ndarray, next_frame: np.ndarray, forward: np.ndarray, mask: np.ndarray) -> float:
    """Mean over the `mask` pixels and the channels of (frame − next_frame warped back along `forward`)²; nan when
    no pixel is visible."""
    if not mask.any():
        return float("nan")
    warped = warp_back(next_frame, forward)
    if warped.ndim == 2:
        warped = warped[..., None]
    difference = warped - np.asarray(frame, np.float32).reshape(warped.shape)
    return float(np.mean(difference[mask] ** 2))


def channel_histograms(rgb: np.ndarray) -> np.ndarray:
    """3×256 float64: each RGB channel's histogram of a uint8 frame, normalised to sum 1."""
    counts = np.stack([np.bincount(rgb[..., c].ravel(), minlength=256) for c in range(3)]).astype(np.float64)
    return counts / counts.sum(axis=1, keepdims=True)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (nats) between the distributions in the last axis of `p` and `q`."""
    m = (p + q) / 2

    def kl(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log(a / b), 0.0)
        return terms.sum(axis=-1)

    return (kl(p, m) + kl(q, m)) / 2


@dataclass
class FlickerSums:
    """Sums and counts of the per-pair figures; segments' sums add up with `merge`."""
    rgb: list = field(default_factory=lambda: [0.0, 0])
    chroma: list = field(default_factory=lambda: [0.0, 0])
    cdc: dict = field(default_factory=lambda: {step: [0.0, 0] for step in CDC_STEPS})

    def merge(self, other: FlickerSums) -> FlickerSums:
        for mine, theirs in ((self.rgb, other.rgb), (self.chroma, other.chroma),
                             *((self.cdc[s], other.cdc[s]) for s in CDC_STEPS)):
            mine[0] += theirs[0]
            mine[1] += theirs[1]
        return self

    def figures(self) -> dict:
        """warp_error_rgb, warp_error_chroma and cdc (None where no pair was measured)."""
        def mean(total):
            return total[0] / total[1] if total[1] else None

        steps = [mean(self.cdc[s]) for s in CDC_STEPS]
        return {"warp_error_rgb": mean(self.rgb), "warp_error_chroma": mean(self.chroma),
                "cdc": float(np.mean(steps)) if all(v is not None for v in steps) else None}


class FlickerMeter:
    """Measures consecutive output frames: `add(gray, rgb, ab)` with the input's gray (H×W uint8 L codes), the
    output's RGB (H×W×3 uint8) and its ab (H×W×2, Lab units), in order.

    No pair spans a scene cut of the input (`is_scene_cut` after alignment along the flow; counted in `cuts`) or a
    `gap()`: the colours of a new shot are meant to differ, so such pairs measure the cut, not flicker."""

    def __init__(self, preset: str = "medium", cut_threshold: float = CUT_THRESHOLD) -> None:
        self.preset, self.cut_threshold = preset, cut_threshold
        self.sums = FlickerSums()
        self.cuts = 0
        self._last = None
        self._histograms: deque = deque(maxlen=max(CDC_STEPS))

    def add(self, gray: np.ndarray, rgb: np.ndarray, ab: np.ndarray) -> None:
        current = (gray, rgb.astype(np.float32) / 255.0, np.asarray(ab, np.float32) / 100.0)
        if self._last is not None:
            forward = dis_flow(self._last[0], gray, self.preset)
            if is_scene_cut(self._last[0], warp_back(gray, forward), self.cut_threshold):
                self.cuts += 1
                self.gap()
            else:
                self._measure(self._last, current, forward)
        self._last = current
        histogram = channel_histograms(rgb)
        for step in CDC_STEPS:
            if len(self._histograms) >= step and self._histograms[-step] is not None:
                total = self.sums.cdc[step]
                total[0] += float(js_divergence(self._histograms[-step], histogram).mean())
                total[1] += 1
        self._histograms.append(histogram)

    def gap(self) -> None:
        """Frames are missing here, or a new shot starts: no pair spans it."""
        self._last = None
        self._histograms.extend([None] * max(CDC_STEPS))

    def _measure(self, before, after, forward: np.ndarray) -> None:
        backward = dis_flow(after[0], before[0], self.preset)
        mask = visible(forward, backward)
        for total, index in ((self.sums.rgb, 1), (self.sums.chroma, 2)):
            value = warping_error(before[index], after[index], forward, mask)
            if np.isfinite(value):
                total[0] += value
                total[1] += 1
