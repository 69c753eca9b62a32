"""sRGB (D65) <-> CIELAB in float32.

scikit-image's `rgb2lab`/`lab2rgb` compute in float64 and allocate several full-size temporaries; on multi-megapixel
photos in every executor that dominates preprocessing. This module uses the same constants as scikit-image
(D65 2° white, its sRGB matrix and its f(t) threshold) in float32, with a 256-entry table for the sRGB decoding of
8-bit input, and the tests hold it to scikit-image within 1e-3.
"""

from __future__ import annotations

import numpy as np

# How the shape checks describe what they want; the leading axes are free wherever only the last one is checked.
_RGB_ANY = "an H×W×3 array (any shape ending in 3)"
_LAB_ANY = "an H×W×3 Lab array (any shape ending in 3)"


def _check_shape(
    func: str, value, expected: str, *, last: int, ndim: int | None = None, arg: str | None = None
) -> None:
    """Raise ValueError unless `value` has a last axis of length `last` (and exactly `ndim` axes when given).

    The one shape check of colorspace, bins and metrics, so every public function words the error the same way and
    names itself, the argument (`arg`, for functions with several arrays) and the shape it got. It reads the shape
    only: an ndarray is neither converted nor copied, which keeps it negligible on the per-image paths.
    """
    shape = np.shape(value)
    if not shape or shape[-1] != last or (ndim is not None and len(shape) != ndim):
        what = f"{arg} as {expected}" if arg else expected
        raise ValueError(f"{func} expects {what}, got shape {shape}")


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
    """Convert sRGB (D65) to CIELAB, in float32.

    The drop-in for ``skimage.color.rgb2lab`` on the preprocessing and colorize paths: same constants, within 1e-3 of
    it, but float32 and without its float64 temporaries (see the module docstring for why that matters).

    Parameters
    ----------
    rgb : (..., 3) ndarray
        sRGB colours, usually an H×W×3 image; the leading axes are free (an N×3 list of colours or a batch works too).
        uint8 is read on 0..255 through a 256-entry table, the fast path for decoded photos. Any other dtype is cast to
        float32 and read on the 0..1 scale, so 16-bit or other integer images must be scaled to [0, 1] first; float
        values outside [0, 1] are extrapolated along the sRGB curve, not clipped.

    Returns
    -------
    lab : (..., 3) ndarray of float32
        L*, a*, b*, same shape as `rgb`. L lies in [0, 100]; for sRGB colours a lies in about [-86, 98] and b in
        about [-108, 95], well inside the int8 range the samples store ab in.

    Raises
    ------
    ValueError
        If the last axis of `rgb` does not have length 3.
    """
    _check_shape("rgb_to_lab", rgb, _RGB_ANY, last=3)
    fxyz = _f(_linear(rgb) @ _XYZN_FROM_RGB)
    fx, fy, fz = fxyz[..., 0], fxyz[..., 1], fxyz[..., 2]
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1).astype(np.float32)


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """Only the lightness L* of sRGB colours, in float32.

    L depends on the luminance Y alone, so this skips X, Z, a and b: about a third of the cost of `rgb_to_lab`. It is
    what colorize runs on gray inputs, which have no colour to score against, and it equals ``rgb_to_lab(rgb)[..., 0]``
    within 1e-4.

    Parameters
    ----------
    rgb : (..., 3) ndarray
        sRGB colours, usually an H×W×3 image, read as in `rgb_to_lab` (uint8 on 0..255, anything else as float on
        0..1).

    Returns
    -------
    l : (...) ndarray of float32
        L* in [0, 100], with the shape of `rgb` minus its last axis.

    Raises
    ------
    ValueError
        If the last axis of `rgb` does not have length 3.
    """
    _check_shape("rgb_to_l", rgb, _RGB_ANY, last=3)
    y = _linear(rgb) @ _XYZN_FROM_RGB[:, 1]
    return (116.0 * _f(y) - 16.0).astype(np.float32)


def _lab_to_rgb(lab) -> np.ndarray:
    lab = np.asarray(lab, dtype=np.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    # Z's term is floored at 0 before inversion, as scikit-image does (dark, very yellow Lab values).
    fxyz = np.stack([fy + lab[..., 1] / 500.0, fy, np.maximum(fy - lab[..., 2] / 200.0, 0.0)], axis=-1)
    linear = np.clip(_f_inv(fxyz) @ _RGB_FROM_XYZN, 0.0, 1.0)
    rgb = np.where(linear > 0.0031308, 1.055 * linear ** (1 / 2.4) - 0.055, 12.92 * linear)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Convert CIELAB (D65) to sRGB on 0..1, in float32.

    Any Lab triple is accepted, because predicted ab need not be a colour sRGB can show at the given lightness (a
    saturated blue on a bright L, say). Such colours are clipped to the RGB cube channel by channel, as
    ``skimage.color.lab2rgb`` does, so the two agree within 1e-3 everywhere, out of gamut included.

    Parameters
    ----------
    lab : (..., 3) array_like
        L*, a*, b*, usually an H×W×3 image; the leading axes are free. Any real dtype (cast to float32). L is nominally
        in [0, 100] and a, b in about [-128, 127]; values outside are clipped like any out-of-gamut colour (a neutral
        L above 100 gives white, below 0 black).

    Returns
    -------
    rgb : (..., 3) ndarray of float32
        sRGB in [0, 1], same shape as `lab`.

    Raises
    ------
    ValueError
        If the last axis of `lab` does not have length 3.
    """
    _check_shape("lab_to_rgb", lab, _LAB_ANY, last=3)
    return _lab_to_rgb(lab)


def lab_to_rgb8(lab: np.ndarray) -> np.ndarray:
    """Convert CIELAB (D65) to 8-bit sRGB: `lab_to_rgb`, scaled to 0..255 and rounded.

    uint8 is what JPEG encoding, thumbnails and the PSNR/SSIM metrics take. Rounding is half up, so it matches
    ``np.rint`` of scikit-image's result except on exact .5 ties.

    Parameters
    ----------
    lab : (..., 3) array_like
        L*, a*, b*, as for `lab_to_rgb`.

    Returns
    -------
    rgb : (..., 3) ndarray of uint8
        sRGB on 0..255, same shape as `lab`; out-of-gamut colours are clipped as in `lab_to_rgb`.

    Raises
    ------
    ValueError
        If the last axis of `lab` does not have length 3.
    """
    _check_shape("lab_to_rgb8", lab, _LAB_ANY, last=3)
    return (_lab_to_rgb(lab) * 255.0 + 0.5).astype(np.uint8)
