"""The guided filter's building blocks (colorspark/guided.py) against a direct evaluation of the paper's formulas."""

from __future__ import annotations

import numpy as np
import pytest

from colorspark.guided import area_weights, box_mean, linear_coefficients


def guided_filter(guide, src, radius, eps):
    """The paper's filter, q = mean(a)·I + mean(b), from colorspark's `linear_coefficients`: what the tests hold
    against the window-by-window formulas. (colorize uses only the slopes; the model card says why not the filter.)"""
    src = np.asarray(src, dtype=np.float32)
    mean_a, mean_b = linear_coefficients(guide, src if src.ndim == 3 else src[..., None], radius, eps)
    out = mean_a * np.asarray(guide, dtype=np.float32)[..., None] + mean_b
    return out if src.ndim == 3 else out[..., 0]


def _window(shape, k, radius):
    """The (row, column) slices of the (2r+1)² window centred on pixel k, clipped at the image's border."""
    return tuple(slice(max(x - radius, 0), min(x + radius, n - 1) + 1) for x, n in zip(k, shape))


def reference_guided_filter(guide, src, radius, eps):
    """He, Sun and Tang 2010, eqs. 5, 6 and 8, evaluated window by window in float64: for every window ω_k,
    a_k = (1/|ω| Σ I_i p_i − μ_k p̄_k) / (σ_k² + ε) and b_k = p̄_k − a_k μ_k; then every pixel averages
    a_k I_i + b_k over all the windows that contain it."""
    guide, src = np.asarray(guide, np.float64), np.asarray(src, np.float64)
    rows, cols = guide.shape
    a, b = np.zeros(guide.shape), np.zeros(guide.shape)
    for k in np.ndindex(rows, cols):
        window = _window(guide.shape, k, radius)
        i_w, p_w = guide[window].ravel(), src[window].ravel()
        mu, var = i_w.mean(), i_w.var()
        a[k] = ((i_w * p_w).mean() - mu * p_w.mean()) / (var + eps)
        b[k] = p_w.mean() - a[k] * mu
    out = np.zeros(guide.shape)
    for i in np.ndindex(rows, cols):
        holding = [k for k in np.ndindex(rows, cols)
                   if all(s.start <= x < s.stop for s, x in zip(_window(guide.shape, k, radius), i))]
        out[i] = np.mean([a[k] * guide[i] + b[k] for k in holding])
    return out


@pytest.mark.parametrize("shape, radius, eps", [((9, 11), 1, 1e-2), ((9, 11), 2, 1e-3), ((5, 7), 6, 1e-2),
                                                ((1, 12), 2, 1e-2)])
def test_guided_filter_equals_the_papers_formulas_window_by_window(shape, radius, eps):
    rng = np.random.default_rng(radius)
    guide = rng.uniform(0, 1, shape).astype(np.float32)
    src = rng.uniform(-100, 100, (*shape, 2)).astype(np.float32)
    out = guided_filter(guide, src, radius, eps)
    assert out.shape == src.shape and out.dtype == np.float32
    for c in range(2):
        np.testing.assert_allclose(out[..., c], reference_guided_filter(guide, src[..., c], radius, eps), atol=2e-3)
    np.testing.assert_allclose(guided_filter(guide, src[..., 0], radius, eps), out[..., 0], atol=1e-5)  # 2-D input


def test_box_mean_is_the_mean_of_the_clipped_window():
    x = np.random.default_rng(0).uniform(-5, 5, (6, 9, 2)).astype(np.float32)
    for radius in (1, 3, 10):
        expected = np.array([[x[_window(x.shape[:2], (i, j), radius)].mean(axis=(0, 1)) for j in range(9)]
                             for i in range(6)])
        np.testing.assert_allclose(box_mean(x, radius), expected, atol=1e-5)


def test_a_constant_input_comes_out_unchanged_whatever_the_guide():
    guide = np.random.default_rng(1).uniform(0, 1, (20, 30)).astype(np.float32)
    np.testing.assert_allclose(guided_filter(guide, np.full((20, 30), 42.5, np.float32), 3, 1e-4), 42.5, atol=1e-3)


def test_a_constant_guide_makes_it_a_box_filter():
    """No edges to follow: a = 0 and b is the window mean, so q is the box mean of the box mean."""
    src = np.random.default_rng(2).uniform(-50, 50, (15, 17)).astype(np.float32)
    expected = box_mean(box_mean(src, 2), 2)
    np.testing.assert_allclose(guided_filter(np.full((15, 17), 0.3, np.float32), src, 2, 1e-3), expected, atol=1e-4)


def test_guided_by_itself_with_a_small_eps_the_input_comes_back():
    """Edge-preserving: a = σ²/(σ² + ε) ≈ 1 wherever the input varies, so q ≈ p, sharp edges included."""
    rng = np.random.default_rng(3)
    image = np.where(np.arange(24)[None, :] < 11, 0.2, 0.8) + rng.uniform(-0.05, 0.05, (16, 24))
    np.testing.assert_allclose(guided_filter(image.astype(np.float32), image, 2, 1e-6), image, atol=2e-3)


def test_colour_follows_a_sharp_edge_of_the_guide():
    """A colour ramp across a sharp L edge (what bilinear upsampling gives) comes out as a step at the edge."""
    columns = np.arange(40)
    guide = np.repeat(np.where(columns < 20, 0.3, 0.7)[None, :], 10, axis=0).astype(np.float32)
    ramp = np.repeat(np.clip((columns - 14) * (-60 / 12) + 30, -30, 30)[None, :], 10, axis=0).astype(np.float32)
    out = guided_filter(guide, ramp, 4, 1e-4)
    assert out[5, 19] - out[5, 20] > 3 * (ramp[5, 19] - ramp[5, 20])  # the jump sits at the edge ...
    assert np.abs(np.diff(out[5, 16:20])).max() < np.abs(np.diff(ramp[5, 16:20])).max()  # ... not beside it


def test_linear_coefficients_check_their_arguments():
    with pytest.raises(ValueError, match="radius >= 1"):
        linear_coefficients(np.zeros((4, 4)), np.zeros((4, 4, 2)), 0, 1e-3)
    with pytest.raises(ValueError, match="eps > 0"):
        linear_coefficients(np.zeros((4, 4)), np.zeros((4, 4, 2)), 1, 0.0)
    with pytest.raises(ValueError, match="same H and W"):
        linear_coefficients(np.zeros((4, 5)), np.zeros((4, 4, 2)), 1, 1e-3)


def test_area_weights_average_the_pixels_under_each_cell():
    np.testing.assert_allclose(area_weights(12, 3) @ np.arange(12.0), [1.5, 5.5, 9.5], atol=1e-6)
    # 5 pixels under 2 cells: the middle pixel is split between them
    np.testing.assert_allclose(area_weights(5, 2) @ np.array([0.0, 0, 5, 10, 10]), [1.0, 9.0], atol=1e-6)
    np.testing.assert_allclose(area_weights(7, 16).sum(axis=1), 1.0, atol=1e-6)  # more cells than pixels
