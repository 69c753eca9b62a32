"""data.balance: each top-level folder gives about the same number of training crops, the splits do not move."""

from __future__ import annotations

import pyarrow as pa
import pytest
from imagefactory import colour_photo, write_image

from colorspark import fs
from colorspark.balance import crops_per_folder, folder_of
from colorspark.config import ConfigError, defaults, load
from colorspark.preprocess_tasks import SUMMARY, Staging, process_batches
from colorspark.splits import TRAIN, split_of

FOLDERS = {"big": 300, "mid": 100, "small": 20}


def _keys() -> list[str]:
    return [f"{folder}/sub/p{i}.jpg" for folder, n in FOLDERS.items() for i in range(n)] + ["loose.jpg"]


def _data(balance: str) -> dict:
    data = defaults()["data"]
    data.update(crops=8, balance=balance)
    return data


def _train_counts(data) -> dict[str, int]:
    counts = {}
    for key in _keys():
        if split_of(key, data["val_fraction"], data["selection_fraction"]) == TRAIN:
            counts[folder_of(key)] = counts.get(folder_of(key), 0) + 1
    return counts


def test_folder_balance_gives_each_folder_about_the_same_training_crops():
    data = _data("folder")
    crops, counts = crops_per_folder(_keys(), data), _train_counts(data)
    assert set(crops) == {"big", "mid", "small", "."}
    per_folder = {f: crops[f] * counts[f] for f in ("big", "mid", "small")}
    assert max(per_folder.values()) / min(per_folder.values()) < 1.2, per_folder
    assert crops["big"] < 8 < crops["small"]
    assert 0.85 < sum(crops[f] * counts[f] for f in counts) / (8 * sum(counts.values())) < 1.15


def test_no_balance_keeps_data_crops_everywhere_and_bad_values_are_refused():
    assert set(crops_per_folder(_keys(), _data("none")).values()) == {8}
    assert folder_of("a/b/c.jpg") == "a" and folder_of("c.jpg") == "."
    with pytest.raises(ConfigError, match="data.balance"):
        load(overrides=["data.balance=domain"])


def test_the_arrow_pass_gives_training_photos_their_folder_crops_and_held_out_ones_data_crops(tmp_path):
    config = defaults()
    config["data"].update(crops=2, val_fraction=0.3, selection_fraction=0.0)
    files = {}
    for i in range(8):
        path = tmp_path / ("few" if i < 2 else "many") / f"p{i}.png"
        write_image(path, colour_photo(72, 64, seed=i))
        files[f"file:{path}"] = None
    batch = pa.RecordBatch.from_pydict({"path": list(files), "content": [None] * len(files)},
                                       schema=pa.schema([("path", pa.string()), ("content", pa.binary())]))
    staging = Staging(fs.to_uri(tmp_path / "stage" / "parquet"), None)
    out = list(process_batches(0, iter([batch]), config, str(tmp_path), staging, {"few": 5, "many": 1}))
    rows = [r for r in pa.Table.from_batches(out).to_pylist() if r["status"] != SUMMARY]
    assert len(rows) == 8 and {r["split"] for r in rows} == {"train", "val"}
    for row in rows:
        expected = 2 if row["split"] != "train" else {"few": 5, "many": 1}[folder_of(row["key"])]
        assert row["crops"] == expected, row
