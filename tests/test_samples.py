"""colorspark.samples: per-image crop streams, crops, and the compact sample encoding (the split: test_splits.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_pure import smooth_rgb  # noqa: E402
from PIL import Image
from skimage.color import rgb2lab

from colorspark.bins import hard_bins  # noqa: E402
from colorspark.samples import (  # noqa: E402
    L_SCALE,
    OUTPUT_STRIDE,
    crop_rng,
    downsample_ab,
    encode_crop,
    l_code_to_input,
    random_crops,
)

# --- crop streams -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(90, 140, 3), dtype=np.uint8)


def _crops(photo, key, seed, count=5):
    return random_crops(photo, 32, count, 0.5, True, crop_rng(key, seed))


def test_same_key_and_seed_give_the_same_crops(photo):
    a, b = _crops(photo, "a/b.jpg", 7), _crops(photo, "a/b.jpg", 7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_different_seed_or_key_gives_different_crops(photo):
    base = _crops(photo, "a/b.jpg", 7)
    for other in (_crops(photo, "a/b.jpg", 8), _crops(photo, "a/c.jpg", 7)):
        # the first (centre) crop is deterministic; the random ones must differ
        assert np.array_equal(base[0], other[0])
        assert any(not np.array_equal(x, y) for x, y in zip(base[1:], other[1:]))


def test_crop_rng_streams_are_reproducible():
    assert np.array_equal(crop_rng("k", 1).random(8), crop_rng("k", 1).random(8))
    assert not np.array_equal(crop_rng("k", 1).random(8), crop_rng("k", 2).random(8))


# --- crops ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 4])
def test_random_crops_returns_count_uint8_squares(photo, count):
    crops = random_crops(photo, 48, count, 0.6, True, crop_rng("x", 1))
    assert len(crops) == count
    for crop in crops:
        assert crop.shape == (48, 48, 3) and crop.dtype == np.uint8


def _manual_centre_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return np.asarray(Image.fromarray(rgb).crop((left, top, left + side, top + side)).resize((size, size),
                                                                                             Image.BILINEAR))


@pytest.mark.parametrize("hw", [(100, 200), (300, 120), (4000, 60), (60, 4000), (50, 30), (64, 64)])
def test_first_crop_is_the_centre_square_on_noise(hw):
    """On noise any shift of the crop shows; the edge rows may differ because the box resize also samples just outside
    the box (no artificial edge), and Pillow's coefficients round by one level at most inside."""
    rgb = np.random.default_rng(1).integers(0, 256, size=hw + (3,), dtype=np.uint8)
    first = random_crops(rgb, 64, 3, 0.6, True, crop_rng("n", 1))[0]
    diff = np.abs(first.astype(np.int16) - _manual_centre_crop(rgb, 64))
    assert diff[2:-2, 2:-2].max() <= 1


@pytest.mark.parametrize("hw", [(100, 200), (1000, 600), (1600, 1000), (4000, 60), (60, 4000)])
def test_first_crop_is_the_centre_square_on_a_smooth_photo(hw):
    rgb = smooth_rgb(*hw)
    first = random_crops(rgb, 64, 2, 0.6, True, crop_rng("s", 3))[0]
    assert np.abs(first.astype(np.int16) - _manual_centre_crop(rgb, 64)).max() <= 2


def test_first_crop_does_not_depend_on_the_random_stream_and_is_unflipped():
    rgb = smooth_rgb(80, 120)
    firsts = [random_crops(rgb, 40, 3, 0.3, True, crop_rng(f"k{i}", i))[0] for i in range(5)]
    assert all(np.array_equal(firsts[0], f) for f in firsts[1:])
    flipped = firsts[0][:, ::-1]
    assert not np.array_equal(firsts[0], flipped)
    assert np.abs(firsts[0].astype(np.int16) - _manual_centre_crop(rgb, 40)).max() <= 2


def test_flip_false_never_mirrors():
    """With min_scale 1 and a square photo every crop is the whole image: with flip off they are all identical."""
    rgb = smooth_rgb(50, 50)
    crops = random_crops(rgb, 32, 8, 1.0, False, crop_rng("f", 0))
    assert all(np.array_equal(crops[0], c) for c in crops[1:])
    flipping = random_crops(rgb, 32, 8, 1.0, True, crop_rng("f", 0))
    assert any(np.array_equal(flipping[0][:, ::-1], c) for c in flipping[1:])


def test_one_pixel_image():
    rgb = np.array([[[10, 200, 30]]], dtype=np.uint8)
    crops = random_crops(rgb, 16, 3, 0.6, True, crop_rng("p", 1))
    assert len(crops) == 3
    for crop in crops:
        assert crop.shape == (16, 16, 3)
        assert (crop == [10, 200, 30]).all()


@pytest.mark.parametrize("hw", [(4000, 60), (60, 4000)])
def test_extreme_aspect_ratios(hw):
    rgb = smooth_rgb(*hw)
    crops = random_crops(rgb, 64, 4, 0.6, True, crop_rng("thin", 2))
    assert len(crops) == 4
    assert all(c.shape == (64, 64, 3) and c.dtype == np.uint8 for c in crops)
    assert any(not np.array_equal(crops[0], c) for c in crops[1:])  # random positions along the long side


# --- downsampling and encoding ----------------------------------------------------------------------------------------


def test_downsample_ab_is_the_block_mean():
    ab = np.random.default_rng(2).normal(0, 30, size=(16, 24, 2))
    out = downsample_ab(ab)
    assert out.shape == (4, 6, 2) and OUTPUT_STRIDE == 4
    for i in range(4):
        for j in range(6):
            block = ab[4 * i:4 * i + 4, 4 * j:4 * j + 4]
            np.testing.assert_allclose(out[i, j], block.reshape(-1, 2).mean(0), atol=1e-12)
    assert downsample_ab(ab, stride=2).shape == (8, 12, 2)


