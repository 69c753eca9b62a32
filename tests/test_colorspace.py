"""colorspark.colorspace against scikit-image's float64 reference (same D65 constants).

Bounds: Lab and float sRGB within 1e-3 of scikit-image (TOL; one 8-bit level moves L by 0.1 or more and a, b by
more still, so this is far inside a level); 8-bit sRGB within one level of scikit-image's float result rounded to
uint8, on the RGB cube, the gray axis, scikit-image's photos and out-of-gamut Lab.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers_pure import all_rgb_levels, grid_levels  # noqa: E402
from skimage import data
from skimage.color import lab2rgb, rgb2lab

from colorspark import colorspace
from colorspark.colorspace import gray_to_l, lab_to_rgb, lab_to_rgb8, rgb_to_l, rgb_to_lab  # noqa: E402

TOL = 1e-3


def _sk_lab2rgb(lab: np.ndarray) -> np.ndarray:
    """skimage's lab2rgb without its 'negative Z values clipped' warning (out-of-gamut input is intended here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return lab2rgb(np.asarray(lab, dtype=np.float64))


def _sk_rgb8(lab: np.ndarray) -> np.ndarray:
    """scikit-image's 8-bit sRGB: lab2rgb rounded to the nearest level, as int16 for differences."""
    return np.rint(_sk_lab2rgb(lab) * 255.0).astype(np.int16)


def _levels_off(ours: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """|lab_to_rgb8 - scikit-image rounded| in levels, per channel."""
    assert ours.dtype == np.uint8 and ours.shape == np.shape(lab)
    return np.abs(ours.astype(np.int16) - _sk_rgb8(lab))


PHOTOS = ["astronaut", "chelsea", "coffee", "rocket"]


@pytest.fixture(scope="module", params=PHOTOS)
def photo(request) -> np.ndarray:
    """A photo that ships with scikit-image, H×W×3 uint8."""
    rgb = getattr(data, request.param)()
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    return rgb


@pytest.fixture(scope="module")
def cube_grid() -> np.ndarray:
    """All colours of a 64-level grid of the 8-bit RGB cube (step 4, plus 255): 65³ = 274,625 colours."""
    rgb = all_rgb_levels(grid_levels(4))
    assert rgb.shape == (1, 65 ** 3, 3) and rgb.dtype == np.uint8
    return rgb


# --- sRGB -> Lab ------------------------------------------------------------------------------------------------------


def test_rgb_to_lab_matches_skimage_on_cube_grid(cube_grid):
    ours = rgb_to_lab(cube_grid)
    assert ours.shape == cube_grid.shape
    assert np.abs(ours - rgb2lab(cube_grid)).max() < TOL


def test_rgb_to_l_matches_skimage_on_cube_grid(cube_grid):
    assert np.abs(rgb_to_l(cube_grid) - rgb2lab(cube_grid)[..., 0]).max() < TOL


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rgb_to_lab_matches_skimage_on_random_uint8_images(seed):
    rgb = np.random.default_rng(seed).integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    assert np.abs(rgb_to_lab(rgb) - rgb2lab(rgb)).max() < TOL
    assert np.abs(rgb_to_l(rgb) - rgb2lab(rgb)[..., 0]).max() < TOL


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_input_in_unit_range_matches_skimage(dtype):
    rgb = np.random.default_rng(3).random((41, 29, 3)).astype(dtype)
    rgb[0, :8] = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]]
    reference = rgb2lab(rgb.astype(np.float64))
    assert np.abs(rgb_to_lab(rgb) - reference).max() < TOL
    assert np.abs(rgb_to_l(rgb) - reference[..., 0]).max() < TOL


def test_uint8_and_equivalent_float_input_agree():
    rgb = np.random.default_rng(4).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    assert np.abs(rgb_to_lab(rgb) - rgb_to_lab(rgb / 255.0)).max() < TOL


def test_known_values_of_white_black_and_gray():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [119, 119, 119]]], dtype=np.uint8)
    lab = rgb_to_lab(rgb)
    assert abs(lab[0, 0, 0] - 100.0) < TOL
    np.testing.assert_allclose(lab[0, 1], [0.0, 0.0, 0.0], atol=TOL)
    # neutral colours have (almost) no chroma: scikit-image's matrix leaves about 0.005 on white
    assert np.hypot(lab[0, [0, 2], 1], lab[0, [0, 2], 2]).max() < 0.01
    assert 49.5 < lab[0, 2, 0] < 50.5  # sRGB 119 is mid-gray (L ≈ 50)


def test_rgb_to_l_equals_first_channel_of_rgb_to_lab(cube_grid):
    np.testing.assert_allclose(rgb_to_l(cube_grid), rgb_to_lab(cube_grid)[..., 0], rtol=0, atol=1e-4)
    floats = np.random.default_rng(5).random((9, 11, 3))
    np.testing.assert_allclose(rgb_to_l(floats), rgb_to_lab(floats)[..., 0], rtol=0, atol=1e-4)


