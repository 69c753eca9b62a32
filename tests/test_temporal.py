"""temporal.Smoother by hand: frame by frame is untouched, the moving average by hand, the flow variant follows a
moving pattern where the plain average smears it, a cut resets the state, and warm-up frames carry it across a
segment boundary. The blind variant's screened Poisson solve against a dense least-squares solve of its energy."""

from __future__ import annotations

import numpy as np
import pytest

from colorspark.temporal import Smoother, Temporal, screened_poisson


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


def _dense_energy_minimum(target: np.ndarray, anchor: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """argmin Σ|∇O − ∇target|² + Σ weight·(O − anchor)² on one channel, as the least-squares solution of its
    residuals written out one by one: a row per pair of 4-neighbours, a row per weighted cell."""
    rows, columns = target.shape
    index = np.arange(rows * columns).reshape(rows, columns)
    pairs = [(index[r, c], index[r, c + 1]) for r in range(rows) for c in range(columns - 1)]
    pairs += [(index[r, c], index[r + 1, c]) for r in range(rows - 1) for c in range(columns)]
    system = np.zeros((len(pairs) + rows * columns, rows * columns))
    rhs = np.zeros(len(system))
    p, a, w = target.ravel(), anchor.ravel(), np.sqrt(weight.ravel())
    for k, (i, j) in enumerate(pairs):
        system[k, j], system[k, i], rhs[k] = 1.0, -1.0, p[j] - p[i]
    system[len(pairs):] = np.diag(w)
    rhs[len(pairs):] = w * a
    return np.linalg.lstsq(system, rhs, rcond=None)[0].reshape(rows, columns)


def test_screened_poisson_matches_a_dense_solve():
    rng = np.random.default_rng(6)
    target, anchor = rng.uniform(-50, 50, size=(2, 8, 8, 2))
    weight = 0.7 * (rng.uniform(size=(8, 8)) > 0.3)  # some cells unseen: the weights vary
    got = screened_poisson(target.astype(np.float32), anchor.astype(np.float32), weight)
    for c in range(2):
        np.testing.assert_allclose(got[..., c], _dense_energy_minimum(target[..., c], anchor[..., c], weight),
                                   atol=1e-3)


def test_blind_with_lambda_zero_is_frame_by_frame():
    smoother = Smoother(Temporal("blind", blind_lambda=0.0))
    first, second = np.full((8, 8, 2), 30.0, np.float32), np.random.default_rng(7).normal(size=(8, 8, 2))
    smoother.step(_texture(1, 32), first)
    np.testing.assert_array_equal(smoother.step(_texture(1, 32), second.astype(np.float32)), second.astype(np.float32))


def test_blind_on_a_static_scene_converges_to_the_frames_detail_at_the_first_frames_mean():
    """The same scene and prediction frame after frame, after a first frame off by a smooth offset: the output
    settles on the prediction's gradients; its mean stays the first frame's (the mean follows the previous output)."""
    rng = np.random.default_rng(8)
    steady = rng.uniform(-30, 30, size=(8, 8, 2)).astype(np.float32)
    offset = np.linspace(0, 20, 8, dtype=np.float32)[None, :, None] * np.ones((8, 1, 2), np.float32)
    smoother, x = Smoother(Temporal("blind", blind_lambda=0.5)), _texture(0, 32)
    smoother.step(x, steady + offset)
    outputs = [smoother.step(x, steady) for _ in range(40)]
    np.testing.assert_allclose(outputs[-1] - steady, offset.mean(axis=(0, 1)) * np.ones_like(steady), atol=0.05)
    assert np.abs(outputs[-1] - outputs[-2]).max() < 0.01
    assert smoother.cuts == 0


def test_blind_resets_at_a_cut():
    smoother = Smoother(Temporal("blind", blind_lambda=1.0))
    before, after = np.full((8, 8, 2), 30.0, np.float32), np.full((8, 8, 2), -30.0, np.float32)
    smoother.step(_texture(1, 32), before)
    np.testing.assert_allclose(smoother.step(_texture(1, 32), after), before, atol=1e-3)  # same shot: values carried
    np.testing.assert_allclose(smoother.step(_texture(2, 32), after), after)  # another shot: nothing carried
    assert smoother.cuts == 1
