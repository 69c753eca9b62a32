"""Temporal consistency for video: each frame's predicted ab blended with the previous frames', reset at cuts.

Frame by frame, the network's colour of a wall or a coat jumps from one frame to the next. `Smoother` keeps the
smoothed ab of the previous frame and blends: ab_t' = alpha·ab_t + (1 − alpha)·prev, an exponential moving average.
With "ema" (the default) prev is the previous smoothed ab in place; with "flow" it is first warped to the current
frame along the DIS optical flow of the network's input, and cells that the forward-backward check finds uncovered
by motion keep the frame's own ab. Smoothing the annealed-mean ab rather than the 313-bin distributions keeps the
state at 2 numbers per output cell (the network's output is 1/4 of its input), and the blend of two means is the
mean of the blended distributions, so it is the same up to the annealing temperature.

"blind" is Bonneel et al. (2015)'s blind temporal consistency on the same state: the output O_t minimises
Σ|∇O_t − ∇P_t|² + λ·M·|O_t − warp(O_{t−1})|² over the output cells, P_t the frame's own predicted ab, warp along the
same flow and M the same visibility mask. Its gradients (edges, detail) come from the frame and its values from the
previous output: frequencies below about √λ radians per cell follow the past, those above follow the frame. So the
slow part of the colour, down to the mean, is carried from a shot's first frame on (new values enter only where
motion uncovers cells), which is also why a segment's warm-up cannot converge to the whole video's state as it does
with the blends.

A scene cut resets the state (`video_metrics.is_scene_cut` on the gray frames, aligned along the flow with "flow"
and "blind", in place with "ema", where fast motion can also reset it): nothing is carried from one shot into the
next. The choice of method and settings was measured with bench/video_bench.py and is documented in docs/video.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .video_metrics import CUT_THRESHOLD, dis_flow, is_scene_cut, visible, warp_back


@dataclass(frozen=True)
class Temporal:
    """How colours are stabilised over time: `method` "none" (frame by frame), "ema" (blend with the previous frame
    in place), "flow" (blend along the optical flow) or "blind" (Bonneel et al.'s screened Poisson along the flow);
    `alpha`, the weight of the current frame in a blend; `blind_lambda`, λ of "blind"; `cut_threshold`, the mean
    |ΔL| after alignment that marks a scene cut; `flow_preset`, DIS's preset."""
    method: str = "ema"
    alpha: float = 0.2
    cut_threshold: float = CUT_THRESHOLD
    flow_preset: str = "fast"
    blind_lambda: float = 1.0

    @classmethod
    def from_config(cls, config: dict) -> Temporal:
        video = config["video"]
        return cls(method=video["temporal"], alpha=float(video["temporal_alpha"]),
                   cut_threshold=float(video["cut_threshold"]), flow_preset=video["flow_preset"],
                   blind_lambda=float(video["blind_lambda"]))


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
        previous = self._aligned(gray, ab) if self._gray is not None else None
        self._gray = gray
        self._ab = ab if previous is None else self._combined(ab, *previous)
        return self._ab

    def _combined(self, ab: np.ndarray, carried: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """The frame's ab joined with the previous output aligned with it, on the cells where that is `seen`."""
        if self.settings.method == "blind":
            return screened_poisson(ab, carried, self.settings.blind_lambda * seen)
        return np.where(seen[..., None], self.settings.alpha * ab + (1 - self.settings.alpha) * carried, ab)

    def _aligned(self, gray: np.ndarray, ab: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The previous output aligned with the current frame and the (h×w bool) cells where it is seen, or None
        at a cut. In place ("ema") every cell is seen; along the flow, cells that the forward-backward check finds
        uncovered by motion are not."""
        if self.settings.method == "ema":
            return None if self._is_cut(gray, self._gray) else (self._ab, np.ones(ab.shape[:2], bool))
        forward = dis_flow(gray, self._gray, self.settings.flow_preset)  # current -> previous
        if self._is_cut(gray, warp_back(self._gray, forward)):
            return None
        rows, columns = ab.shape[:2]
        carried = warp_back(self._ab, resize_flow(forward, rows, columns))
        hidden = ~visible(forward, dis_flow(self._gray, gray, self.settings.flow_preset))
        return carried, ~(_area_resize(hidden.astype(np.float32), rows, columns) > 0.5)

    def _is_cut(self, gray: np.ndarray, aligned_previous: np.ndarray) -> bool:
        cut = is_scene_cut(gray, aligned_previous, self.settings.cut_threshold)
        self.cuts += cut
        return cut


def screened_poisson(target: np.ndarray, anchor: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The h×w×c field O minimising Σ|∇O − ∇target|² + Σ weight·|O − anchor|², ∇ the differences between
    4-neighbour cells (so the borders are free: Neumann). Setting the gradient to zero gives the sparse symmetric
    system (L + diag(weight))·O = L·target + weight·anchor, L the grid's graph Laplacian, positive definite once
    any weight is positive; it is solved per channel by conjugate gradients from the anchor, which is close to the
    answer where the previous output is seen. With no weight, the minimisers are target plus any constant, and
    target is returned."""
    from scipy.sparse import diags
    from scipy.sparse.linalg import cg

    if not np.any(weight > 0):
        return target
    rows, columns, channels = target.shape
    laplacian = _grid_laplacian(rows, columns)
    system = laplacian + diags(np.ravel(weight).astype(np.float64))
    solved = np.empty(target.shape, np.float32)
    for c in range(channels):
        p, a = target[..., c].astype(np.float64).ravel(), anchor[..., c].astype(np.float64).ravel()
        o, info = cg(system, laplacian @ p + np.ravel(weight) * a, x0=a, rtol=1e-6, maxiter=10 * p.size)
        if info != 0:
            raise RuntimeError(f"screened Poisson: conjugate gradients did not converge ({info})")
        solved[..., c] = o.reshape(rows, columns)
    return solved


@lru_cache(maxsize=8)
def _grid_laplacian(rows: int, columns: int):
    """The graph Laplacian DᵀD of a rows×columns grid (cells in row-major order), D its forward differences."""
    from scipy.sparse import diags, identity, kron, vstack

    def differences(n: int):
        return diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n))

    d = vstack([kron(identity(rows), differences(columns)), kron(differences(rows), identity(columns))]).tocsr()
    return (d.T @ d).tocsr()


def _area_resize(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (columns, rows), interpolation=cv2.INTER_AREA)