def test_corners_and_whole_gray_axis_match_skimage():
    """The 8 corners of the cube and all 256 grays, where L spans 0..100 and the f(t) branches both occur."""
    corners = all_rgb_levels(np.array([0, 255]))
    gray = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)[None]
    for rgb in (corners, gray):
        reference = rgb2lab(rgb)
        assert np.abs(rgb_to_lab(rgb) - reference).max() < TOL
        assert np.abs(rgb_to_l(rgb) - reference[..., 0]).max() < TOL


def test_gray_to_l_is_rgb_to_l_of_the_gray_colours_and_matches_skimage():
    values = np.arange(256, dtype=np.uint8)
    gray_rgb = np.stack([values] * 3, axis=-1)
    np.testing.assert_array_equal(gray_to_l(values), rgb_to_l(gray_rgb))
    np.testing.assert_allclose(gray_to_l(values), rgb2lab(gray_rgb[None])[0, :, 0], atol=1e-3)
    image = np.random.default_rng(3).integers(0, 256, (37, 53), dtype=np.uint8)
    np.testing.assert_array_equal(gray_to_l(image), rgb_to_l(np.repeat(image[..., None], 3, axis=-1)))
    assert gray_to_l(image).dtype == np.float32 and gray_to_l(image).shape == (37, 53)
    with pytest.raises(ValueError, match="uint8"):
        gray_to_l(image.astype(np.float32))

def test_rgb_to_lab_and_l_match_skimage_on_photos(photo):
    reference = rgb2lab(photo)
    lab = rgb_to_lab(photo)
    assert lab.dtype == np.float32 and lab.shape == photo.shape
    assert np.abs(lab - reference).max() < TOL
    assert np.abs(rgb_to_l(photo) - reference[..., 0]).max() < TOL


def test_float_input_on_cube_grid_matches_skimage(cube_grid):
    """The float path (sRGB curve instead of the 256-entry table) on the same 65³ colours."""
    rgb = cube_grid / 255.0
    reference = rgb2lab(rgb)
    assert np.abs(rgb_to_lab(rgb) - reference).max() < TOL
    assert np.abs(rgb_to_l(rgb.astype(np.float32)) - reference[..., 0]).max() < TOL


def test_branch_joins_are_where_skimage_branches_meet():
    """The mask-free f(t) and f⁻¹ switch branches where scikit-image's two branches meet, close to its thresholds."""
    t0, f0 = colorspace._T0, colorspace._F0
    assert abs(np.cbrt(t0) - (7.787 * t0 + 16 / 116)) < 1e-12 and abs(t0 - 0.008856) < 1e-4
    assert abs(f0 ** 3 - (f0 - 16 / 116) / 7.787) < 1e-12 and abs(f0 - 0.2068966) < 1e-3


# --- Lab -> sRGB ------------------------------------------------------------------------------------------------------


def test_lab_to_rgb_matches_skimage_on_in_gamut_colours(cube_grid):
    lab = rgb2lab(cube_grid)
    assert np.abs(lab_to_rgb(lab) - _sk_lab2rgb(lab)).max() < TOL


def test_lab_to_rgb8_matches_rounded_skimage(cube_grid):
    lab = rgb2lab(cube_grid)
    ours = lab_to_rgb8(lab).astype(np.int16)
    reference = np.rint(_sk_lab2rgb(lab) * 255.0).astype(np.int16)
    diff = np.abs(ours - reference)
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.999  # only exact .5 ties may round differently


def test_lab_round_trip_returns_the_same_uint8_colours(cube_grid):
    back = lab_to_rgb8(rgb_to_lab(cube_grid))
    assert back.dtype == np.uint8
    assert np.abs(back.astype(np.int16) - cube_grid).max() <= 1


@pytest.mark.parametrize("seed", [0, 1])
def test_lab_round_trip_of_random_images(seed):
    rgb = np.random.default_rng(seed).integers(0, 256, size=(32, 48, 3), dtype=np.uint8)
    assert np.abs(lab_to_rgb8(rgb_to_lab(rgb)).astype(np.int16) - rgb).max() <= 1


def _random_lab(seed: int, n: int = 40_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(0, 100, n), rng.uniform(-128, 127, n), rng.uniform(-128, 127, n)], -1)


def _out_of_gamut(lab: np.ndarray) -> np.ndarray:
    """Mask of Lab values whose unclipped sRGB lies outside the unit cube (skimage's XYZ, without its clipping)."""
    from skimage.color.colorconv import rgb_from_xyz

    fy = (lab[:, 0] + 16) / 116
    f = np.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], -1)
    xyz = np.where(f > 0.2068966, f ** 3, (f - 16 / 116) / 7.787) * [0.95047, 1.0, 1.08883]
    linear = xyz @ rgb_from_xyz.T
    return ((linear < 0) | (linear > 1)).any(-1)


