"""Which split a photo belongs to: training, validation or selection, from a hash of its path.

Two held-out splits, because a figure that was used to choose something is no longer an honest estimate of it: the
**validation** split is only reported on, the **selection** split is the one to choose checkpoints, temperatures
and rendering settings on. Neither is ever trained on: preprocess writes each split's samples apart and takes the
colour prior from the training split alone; the train job fits on ``train`` and reports on ``val``; and
bench/quality.py, which scores the held-out photos at full resolution, picks them with this same function, so it
can neither miss a held-out photo nor score a training one.

The split depends only on the key (the path relative to the input root, as `paths.relative_output_path` makes it)
and the two fractions, so it is the same on every run and machine, whatever the partitioning. A hash of the key is
read as a number in [0, 1): validation takes [0, val_fraction), selection the next selection_fraction. Adding or
growing the selection split therefore never moves a validation photo, and a larger validation fraction only moves
photos into validation (the smaller split is contained in the larger).
"""

from __future__ import annotations

import hashlib

TRAIN = "train"
VALIDATION = "val"  # the name the stored datasets use (parquet/split=val/, the HDF5 split column, the manifest)
SELECTION = "selection"
SPLITS = (TRAIN, VALIDATION, SELECTION)


def split_of(key: str, val_fraction: float, selection_fraction: float) -> str:
    """The split of the photo at `key` (its path relative to the input root): `VALIDATION`, `SELECTION` or `TRAIN`.

    The fractions are shares of the photos (``data.val_fraction`` and ``data.selection_fraction``); the rest is
    training. The key's SHA-1 is read as a number in [0, 1) (its first 8 bytes over 2⁶⁴), so the shares hold for
    any large set of names, and the answer is stable across runs, machines and Python versions.
    """
    bucket = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64
    if bucket < val_fraction:
        return VALIDATION
    if bucket < val_fraction + selection_fraction:
        return SELECTION
    return TRAIN