@pytest.fixture(scope="module")
def colourful_crop() -> np.ndarray:
    rng = np.random.default_rng(3)
    smooth = smooth_rgb(64, 64).astype(np.int16)
    return np.clip(smooth + rng.integers(-20, 21, size=smooth.shape), 0, 255).astype(np.uint8)


def test_encode_crop_dtypes_and_shapes(colourful_crop):
    sample = encode_crop(colourful_crop)
    assert sample["l"].dtype == np.uint8 and sample["l"].shape == (64, 64)
    assert sample["ab"].dtype == np.int8 and sample["ab"].shape == (16, 16, 2)
    assert sample["bins"].dtype == np.int16 and sample["bins"].shape == (16, 16)
    assert isinstance(sample["max_chroma"], float)


def test_encode_crop_l_is_lightness_times_255(colourful_crop):
    reference = rgb2lab(colourful_crop)
    sample = encode_crop(colourful_crop)
    diff = np.abs(sample["l"].astype(np.float64) - reference[..., 0] * L_SCALE)
    assert diff.max() <= 0.5 + 1e-3  # rounded, not truncated
    white_black = encode_crop(np.array([[[255, 255, 255]] * 4, [[0, 0, 0]] * 4] * 2, dtype=np.uint8))["l"]
    assert white_black[0].tolist() == [255] * 4 and white_black[1].tolist() == [0] * 4


def test_encode_crop_ab_is_block_mean_of_skimage_ab(colourful_crop):
    reference = rgb2lab(colourful_crop)[..., 1:]
    expected = reference.reshape(16, 4, 16, 4, 2).mean(axis=(1, 3))
    sample = encode_crop(colourful_crop)
    assert np.abs(sample["ab"].astype(np.float64) - expected).max() <= 1.0
    assert np.abs(sample["ab"]).max() > 20  # the crop really is colourful


def test_encode_crop_bins_are_hard_bins_of_ab(colourful_crop):
    sample = encode_crop(colourful_crop)
    assert np.array_equal(sample["bins"], hard_bins(sample["ab"]))


def test_encode_crop_max_chroma(colourful_crop):
    sample = encode_crop(colourful_crop)
    ab = sample["ab"].astype(np.float64)
    assert sample["max_chroma"] == pytest.approx(np.hypot(ab[..., 0], ab[..., 1]).max(), rel=1e-6)


def test_gray_crop_has_max_chroma_below_one():
    v = np.random.default_rng(4).integers(0, 256, size=(32, 32), dtype=np.uint8)
    gray = np.repeat(v[..., None], 3, axis=-1)
    sample = encode_crop(gray)
    assert sample["max_chroma"] < 1.0
    assert np.abs(sample["ab"]).max() == 0


def test_l_code_to_input_layout():
    code = np.arange(16, dtype=np.uint8).reshape(4, 4)
    x = l_code_to_input(code)
    assert x.shape == (4, 4, 1) and x.dtype == np.float32
    assert np.array_equal(x[..., 0], code.astype(np.float32))


# --- the stored byte layout and the HDF5 shard format --------------------------------------------------------------


def test_encode_sample_bytes_decode_back_to_the_arrays(colourful_crop):
    from colorspark.samples import decode_bins, decode_sample, encode_sample, training_pair

    arrays, stored = encode_crop(colourful_crop), encode_sample(colourful_crop)
    l_code, ab = decode_sample(stored["l"], stored["ab"], 64)
    assert np.array_equal(l_code, arrays["l"]) and np.array_equal(ab, arrays["ab"])
    assert np.array_equal(decode_bins(stored["bins"], 64), arrays["bins"])
    x, y = training_pair(stored["l"], stored["ab"], 64)
    assert x.shape == (64, 64, 1) and x.dtype == np.float32 and np.array_equal(x[..., 0], arrays["l"])
    assert y.dtype == np.int8 and y.shape == (16, 16, 2)


def test_hdf5_shard_round_trips_with_plain_h5py(tmp_path):
    import h5py

    from colorspark.samples import encode_sample, read_shard_pairs, write_shard

    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8) for _ in range(3)]
    samples = [{**encode_sample(c), "crop": i, "split": split, "colorful": colorful, "path": path}
               for i, (c, split, colorful, path) in enumerate(zip(
                   crops, ["train", "val", "train"], [True, True, False], ["a/b.jpg", "Köln/ü ñ.png", "x#?%20.jpg"]))]
    target = tmp_path / "shards" / "part-00000.h5"
    write_shard(str(target), samples, 16)
    assert [p.name for p in target.parent.iterdir()] == ["part-00000.h5"]  # no temporary left
    with h5py.File(target, "r") as h5:
        assert h5["l"].dtype == np.uint8 and h5["l"].shape == (3, 16, 16)
        assert h5["ab"].dtype == np.int8 and h5["bins"].dtype == np.int16
        assert h5["path"].asstr()[()].tolist() == ["a/b.jpg", "Köln/ü ñ.png", "x#?%20.jpg"]
        assert h5.attrs["size"] == 16
    pairs = read_shard_pairs(str(target), "train", size=16)  # colourful train crops only
    assert len(pairs) == 1 and np.array_equal(pairs[0][0][..., 0], encode_crop(crops[0])["l"])
    assert read_shard_pairs(str(target), "val", size=16)[0][1].shape == (4, 4, 2)