def test_out_of_gamut_lab_with_nonnegative_z_is_clipped_like_skimage():
    lab = _random_lab(6)
    fz = (lab[:, 0] + 16) / 116 - lab[:, 2] / 200
    lab = lab[(fz >= 0) & _out_of_gamut(lab)][None]
    assert lab.shape[1] > 10_000  # most of the Lab box is outside sRGB
    ours = lab_to_rgb(lab)
    assert ours.min() >= 0.0 and ours.max() <= 1.0
    assert np.abs(ours - _sk_lab2rgb(lab)).max() < TOL


def test_out_of_gamut_lab_with_negative_z_is_clipped_like_skimage():
    """Dark, strongly yellow Lab (b > 200·(L + 16)/116, e.g. predictions in shadows): skimage clamps the Z
    f-value at 0 before inverting it; the result must agree with skimage as the module documents."""
    lab = _random_lab(7)
    fz = (lab[:, 0] + 16) / 116 - lab[:, 2] / 200
    lab = lab[fz < 0][None]
    assert lab.shape[1] > 1_000
    fixed = np.array([[[30.0, 0.0, 127.0], [0.0, 0.0, 100.0], [10.0, -50.0, 120.0]]])
    for sample in (lab, fixed):
        ours = lab_to_rgb(sample)
        assert ours.min() >= 0.0 and ours.max() <= 1.0
        assert np.abs(ours - _sk_lab2rgb(sample)).max() < TOL


def test_lab_to_rgb8_of_extreme_lab_stays_in_range_and_saturates():
    lab = np.array([[[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [120.0, 0.0, 0.0], [-5.0, 0.0, 0.0], [50.0, 127.0, 0.0]]])
    rgb = lab_to_rgb8(lab)
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() == [0, 0, 0]
    assert rgb[0, 2].tolist() == [255, 255, 255]  # brighter than white clips to white, not wraps around
    assert rgb[0, 3].tolist() == [0, 0, 0]
    assert rgb[0, 4, 0] == 255  # saturated red stays saturated


def test_lab_to_rgb8_matches_rounded_skimage_on_photos(photo):
    """The Lab of real photos converts back to scikit-image's 8-bit colours; with the ab smoothed and scaled, as a
    prediction would be, no value lands on a level any more and the table is still within one level."""
    lab = rgb2lab(photo)
    assert _levels_off(lab_to_rgb8(lab), lab).max() == 0
    predicted = lab.copy()
    predicted[..., 1:] = 1.3 * (predicted[..., 1:] + np.roll(predicted[..., 1:], 1, axis=1)) / 2 + 0.37
    diff = _levels_off(lab_to_rgb8(predicted.astype(np.float32)), predicted.astype(np.float32))
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.995


def test_lab_to_rgb8_of_random_lab_is_within_one_level_of_skimage():
    """L in [0, 100], a and b in [-110, 110]: in and (mostly) out of gamut, both clipped like scikit-image."""
    rng = np.random.default_rng(8)
    n = 300_000
    lab = np.stack([rng.uniform(0, 100, n), rng.uniform(-110, 110, n), rng.uniform(-110, 110, n)], -1)[None]
    assert _out_of_gamut(lab[0]).mean() > 0.5
    for values in (lab, lab.astype(np.float32)):
        diff = _levels_off(lab_to_rgb8(values), values)
        assert diff.max() <= 1
        assert (diff == 0).mean() > 0.995  # the table differs only within 0.025 level of a rounding boundary


def test_lab_to_rgb8_of_out_of_gamut_lab_is_within_one_level_of_skimage():
    """Both clipping cases of the out-of-gamut tests above (Z f-value >= 0 and < 0), as 8-bit sRGB."""
    lab = _random_lab(9)
    fz = (lab[:, 0] + 16) / 116 - lab[:, 2] / 200
    for sample in (lab[(fz >= 0) & _out_of_gamut(lab)][None], lab[fz < 0][None]):
        assert _levels_off(lab_to_rgb8(sample), sample).max() <= 1


def test_lab_to_rgb8_along_the_gray_axis_is_within_one_level_of_skimage():
    """Neutral Lab at 200,001 lightnesses from 0 to 100 walks the whole sRGB table, steep dark end included."""
    lab = np.zeros((1, 200_001, 3))
    lab[0, :, 0] = np.linspace(0.0, 100.0, lab.shape[1])
    diff = _levels_off(lab_to_rgb8(lab), lab)
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.995


def test_lab_to_rgb8_of_far_out_of_range_lab_clips_like_skimage():
    """Values far beyond any prediction still clip to the cube's faces (no integer overflow in the table index)."""
    lab = np.array([[[1e4, 0, 0], [-1e4, 0, 0], [50, 1e4, 0], [50, -1e4, 0], [50, 0, 1e4], [50, 0, -1e4],
                     [3e3, -2e3, 2e3], [100, 128, -128], [0, -128, 127]]])
    assert _levels_off(lab_to_rgb8(lab), lab).max() <= 1
    assert lab_to_rgb8(lab)[0, 0].tolist() == [255, 255, 255]


def test_results_do_not_depend_on_the_block_size(monkeypatch, cube_grid):
    """The conversions run in blocks of _BLOCK pixels; a tiny block with a ragged last block gives the same result."""
    rgb = cube_grid[:, :5_000]
    lab = rgb2lab(rgb)
    expected = [rgb_to_lab(rgb), rgb_to_l(rgb), rgb_to_lab(rgb / 255.0), lab_to_rgb(lab), lab_to_rgb8(lab),
                lab_to_rgb8(lab.astype(np.float32))]
    monkeypatch.setattr(colorspace, "_BLOCK", 7)
    got = [rgb_to_lab(rgb), rgb_to_l(rgb), rgb_to_lab(rgb / 255.0), lab_to_rgb(lab), lab_to_rgb8(lab),
           lab_to_rgb8(lab.astype(np.float32))]
    for ours, reference in zip(got, expected):
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)


