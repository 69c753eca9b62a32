"""Temporal consistency for video: each frame's predicted ab blended with the previous frames', reset at cuts.

Frame by frame, the network's colour of a wall or a coat jumps from one frame to the next. `Smoother` keeps the
smoothed ab of the previous frame and blends: ab_t' = alpha·ab_t + (1 − alpha)·prev, an exponential moving average.
With "ema" (the default) prev is the previous smoothed ab in place; with "flow" it is first warped to the current
frame along the DIS optical flow of the network's input, and cells that the forward-backward check finds uncovered
by motion keep the frame's own ab. Smoothing the annealed-mean ab rather than the 313-bin distributions keeps the
state at 2 numbers per output cell (the network's output is 1/4 of its input), and the blend of two means is the
mean of the blended distributions, so it is the same up to the annealing temperature.

A scene cut resets the state (`video_metrics.is_scene_cut` on the gray frames, aligned along the flow with "flow",
in place with "ema", where fast motion can also reset it): nothing is carried from one shot into the next. The
choice of method and settings was measured with bench/video_bench.py and is documented in docs/video.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .video_metrics import CUT_THRESHOLD, dis_flow, is_scene_cut, visible, warp_back


@dataclass(frozen=True)
class Temporal:
    """How colours are stabilised over time: `method` "none" (frame by frame), "ema" (blend with the previous frame
    in place) or "flow" (blend along the optical flow); `alpha`, the weight of the current frame; `cut_threshold`,
    the mean |ΔL| after alignment that marks a scene cut; `flow_preset`, DIS's preset."""
    method: str = "ema"
    alpha: float = 0.2
    cut_threshold: float = CUT_THRESHOLD
    flow_preset: str = "fast"

    @classmethod
    def from_config(cls, config: dict) -> Temporal:
        video = config["video"]
        return cls(method=video["temporal"], alpha=float(video["temporal_alpha"]),
                   cut_threshold=float(video["cut_threshold"]), flow_preset=video["flow_preset"])


def gray_codes(x: np.ndarray) -> np.ndarray:
    """The network input (L codes, L·2.55, float) as the uint8 image DIS works on."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """A flow field brought to another grid: resampled by area and its vectors scaled with the grid."""
    import cv2

    small = cv2.resize(flow, (width, height), interpolation=cv2.INTER_AREA)
    small[..., 0] *= width / flow.shape[1]
    small[..., 1] *= height / flow.shape[0]
    return small


class Smoother:
    """Feeds on the frames of one video in order: `step(x, ab)` with the network input (H×W L codes) and its
    predicted ab (h×w×2) returns the ab to render. `cuts` counts the resets at scene cuts."""

    def __init__(self, settings: Temporal) -> None:
        self.settings = settings
        self.cuts = 0
        self._gray: np.ndarray | None = None
        self._ab: np.ndarray | None = None

    def step(self, x: np.ndarray, ab: np.ndarray) -> np.ndarray:
        if self.settings.method == "none":
            return ab
        gray = gray_codes(np.squeeze(x))
        ab = np.asarray(ab, np.float32)
        carried = self._carried(gray, ab) if self._gray is not None else None
        self._gray = gray
        self._ab = ab if carried is None else self.settings.alpha * ab + (1 - self.settings.alpha) * carried
        return self._ab

    def _carried(self, gray: np.ndarray, ab: np.ndarray) -> np.ndarray | None:
        """The previous smoothed ab aligned with the current frame, or None at a cut. With "flow", cells that the
        forward-backward check finds uncovered by motion carry the current frame's own ab."""
        if self.settings.method == "ema":
            return None if self._is_cut(gray, self._gray) else self._ab
        forward = dis_flow(gray, self._gray, self.settings.flow_preset)  # current -> previous
        if self._is_cut(gray, warp_back(self._gray, forward)):
            return None
        rows, columns = ab.shape[:2]
        carried = warp_back(self._ab, resize_flow(forward, rows, columns))
        hidden = ~visible(forward, dis_flow(self._gray, gray, self.settings.flow_preset))
        hidden_cells = _area_resize(hidden.astype(np.float32), rows, columns) > 0.5
        carried[hidden_cells] = ab[hidden_cells]
        return carried

    def _is_cut(self, gray: np.ndarray, aligned_previous: np.ndarray) -> bool:
        cut = is_scene_cut(gray, aligned_previous, self.settings.cut_threshold)
        self.cuts += cut
        return cut


def _area_resize(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (columns, rows), interpolation=cv2.INTER_AREA)
