"""sRGB (D65) <-> CIELAB in float32.

scikit-image's `rgb2lab`/`lab2rgb` compute in float64 and allocate several full-size temporaries; on multi-megapixel
photos in every executor that dominates preprocessing. This module uses the same constants as scikit-image
(D65 2° white, its sRGB matrix and its f(t) threshold) in float32, with a 256-entry table for the sRGB decoding of
8-bit input, and the tests hold it to scikit-image within 1e-3.
"""

from __future__ import annotations

import numpy as np

_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]], dtype=np.float64)
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])

# Fold the white-point normalisation into the matrices once.
_XYZN_FROM_RGB = (_XYZ_FROM_RGB / _WHITE_D65[:, None]).T.astype(np.float32)
_RGB_FROM_XYZN = (_RGB_FROM_XYZ * _WHITE_D65[None, :]).T.astype(np.float32)


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)


_LINEAR_FROM_UINT8 = _srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)


def _f(t: np.ndarray) -> np.ndarray:
    return np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16.0 / 116.0)


def _f_inv(f: np.ndarray) -> np.ndarray:
    return np.where(f > 0.2068966, f ** 3, (f - 16.0 / 116.0) / 7.787)


def _linear(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        return _LINEAR_FROM_UINT8[rgb]
    return _srgb_to_linear(np.asarray(rgb, dtype=np.float32))


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """H×W×3 sRGB (uint8, or float in [0, 1]) -> float32 Lab with L in [0, 100]."""
    fxyz = _f(_linear(rgb) @ _XYZN_FROM_RGB)
    fx, fy, fz = fxyz[..., 0], fxyz[..., 1], fxyz[..., 2]
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1).astype(np.float32)


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """Only the lightness channel: what colorize keeps at full resolution, at a third of the cost."""
    y = _linear(rgb) @ _XYZN_FROM_RGB[:, 1]
    return (116.0 * _f(y) - 16.0).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float Lab -> float32 sRGB in [0, 1]; out-of-gamut colours are clipped, as scikit-image does."""
    lab = np.asarray(lab, dtype=np.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    # Z's term is floored at 0 before inversion, as scikit-image does (dark, very yellow Lab values).
    fxyz = np.stack([fy + lab[..., 1] / 500.0, fy, np.maximum(fy - lab[..., 2] / 200.0, 0.0)], axis=-1)
    linear = np.clip(_f_inv(fxyz) @ _RGB_FROM_XYZN, 0.0, 1.0)
    rgb = np.where(linear > 0.0031308, 1.055 * linear ** (1 / 2.4) - 0.055, 12.92 * linear)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def lab_to_rgb8(lab: np.ndarray) -> np.ndarray:
    """float Lab -> uint8 sRGB, rounded."""
    return (lab_to_rgb(lab) * 255.0 + 0.5).astype(np.uint8)
