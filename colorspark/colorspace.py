"""sRGB (D65) <-> CIELAB in float32, about as fast as numpy gets on one core, and matching scikit-image.

scikit-image's `rgb2lab`/`lab2rgb` compute in float64 and allocate several full-size temporaries; on multi-megapixel
photos in every executor that dominates preprocessing and colorize. This module uses the same constants as
scikit-image (D65 2° white, its sRGB matrix, its f(t) and sRGB thresholds) in float32, and on the per-image paths
(uint8 in, float32 Lab out; float Lab in, uint8 out) it spends its time in a handful of vectorised passes:

* the image is converted in blocks of `_BLOCK` pixels into preallocated buffers, so the temporaries of a block stay in
  the CPU cache and a 2 MP photo costs no full-size float temporaries;
* the colour-space steps that are linear (Lab -> f-values, XYZ -> RGB, ...) are one 3×3 matrix product each, with the
  white point, the 1/116, 1/500, 1/200 and the table scale folded into the matrices;
* the piecewise CIE f(t) and its inverse are evaluated as ``g(max(t, t0)) + slope·(min(t, t0) - t0)``, with ``t0``
  where scikit-image's two branches meet (a hair from its threshold), which needs no mask or `np.where` (branchy and
  several times slower); max/min take a constant array, not a scalar, as numpy vectorises only the array-array form;
* 8-bit input is decoded from sRGB through a 256-entry table, and 8-bit output (`lab_to_rgb8`) is encoded through a
  2¹⁶ + 1 entry table indexed by the linear value: a float32 power for the sRGB curve would cost more than all the
  other steps together. Float sRGB input and `lab_to_rgb`'s float output use the curve itself.

The tests hold `rgb_to_lab`, `rgb_to_l` and `lab_to_rgb` to scikit-image within 1e-3 (measured: 2e-4) and
`lab_to_rgb8` within one 8-bit level of scikit-image rounded to uint8, on the RGB cube, on photos and on out-of-gamut
Lab. Their time per image is in colorize's per-step split (bench/colorize_bench.py, BENCHMARKS.md §3).
"""

from __future__ import annotations

import functools

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


_F32 = np.float32

# Pixels per block: big enough that the per-block Python overhead is small, small enough that a block's buffers
# (a few times 32768 × 3 × 4 bytes) stay in the L2/L3 cache.
_BLOCK = 32768

_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]], dtype=np.float64)
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])

# Fold the white-point normalisation into the matrices once; they act on rows (pixels) from the right.
_XYZN_FROM_RGB = (_XYZ_FROM_RGB / _WHITE_D65[:, None]).T.astype(np.float32)
_RGB_FROM_XYZN = (_RGB_FROM_XYZ * _WHITE_D65[None, :]).T.astype(np.float32)
_Y_FROM_RGB = _XYZN_FROM_RGB[:, 1].copy()

# CIE f(t) as scikit-image writes it: cbrt(t) above 0.008856, 7.787·t + 16/116 below; and its inverse, f³ above
# 0.2068966, (f - 16/116)/7.787 below. The f-values (fx, fy, fz) and Lab are linear in each other.
_KAPPA = 7.787
_LAB_FROM_F = np.array([[0.0, 500.0, 0.0],
                        [116.0, -500.0, 200.0],
                        [0.0, 0.0, -200.0]], dtype=np.float32)  # L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz)
_F_FROM_LAB = np.array([[1 / 116, 1 / 116, 1 / 116],
                        [1 / 500, 0.0, 0.0],
                        [0.0, 0.0, -1 / 200]], dtype=np.float32)  # minus the 16/116 every f-value has


