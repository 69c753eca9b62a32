"""Lab array encodings and files: the error each encoding promises, and files that plain numpy, scipy and h5py read."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest
from imagefactory import colour_photo
from scipy.io import loadmat

from colorspark import fs, labarrays
from colorspark.colorspace import rgb_to_lab
from colorspark.config import ConfigError, load


def _random_lab(seed=0, shape=(50, 70)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.dstack([rng.uniform(0, 100, shape), rng.uniform(-110, 110, (*shape, 2))]).astype(np.float32)


@pytest.mark.parametrize("encoding, max_l, max_ab", [("lab8", 0.5 / 2.55, 0.5), ("float16", 0.0313, 0.0313),
                                                     ("float32", 0.0, 0.0)])
def test_each_encoding_keeps_its_promised_error(encoding, max_l, max_ab):
    for lab in (_random_lab(), rgb_to_lab(colour_photo(64, 48, seed=3))):
        stored = labarrays.encode(lab, encoding)
        assert stored.nbytes == labarrays.BYTES_PER_PIXEL[encoding] * lab.shape[0] * lab.shape[1]
        back = labarrays.decode(stored)
        assert back.dtype == np.float32
        assert np.abs(back[..., 0] - lab[..., 0]).max() <= max_l + 1e-6
        assert np.abs(back[..., 1:] - lab[..., 1:]).max() <= max_ab + 1e-6


def test_lab8_is_the_icc_8bit_layout():
    lab = np.array([[[100.0, -128.0, 127.0], [0.0, 0.0, 0.0], [50.0, 10.4, -10.6]]], np.float32)
    np.testing.assert_array_equal(labarrays.encode(lab, "lab8"), [[[255, 0, 255], [0, 128, 128], [128, 138, 117]]])


def test_npy_and_mat_files_load_with_numpy_and_scipy():
    lab = _random_lab(1, (9, 13))
    stored = labarrays.encode(lab, "lab8")
    np.testing.assert_array_equal(np.load(io.BytesIO(labarrays.file_bytes(stored, "npy", "lab8"))), stored)
    mat = loadmat(io.BytesIO(labarrays.file_bytes(stored, "mat", "lab8")))
    np.testing.assert_array_equal(mat["lab"], stored)
    assert mat["encoding"] == "lab8"


def test_hdf5_file_appears_only_complete_and_records_the_encoding(tmp_path):
    uri = fs.to_uri(tmp_path / "part-1.h5")
    h5lab = labarrays.Hdf5LabFile(uri, "float16")
    stored = labarrays.encode(_random_lab(2, (5, 6)), "float16")
    h5lab.add("sub/photo", stored)
    assert not (tmp_path / "part-1.h5").exists()
    h5lab.close()
    with h5py.File(tmp_path / "part-1.h5", "r") as h5:
        np.testing.assert_array_equal(h5["sub/photo"][()], stored)
        assert h5["sub/photo"].attrs["encoding"] == "float16"
    failed = labarrays.Hdf5LabFile(fs.to_uri(tmp_path / "part-2.h5"), "lab8")
    failed.add("x", stored)
    failed.close(failed=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-1.h5"]


def test_config_refuses_half_precision_in_matlab_files():
    assert load()["output"]["lab_encoding"] == "lab8"
    with pytest.raises(ConfigError, match="half precision"):
        load(overrides=["output.lab_format=mat", "output.lab_encoding=float16"])
    with pytest.raises(ConfigError, match="half precision"):  # a job's own flags are checked the same way
        load(overrides=["output.lab_encoding=float16"], flags={"output": {"lab_format": "mat"}})
