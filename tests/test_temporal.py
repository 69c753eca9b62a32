"""temporal.Smoother by hand: frame by frame is untouched, the moving average by hand, the flow variant follows a
moving pattern where the plain average smears it, a cut resets the state, and warm-up frames carry it across a
segment boundary."""

from __future__ import annotations

import numpy as np
import pytest

from colorspark.temporal import Smoother, Temporal


def _texture(seed: int, side: int = 64) -> np.ndarray:
    """Network input codes (L·2.55): a blocky random texture, smooth enough for optical flow."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.uniform(40, 215, size=(side // 8, side // 8)), np.ones((8, 8))).astype(np.float32)


def test_frame_by_frame_returns_the_prediction():
    smoother = Smoother(Temporal("none"))
    ab = np.ones((16, 16, 2), np.float32)
    assert smoother.step(_texture(0), ab) is ab


def test_moving_average_by_hand():
    smoother = Smoother(Temporal("ema", alpha=0.25))
    x = _texture(0)
    first, second = np.full((16, 16, 2), 8.0, np.float32), np.full((16, 16, 2), -4.0, np.float32)
    np.testing.assert_allclose(smoother.step(x, first), 8.0)
    np.testing.assert_allclose(smoother.step(x, second), 0.25 * -4.0 + 0.75 * 8.0)
    np.testing.assert_allclose(smoother.step(x, second), 0.25 * -4.0 + 0.75 * 5.0)
    assert smoother.cuts == 0


def test_flow_follows_a_moving_pattern_that_the_plain_average_smears():
    """A texture and its colours move 8 px (2 output cells) right per frame: along the flow the previous colours land
    where they belong, so the smoothed ab stays the frame's own; blended in place, it is a mix of positions."""
    base, colours = _texture(3, 96), np.random.default_rng(4).uniform(-40, 40, size=(24, 24, 2)).astype(np.float32)
    errors = {}
    for method in ("ema", "flow"):
        smoother = Smoother(Temporal(method, alpha=0.3, cut_threshold=1000.0, flow_preset="medium"))
        for t in range(4):
            x, ab = np.roll(base, 8 * t, axis=1), np.roll(colours, 2 * t, axis=1)
            out = smoother.step(x, ab)
        inner = (slice(4, -4), slice(6, -6))  # away from the wrapped-around edge
        errors[method] = float(np.abs(out - ab)[inner].mean())
    assert errors["flow"] < 0.25 * errors["ema"]


@pytest.mark.parametrize("method", ["ema", "flow"])
def test_a_cut_resets_the_state(method):
    smoother = Smoother(Temporal(method, alpha=0.3))
    before, after = np.full((8, 8, 2), 30.0, np.float32), np.full((8, 8, 2), -30.0, np.float32)
    smoother.step(_texture(1, 32), before)
    smoother.step(_texture(1, 32), before)
    np.testing.assert_allclose(smoother.step(_texture(2, 32), after), after)  # another shot: nothing carried
    assert smoother.cuts == 1
    np.testing.assert_allclose(smoother.step(_texture(2, 32), before), 0.3 * 30 + 0.7 * -30, atol=1e-4)


def test_warm_up_frames_carry_the_state_across_a_segment_boundary():
    """A segment task primed with w warm-up frames continues the whole video's state to within (1 − α)^w of the
    largest ab change."""
    rng = np.random.default_rng(5)
    frames = [rng.uniform(-50, 50, size=(8, 8, 2)).astype(np.float32) for _ in range(30)]
    x, alpha, start, warmup = _texture(0, 32), 0.3, 20, 8
    whole = Smoother(Temporal("ema", alpha=alpha))
    expected = [whole.step(x, ab) for ab in frames][start:]
    segment = Smoother(Temporal("ema", alpha=alpha))
    for ab in frames[start - warmup:start]:
        segment.step(x, ab)
    got = [segment.step(x, ab) for ab in frames[start:]]
    assert np.abs(got[0] - expected[0]).max() <= (1 - alpha) ** warmup * 100 + 1e-3
    cold = Smoother(Temporal("ema", alpha=alpha)).step(x, frames[start])
    assert np.abs(got[0] - expected[0]).max() < 0.1 * np.abs(cold - expected[0]).max()
