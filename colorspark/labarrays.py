"""The colorized Lab arrays that colorize keeps beside the JPEGs: their encodings and file formats, in one place.

A float32 Lab array costs 12 bytes per pixel, 25× the JPEG, and carries precision that no 8-bit display shows. The
encodings (`output.lab_encoding`) trade that for size:

============  =================================================  ============  ====================================
encoding      array (H×W×3)                                      bytes per MP  largest error against float32
============  =================================================  ============  ====================================
``lab8``      uint8, the ICC 8-bit CIELAB encoding: L·2.55,      3 MB          L 0.196, a and b 0.5 (ΔE ≤ 0.54,
  (default)   a + 128, b + 128 (the training samples' L code)                  well under a just-noticeable 1)
``float16``   float16 L, a, b                                    6 MB          0.031 (half a float16 step at 64..128)
``float32``   float32 L, a, b                                    12 MB         none
============  =================================================  ============  ====================================

`decode` turns any of them back into float32 Lab; by hand, for ``lab8``: ``L = x[..., 0] / 2.55`` and
``ab = x[..., 1:] - 128.0``. The predicted ab of colorspark's models stays inside the bin centres' hull (|a|, |b| ≤
110), so the 8-bit range never clips them.

File formats (`output.lab_format`): ``npy`` (one file per image, `np.load`), ``mat`` (MATLAB: the variable ``lab``
plus ``encoding``; MATLAB's .mat has no half precision, so ``float16`` is refused there), ``hdf5`` (one file per
partition, one dataset per image, its encoding in the dataset's attributes) or ``none``.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from . import __version__, fs
from .paths import join_inside
from .samples import L_SCALE

ENCODINGS = ("lab8", "float16", "float32")
FORMATS = ("npy", "hdf5", "mat", "none")
FILE_EXTENSIONS = {"npy": ".npy", "mat": ".mat"}
AB_OFFSET = 128.0
BYTES_PER_PIXEL = {"lab8": 3, "float16": 6, "float32": 12}
_LAB8_CODING = [(np.float32(scale), np.float32(offset))
                for scale, offset in ((L_SCALE, 0.5), (1.0, AB_OFFSET + 0.5), (1.0, AB_OFFSET + 0.5))]


def check_combination(encoding: str, fmt: str) -> str | None:
    """Why this encoding cannot be written in this format, or None."""
    if fmt == "mat" and encoding == "float16":
        return "MATLAB .mat files have no half precision: use output.lab_encoding = lab8 or float32 with lab_format mat"
    return None


def encode(lab: np.ndarray, encoding: str) -> np.ndarray:
    """Float Lab (H×W×3) -> the array stored for `encoding`."""
    lab = np.asarray(lab, dtype=np.float32)
    if encoding == "float32":
        return lab
    if encoding == "float16":
        return lab.astype(np.float16)
    if encoding == "lab8":
        # Channel by channel (arithmetic broadcast over a last axis of 3 is several times slower): scale or offset,
        # plus 0.5 so that the truncating cast rounds, clipped first so every value is in range.
        stored = np.empty(lab.shape, dtype=np.uint8)
        for channel, (scale, offset) in enumerate(_LAB8_CODING):
            values = lab[..., channel] * scale + offset
            np.clip(values, 0.0, 255.5, out=values)
            stored[..., channel] = values
        return stored
    raise ValueError(f"unknown Lab encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")


def decode(stored: np.ndarray) -> np.ndarray:
    """A stored array (any encoding, told apart by its dtype) -> float32 Lab."""
    stored = np.asarray(stored)
    if stored.dtype == np.uint8:
        lab = stored.astype(np.float32)
        lab[..., 0] /= L_SCALE
        lab[..., 1:] -= AB_OFFSET
        return lab
    return stored.astype(np.float32)


def file_bytes(stored: np.ndarray, fmt: str, encoding: str) -> bytes:
    """One image's encoded array as the bytes of a .npy or MATLAB .mat file."""
    buffer = io.BytesIO()
    if fmt == "npy":
        np.save(buffer, stored)
    elif fmt == "mat":
        from scipy.io import savemat

        savemat(buffer, {"lab": stored, "encoding": encoding}, do_compression=True)
    else:
        raise ValueError(f"no single-image file for Lab format {fmt!r}")
    return buffer.getvalue()


def write_array(lab: np.ndarray, name: str, folder: str, fmt: str, encoding: str, h5file=None) -> str | None:
    """One image's Lab array stored in `encoding`, through the storage layer: as dataset `name` of `h5file` (an
    `Hdf5LabFile`) for hdf5, else as the file `folder`/`name` plus the format's extension, written atomically.
    Returns where it went as the results name it (``file.h5:/name`` for a dataset), or None for the format none."""
    if fmt == "none":
        return None
    stored = encode(lab, encoding)
    if fmt == "hdf5":
        h5file.add(name, stored)
        return f"{fs.display(h5file.uri)}:/{name}"
    target = join_inside(folder, name + FILE_EXTENSIONS[fmt])
    fs.write_bytes(target, file_bytes(stored, fmt, encoding))
    return fs.display(target)


class Hdf5LabFile:
    """One partition's Lab arrays in one HDF5 file: written as they come to a local file, published through the
    storage layer only when the partition is complete (`close`), so a reader never sees half a partition."""

    def __init__(self, uri: str, encoding: str):
        self.uri, self.encoding, self.h5 = uri, encoding, None
        self._stack = contextlib.ExitStack()

    def add(self, name: str, stored: np.ndarray) -> None:
        if self.h5 is None:
            import h5py

            local = self._stack.enter_context(fs.local_file_for(self.uri, ".h5"))
            self.h5 = h5py.File(local, "w")
            self.h5.attrs["colorspark_version"] = __version__
        dataset = self.h5.create_dataset(name, data=stored, compression="gzip", compression_opts=1)
        dataset.attrs["encoding"] = self.encoding

    def close(self, failed: bool = False) -> None:
        """Publish the file, or with `failed` drop it."""
        if self.h5 is not None:
            self.h5.close()
        error = RuntimeError("partition failed") if failed else None
        self._stack.__exit__(type(error) if error else None, error, None)
