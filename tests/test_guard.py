"""Do-no-harm decoding: colour held back where the distribution is broad, and a global cast capped."""

from __future__ import annotations

import math

import numpy as np
import pytest

from colorspark.bins import annealed_mean, gamut_centres
from colorspark.colorizer import Rendering
from colorspark.config import ConfigError, load
from colorspark.guard import ENTROPY_RAMP, cap_global_cast, guard_ab, normalized_entropy, uncertainty_scale

Q = len(gamut_centres())


def _logits(confident: bool) -> np.ndarray:
    """1×2×2×313 logits: one bin far ahead of the rest (confident), or all bins nearly alike (unsure)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 0.1, (1, 2, 2, Q)).astype(np.float32)
    if confident:
        logits[..., int(np.argmax(gamut_centres()[:, 1]))] += 30.0  # the most yellow bin
    return logits


def test_normalized_entropy_is_0_for_one_bin_and_1_for_all_alike():
    assert normalized_entropy(np.full((Q,), 0.0)) == pytest.approx(1.0, abs=1e-6)
    one = np.full((Q,), -1e4, np.float32)
    one[5] = 0.0
    assert normalized_entropy(one) == pytest.approx(0.0, abs=1e-6)
    p = np.zeros(Q)
    p[:2] = 0.5
    assert normalized_entropy(np.log(np.maximum(p, 1e-30))) == pytest.approx(math.log(2) / math.log(Q), abs=1e-5)


def test_uncertain_pixels_fade_to_gray_and_confident_ones_keep_their_colour():
    for confident, expected in ((True, 1.0), (False, 0.0)):
        logits = _logits(confident)
        ab = annealed_mean(logits, 1.0)
        guarded = guard_ab(ab, logits, 0.5, 0.0)
        np.testing.assert_allclose(guarded, ab * expected, atol=1e-5)
    assert uncertainty_scale(_logits(False), 0.0).min() == 1.0  # 0 = off


def test_the_fade_is_linear_from_the_threshold_to_its_ramp_multiple():
    spread = np.full((Q,), -1e4, np.float32)
    spread[:40] = 0.0  # all alike over 40 bins: entropy log 40 / log 313
    entropy = math.log(40) / math.log(Q)
    for threshold, expected in ((entropy, 1.0), (entropy / 1.25, 0.5), (entropy / ENTROPY_RAMP, 0.0),
                                (entropy / 2, 0.0), (0.9, 1.0)):
        assert float(uncertainty_scale(spread, threshold)) == pytest.approx(expected, abs=1e-4), threshold


def test_a_global_cast_is_capped_and_the_local_variation_kept():
    ab = np.zeros((2, 4, 4, 2), np.float32)
    ab[0] = [30.0, 40.0]  # a uniform wash of length 50
    ab[0, 0, 0] += [10.0, 0.0]
    ab[1] = [3.0, 4.0]  # a cast of 5: below the limit, untouched
    capped = cap_global_cast(ab, 10.0)
    assert np.linalg.norm(capped[0].mean(axis=(0, 1))) == pytest.approx(10.0, rel=1e-4)
    np.testing.assert_allclose(capped[0, 0, 0] - capped[0, 1, 1], [10.0, 0.0], atol=1e-4)
    np.testing.assert_array_equal(capped[1], ab[1])
    np.testing.assert_array_equal(cap_global_cast(ab, 0.0), ab)


def test_the_rendering_carries_the_config_guard_into_the_stream():
    import io

    from PIL import Image

    from colorspark.colorizer import colorize_stream

    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buffer, format="PNG")
    largest = {}
    for threshold in (0.0, 0.5):
        config = load(overrides=[f"colorize.guard_entropy={threshold}", "colorize.guard_cast=12"])
        rendering = Rendering.from_config(config, {"input_size": 16, "temperature": 1.0})
        assert (rendering.guard_entropy, rendering.guard_cast) == (threshold, 12.0)
        [(_, out)] = colorize_stream([(0, buffer.getvalue())], _Unsure, rendering)
        largest[threshold] = float(np.abs(out.lab[..., 1:]).max())
    assert largest[0.0] > 1.0 and largest[0.5] < 1e-3
    with pytest.raises(ConfigError, match="colorize.guard_entropy"):
        load(overrides=["colorize.guard_entropy=1.5"])


class _Unsure:
    """Stands in for a Keras model: every pixel's bins nearly alike, with a slight tilt that still gives a colour."""

    def predict_on_batch(self, x):
        tilt = np.linspace(0, 0.5, Q, dtype=np.float32)
        return np.broadcast_to(tilt, (x.shape[0], x.shape[1] // 4, x.shape[2] // 4, Q)).copy()


class _Warm:
    """Stands in for a Keras model: every pixel confidently the most yellow bin, a wash over anything."""

    def predict_on_batch(self, x):
        logits = np.zeros((x.shape[0], x.shape[1] // 4, x.shape[2] // 4, Q), np.float32)
        logits[..., int(np.argmax(gamut_centres()[:, 1]))] = 30.0
        return logits


def test_the_stream_caps_a_wash_unless_a_reference_asks_for_its_colours():
    import io

    from PIL import Image

    from colorspark import reference
    from colorspark.colorizer import colorize_stream
    from colorspark.reference import Reference

    buffer = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buffer, format="PNG")
    limits = {"max_pixels": 10_000_000, "max_bytes": 10_000_000}
    casts = {}
    for cap in (0.0, 7.0):
        config = {"colorize": {"batch_size": 4, "guard_cast": cap}, "output": {"jpeg_quality": 90}, "limits": limits}
        rendering = Rendering.from_config(config, {"input_size": 16, "temperature": 1.0})
        references = {0: None, 1: Reference("yellow", reference.palette_distribution([(230, 200, 20)]))}
        out = dict(colorize_stream(((k, buffer.getvalue()) for k in references), _Warm, rendering, references.get))
        casts[cap] = {k: float(np.linalg.norm(out[k].lab[..., 1:].mean((0, 1)))) for k in out}
    assert casts[0.0][0] > 50 and casts[7.0][0] == pytest.approx(7.0, abs=0.5)
    assert casts[7.0][1] == pytest.approx(casts[0.0][1], abs=1e-3) and casts[7.0][1] > 50
    config["colorize"]["reference_strength"] = 0.0  # a reference that only measures: decoded as without it
    rendering = Rendering.from_config(config, {"input_size": 16, "temperature": 1.0})
    out = dict(colorize_stream(((k, buffer.getvalue()) for k in references), _Warm, rendering, references.get))
    np.testing.assert_allclose(out[1].lab, out[0].lab, atol=1e-4)
    assert out[1].reference == "yellow" and out[1].divergence is not None