def _meeting_point(gap, lo: float, hi: float) -> float:
    """Where the two branches of a piecewise curve meet: the root of `gap` in [lo, hi], by bisection in float64."""
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if (gap(mid) > 0) == (gap(lo) > 0):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# scikit-image's branches do not quite meet at its thresholds (they jump by 3e-7 and 4e-8). Joining them where they
# do meet, a hair away, keeps each branch exact and differs from scikit-image by at most that jump between the two
# points, which is what lets `_f_joined` and `_lab_to_linear_block` use max/min instead of a mask.
_T0 = _meeting_point(lambda t: np.cbrt(t) - (_KAPPA * t + 16 / 116), 0.0085, 0.008856)  # 0.0088231
_F0 = _meeting_point(lambda f: f ** 3 - (f - 16 / 116) / _KAPPA, 0.2, 0.206897)  # 0.2066


@functools.cache
def _filled(values: tuple, rows: int) -> np.ndarray:
    """A read-only float32 (rows, len(values)) array whose every row is `values`: the array operand that lets
    `np.maximum`/`np.minimum` use their vectorised array-array loop (against a scalar they run several times slower).
    """
    array = np.empty((rows, len(values)), dtype=np.float32)
    array[...] = values
    array.flags.writeable = False
    return array


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    return np.where(c > 0.0031308, 1.055 * c ** (1 / 2.4) - 0.055, 12.92 * c)


_LINEAR_FROM_UINT8 = _srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)

# Linear RGB -> 8-bit sRGB. Entry i covers linear values in [i, i + 1) / _LUT_SCALE and holds the rounded sRGB level
# of the middle of that interval; the last entry (255) is linear 1.0, to which everything above is clipped. The sRGB
# curve rises at most 12.92 · 255 ≈ 3300 levels per unit of linear light, so an interval spans at most 0.05 level: the
# table is never more than one level from rounding the exact curve, and equal to it but for values within 0.025 level
# of a .5 boundary.
_LUT_SCALE = 65536
_UINT8_FROM_LINEAR = np.floor(
    np.clip(_linear_to_srgb((np.arange(_LUT_SCALE + 1) + 0.5) / _LUT_SCALE), 0.0, 1.0) * 255.0 + 0.5
).astype(np.uint8)
_LUT_INDEX_FROM_XYZN = _RGB_FROM_XYZN * np.float32(_LUT_SCALE)  # a power of two: exact in float32


def _block_starts(n: int) -> tuple[int, range]:
    """The block length for `n` pixels and the start of every block."""
    size = max(1, min(n, _BLOCK))
    return size, range(0, n, size)


