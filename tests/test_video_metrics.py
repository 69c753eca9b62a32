"""Flicker metrics against small hand-computed cases: the warping error with a known flow and occlusion, DIS on a
shifted texture, Jensen-Shannon against SciPy, CDC over a known sequence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from colorspark.video_metrics import (
    CDC_STEPS,
    FlickerMeter,
    channel_histograms,
    dis_flow,
    is_scene_cut,
    js_divergence,
    visible,
    warp_back,
    warping_error,
)


def _texture(height=48, width=64, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(height // 4, width // 4))
    return np.kron(coarse, np.ones((4, 4))).astype(np.uint8)


def _flow(height, width, dx, dy) -> np.ndarray:
    return np.broadcast_to(np.array([dx, dy], np.float32), (height, width, 2)).copy()


def test_warp_back_samples_the_later_frame_along_the_flow():
    later = np.arange(20, dtype=np.float32).reshape(4, 5)
    warped = warp_back(later, _flow(4, 5, 1, 0))
    np.testing.assert_array_equal(warped[:, :4], later[:, 1:])  # x + 1
    np.testing.assert_array_equal(warped[:, 4], later[:, 4])  # the edge repeats


def test_visibility_is_the_forward_backward_check():
    forward = _flow(3, 3, 1, 0)
    assert visible(forward, _flow(3, 3, -1, 0)).all()  # there and back: |1 - 1|² = 0 < 0.5 + 0.02
    assert not visible(forward, _flow(3, 3, 1, 0)).any()  # |1 + 1|² = 4 > 0.01·2 + 0.5
    assert visible(forward, _flow(3, 3, -0.4, 0)).all()  # |0.6|² = 0.36 < 0.01·1.16 + 0.5


def test_warping_error_by_hand():
    frame = np.zeros((2, 3, 3), np.float32)
    later = frame.copy()
    later[..., 0] = 0.3  # red changed by 0.3 everywhere: (0.3² + 0 + 0) / 3 channels
    mask = np.ones((2, 3), bool)
    assert warping_error(frame, later, _flow(2, 3, 0, 0), mask) == pytest.approx(0.09 / 3)
    mask[0] = False  # only the visible pixels count
    later[0, :, 1] = 1.0
    assert warping_error(frame, later, _flow(2, 3, 0, 0), mask) == pytest.approx(0.09 / 3)
    assert math.isnan(warping_error(frame, later, _flow(2, 3, 0, 0), np.zeros((2, 3), bool)))


def test_a_shifted_texture_has_no_warping_error_along_dis_flow():
    first = _texture()
    second = np.roll(first, 2, axis=1)  # everything moves 2 px right
    forward = dis_flow(first, second, "medium")
    inner = (slice(8, -8), slice(8, -8))
    np.testing.assert_allclose(forward[inner][..., 0], 2, atol=0.25)
    np.testing.assert_allclose(forward[inner][..., 1], 0, atol=0.25)
    mask = visible(forward, dis_flow(second, first, "medium"))
    assert warping_error(first / 255.0, second / 255.0, forward, mask) < 1e-3
    unmoved = np.zeros_like(forward)
    assert warping_error(first / 255.0, second / 255.0, unmoved, np.ones(first.shape, bool)) > 1e-2


def test_js_divergence_matches_scipy_and_by_hand():
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(math.log(2))
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(256)), rng.dirichlet(np.ones(256))
    assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q) ** 2)


def test_channel_histograms_count_each_channel():
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (10, 20, 30)
    histograms = channel_histograms(rgb)
    assert histograms.shape == (3, 256) and np.allclose(histograms.sum(axis=1), 1)
    assert histograms[0, 0] == 0.75 and histograms[0, 10] == 0.25 and histograms[2, 30] == 0.25


def test_flicker_meter_cdc_and_warping_error_of_a_known_sequence():
    """Frames alternate between all-black and all-white RGB over a still gray input: each channel's histogram
    jumps between bin 0 and bin 255, so pairs 1 apart diverge by ln 2 and pairs 2 and 4 apart not at all."""
    gray = _texture()
    meter = FlickerMeter("ultrafast")
    for i in range(6):
        value = 255 * (i % 2)
        meter.add(gray, np.full(gray.shape + (3,), value, np.uint8), np.zeros(gray.shape + (2,), np.float32))
    sums = meter.sums
    assert sums.cdc[1] == [pytest.approx(5 * math.log(2)), 5]
    assert sums.cdc[2] == [0.0, 4] and sums.cdc[4] == [0.0, 2]
    figures = sums.figures()
    assert figures["cdc"] == pytest.approx(math.log(2) / len(CDC_STEPS))
    assert figures["warp_error_rgb"] == pytest.approx(1.0)  # a still scene, every pixel flips by 1 in each channel
    assert figures["warp_error_chroma"] == 0.0


def test_flicker_sums_of_segments_add_up():
    gray = _texture()
    frames = [np.full(gray.shape + (3,), 60 * i, np.uint8) for i in range(4)]
    ab = np.zeros(gray.shape + (2,), np.float32)
    whole, first, second = FlickerMeter("ultrafast"), FlickerMeter("ultrafast"), FlickerMeter("ultrafast")
    for frame in frames:
        whole.add(gray, frame, ab)
    for frame in frames[:2]:
        first.add(gray, frame, ab)
    for frame in frames[1:]:  # the second segment's meter starts from the frame before it
        second.add(gray, frame, ab)
    merged = first.sums.merge(second.sums)
    assert merged.rgb[1] == whole.sums.rgb[1] == 3
    assert merged.rgb[0] == pytest.approx(whole.sums.rgb[0])


def test_scene_cuts_by_hand_and_no_pair_spans_one():
    first, other = _texture(seed=0), _texture(seed=1)
    assert not is_scene_cut(first, first) and is_scene_cut(first, other)
    assert not is_scene_cut(first, np.clip(first.astype(int) + 25, 0, 255).astype(np.uint8))  # 25/2.55 < 12 L
    meter = FlickerMeter("ultrafast")
    black, white = (np.full(first.shape + (3,), v, np.uint8) for v in (0, 255))
    ab = np.zeros(first.shape + (2,), np.float32)
    for gray, rgb in ((first, black), (first, black), (other, white), (other, white), (other, white)):
        meter.add(gray, rgb, ab)
    assert meter.cuts == 1
    assert meter.sums.rgb == [0.0, 3] and meter.sums.cdc[1] == [0.0, 3]  # the colour change at the cut is not flicker
    assert meter.sums.cdc[2] == [0.0, 1] and meter.sums.cdc[4] == [0.0, 0]