def test_non_contiguous_input_is_read_correctly():
    """A crop (a strided view) converts like its contiguous copy."""
    rgb = np.random.default_rng(10).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    crop = rgb[5:35:2, 10:50]
    np.testing.assert_array_equal(rgb_to_lab(crop), rgb_to_lab(crop.copy()))
    np.testing.assert_array_equal(rgb_to_l(crop), rgb_to_l(crop.copy()))
    lab = rgb_to_lab(rgb)[::3, 1::2]
    np.testing.assert_array_equal(lab_to_rgb8(lab), lab_to_rgb8(lab.copy()))


# --- dtypes and shapes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rgb", [
    np.zeros((4, 5, 3), np.uint8),
    np.zeros((4, 5, 3), np.float64),
    np.zeros((4, 5, 3), np.float32),
    np.zeros((2, 4, 5, 3), np.uint8),
], ids=["uint8", "float64", "float32", "batch-uint8"])
def test_output_dtypes_are_float32_and_shapes_kept(rgb):
    lab = rgb_to_lab(rgb)
    assert lab.dtype == np.float32 and lab.shape == rgb.shape
    l_only = rgb_to_l(rgb)
    assert l_only.dtype == np.float32 and l_only.shape == rgb.shape[:-1]
    back = lab_to_rgb(lab.astype(np.float64))
    assert back.dtype == np.float32 and back.shape == rgb.shape
    back8 = lab_to_rgb8(lab)
    assert back8.dtype == np.uint8 and back8.shape == rgb.shape


def test_single_colours_and_colour_lists_are_accepted():
    """Only the last axis is checked: a single colour (3,) and an N×3 list convert like a 1×1 or 1×N image."""
    rgb = np.array([[255, 0, 0], [0, 128, 255]], np.uint8)
    np.testing.assert_array_equal(rgb_to_lab(rgb), rgb_to_lab(rgb[None])[0])
    np.testing.assert_array_equal(rgb_to_lab(rgb[0]), rgb_to_lab(rgb[None, :1])[0, 0])
    np.testing.assert_array_equal(rgb_to_l(rgb), rgb_to_l(rgb[None])[0])
    lab = rgb_to_lab(rgb)
    np.testing.assert_array_equal(lab_to_rgb8(lab), rgb)
    np.testing.assert_array_equal(lab_to_rgb(lab.tolist()), lab_to_rgb(lab))  # array_like, as documented


# --- shape checks -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("func", [rgb_to_lab, rgb_to_l, lab_to_rgb, lab_to_rgb8], ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(4, 4), (4, 5, 4), (4, 5, 1), (3, 4, 5), (2,), ()], ids=str)
def test_wrong_shape_is_rejected_naming_function_and_shape(func, shape):
    dtype = np.uint8 if func in (rgb_to_lab, rgb_to_l) else np.float32
    with pytest.raises(ValueError) as raised:
        func(np.zeros(shape, dtype))
    message = str(raised.value)
    assert message.startswith(f"{func.__name__} expects an H×W×3 "), message
    assert message.endswith(f"got shape {shape}"), message


def test_shape_message_matches_the_documented_example():
    with pytest.raises(ValueError, match=r"^rgb_to_lab expects an H×W×3 array .*, got shape \(4, 4\)$"):
        rgb_to_lab(np.zeros((4, 4), np.uint8))