def _linear_block(block: np.ndarray, index: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Linear RGB of one (k, 3) block of sRGB into `out`: uint8 by table (`index` is scratch), anything else by the
    sRGB curve on the 0..1 scale."""
    if block.dtype == np.uint8:
        np.copyto(index, block)  # take() wants intp indices; converting here is cheaper than letting it convert
        return _LINEAR_FROM_UINT8.take(index, out=out, mode="clip")
    np.copyto(out, block, casting="unsafe")
    out[...] = _srgb_to_linear(out)
    return out


def _f_joined(t: np.ndarray, low: np.ndarray, work: np.ndarray) -> np.ndarray:
    """CIE f(t) + κ·t0, in place in `t`, without a mask: cbrt(max(t, t0)) + κ·min(t, t0). `low` is t0 filled."""
    np.minimum(t, low, out=work)
    np.maximum(t, low, out=t)
    np.cbrt(t, out=t)
    work *= _F32(_KAPPA)
    t += work
    return t


def _lab_to_linear_block(block: np.ndarray, f: np.ndarray, cube: np.ndarray, out: np.ndarray,
                         matrix: np.ndarray) -> np.ndarray:
    """Linear RGB (times the scale folded into `matrix`) of one (k, 3) float32 block of Lab into `out`; `f` and
    `cube` are scratch. Unclipped: out-of-gamut colours give values outside [0, 1] · scale."""
    rows = len(block)
    np.matmul(block, _F_FROM_LAB, out=f)
    f += _F32(16 / 116)
    # scikit-image floors the Z f-value at 0 before inverting it (dark, very yellow Lab); X and Y are left alone.
    np.maximum(f, _filled((-np.inf, -np.inf, 0.0), _BLOCK)[:rows], out=f)
    # f⁻¹ joined without a mask: max(f, f0)³ + (min(f, f0) - f0)/κ.
    f0 = _filled((_F0,) * 3, _BLOCK)[:rows]
    np.maximum(f, f0, out=out)
    np.multiply(out, out, out=cube)
    cube *= out
    np.minimum(f, f0, out=f)
    f -= _F32(_F0)
    f *= _F32(1 / _KAPPA)
    cube += f
    return np.matmul(cube, matrix, out=out)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert sRGB (D65) to CIELAB, in float32.

    The drop-in for ``skimage.color.rgb2lab`` on the preprocessing and colorize paths: same constants, float32,
    blockwise and without its float64 temporaries (see the module docstring for how and why). It agrees with
    scikit-image within 2e-4 in L, a and b (the most where Y is within 3e-5 of the f(t) threshold, L ≈ 8; the tests
    allow 1e-3), far below the Lab step of one 8-bit level.

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
    rgb = np.asarray(rgb)
    pixels = rgb.reshape(-1, 3)
    lab = np.empty(pixels.shape, dtype=np.float32)
    size, starts = _block_starts(len(pixels))
    index, linear = np.empty((size, 3), dtype=np.intp), np.empty((size, 3), dtype=np.float32)
    f, work = np.empty((size, 3), dtype=np.float32), np.empty((size, 3), dtype=np.float32)
    t0 = _filled((_T0,) * 3, _BLOCK)
    for start in starts:
        block = pixels[start:start + size]
        rows = len(block)
        xyz = np.matmul(_linear_block(block, index[:rows], linear[:rows]), _XYZN_FROM_RGB, out=f[:rows])
        fxyz = _f_joined(xyz, t0[:rows], work[:rows])
        # f(t) is the joined value minus κ·t0; the -16 of L rides along, as the three f-values enter a and b only as
        # differences.
        fxyz -= _F32(_KAPPA * _T0 + 16 / 116)
        np.matmul(fxyz, _LAB_FROM_F, out=lab[start:start + rows])
    return lab.reshape(rgb.shape)


def rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """Only the lightness L* of sRGB colours, in float32.

    L depends on the luminance Y alone, so this skips X, Z, a and b: less than half the cost of `rgb_to_lab`. It is
    what colorize runs on gray inputs, which have no colour to score against. It is within 5e-5 of scikit-image's L
    (the tests allow 1e-3) and equals ``rgb_to_lab(rgb)[..., 0]`` within 1e-4.

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
    rgb = np.asarray(rgb)
    pixels = rgb.reshape(-1, 3)
    lightness = np.empty(len(pixels), dtype=np.float32)
    size, starts = _block_starts(len(pixels))
    index, linear = np.empty((size, 3), dtype=np.intp), np.empty((size, 3), dtype=np.float32)
    work = np.empty(size, dtype=np.float32)
    t0 = _filled((_T0,), _BLOCK)[:, 0]
    for start in starts:
        block = pixels[start:start + size]
        rows = len(block)
        y = np.matmul(_linear_block(block, index[:rows], linear[:rows]), _Y_FROM_RGB,
                      out=lightness[start:start + rows])
        _f_joined(y, t0[:rows], work[:rows])
        y *= _F32(116.0)
        y -= _F32(116.0 * _KAPPA * _T0 + 16.0)
    return lightness.reshape(rgb.shape[:-1])


def gray_to_l(gray: np.ndarray) -> np.ndarray:
    """L* of 8-bit gray pixels (R = G = B = the value), in float32: one lookup in a 256-entry table that `rgb_to_l`
    makes, so it equals `rgb_to_l` on the gray colours exactly, for a tenth of its cost. What colorize runs on
    single-channel inputs (`decode_image(..., keep_gray=True)`)."""
    gray = np.asarray(gray)
    if gray.dtype != np.uint8:
        raise ValueError(f"gray_to_l: expected uint8 gray values, got {gray.dtype}")
    return _gray_lightness()[gray]


@functools.lru_cache(maxsize=1)
def _gray_lightness() -> np.ndarray:
    values = np.arange(256, dtype=np.uint8)
    table = rgb_to_l(np.stack([values] * 3, axis=-1))
    table.setflags(write=False)
    return table


def _lab_blocks(lab, scale_matrix: np.ndarray):
    """Yield (start, linear RGB block) over `lab` flattened to (N, 3), the linear values times the scale folded into
    `scale_matrix` and unclipped; each block is a view into a buffer the next block overwrites."""
    pixels = lab.reshape(-1, 3)
    size, starts = _block_starts(len(pixels))
    as_float32 = None if pixels.dtype == np.float32 else np.empty((size, 3), dtype=np.float32)
    f, cube, linear = (np.empty((size, 3), dtype=np.float32) for _ in range(3))
    for start in starts:
        block = pixels[start:start + size]
        rows = len(block)
        if as_float32 is not None:
            np.copyto(as_float32[:rows], block, casting="unsafe")
            block = as_float32[:rows]
        yield start, _lab_to_linear_block(block, f[:rows], cube[:rows], linear[:rows], scale_matrix)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Convert CIELAB (D65) to sRGB on 0..1, in float32.

    Any Lab triple is accepted, because predicted ab need not be a colour sRGB can show at the given lightness (a
    saturated blue on a bright L, say). Such colours are clipped to the RGB cube channel by channel, as
    ``skimage.color.lab2rgb`` does (including its flooring of the Z f-value at 0 for dark, very yellow Lab), so the
    two agree within 1e-3 everywhere, out of gamut included.

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
    lab = np.asarray(lab)
    rgb = np.empty(lab.shape, dtype=np.float32)
    pixels = rgb.reshape(-1, 3)
    for start, linear in _lab_blocks(lab, _RGB_FROM_XYZN):
        np.clip(linear, 0.0, 1.0, out=linear)
        np.clip(_linear_to_srgb(linear), 0.0, 1.0, out=pixels[start:start + len(linear)])
    return rgb


def lab_to_rgb8(lab: np.ndarray) -> np.ndarray:
    """Convert CIELAB (D65) to 8-bit sRGB: `lab_to_rgb`, scaled to 0..255 and rounded.

    uint8 is what JPEG encoding, thumbnails and the PSNR/SSIM metrics take. The sRGB curve is applied by a table of
    2¹⁶ + 1 entries indexed by the linear value rather than by a float power, which would cost more than all the
    other steps together. Each entry spans at most 0.05 level, so the result is within one level of
    ``np.rint(skimage.color.lab2rgb(lab) * 255)`` everywhere, out of gamut included, and equal to it but for values
    within 0.025 level of a rounding boundary: about 0.1 % of the channels of random Lab, none for the Lab of 8-bit
    colours (which lands on whole levels).

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
    lab = np.asarray(lab)
    rgb = np.empty(lab.shape, dtype=np.uint8)
    pixels = rgb.reshape(-1, 3)
    size = max(1, min(pixels.shape[0], _BLOCK))
    index32, index = np.empty((size, 3), dtype=np.int32), np.empty((size, 3), dtype=np.intp)
    top = _filled((_LUT_SCALE,) * 3, _BLOCK)
    for start, scaled in _lab_blocks(lab, _LUT_INDEX_FROM_XYZN):
        rows = len(scaled)
        # Clip the top here; below 0 take() clips the index to 0, including values under the int32 range and NaN,
        # which the cast makes the most negative int (quietly: that is intended). The cast truncates, which is the
        # floor for every index that is not clipped.
        np.minimum(scaled, top[:rows], out=scaled)
        with np.errstate(invalid="ignore"):
            np.copyto(index32[:rows], scaled, casting="unsafe")
        np.copyto(index[:rows], index32[:rows])  # float -> int32 -> intp is faster than float -> intp
        _UINT8_FROM_LINEAR.take(index[:rows], out=pixels[start:start + rows], mode="clip")
    return rgb
