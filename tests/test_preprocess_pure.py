"""The preprocessing pass without Spark: Arrow batches of files in; samples written to the staging folder, and one
small result row per file plus one summary row per partition out."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from imagefactory import colour_photo, write_image

from colorspark import fs
from colorspark.bins import bin_counts
from colorspark.config import defaults
from colorspark.preprocess_tasks import SUMMARY, Staging, process_batches, result_arrow_schema
from colorspark.splits import split_of


def file_batch(files: dict[str, bytes | None]) -> pa.RecordBatch:
    """What Spark's binaryFile source hands to mapInArrow (the columns colorspark selects); None = not read yet."""
    return pa.RecordBatch.from_pydict({"path": list(files), "content": list(files.values())},
                                      schema=pa.schema([("path", pa.string()), ("content", pa.binary())]))


def test_arrow_pass_writes_samples_and_yields_one_row_per_file_and_a_summary(tmp_path):
    config = defaults()
    config["data"].update(crops=3, val_fraction=0.0, selection_fraction=0.0)
    for i in range(2):
        write_image(tmp_path / f"photo-{i}.png", colour_photo(90, 70, seed=i))
    files = {f"file:{tmp_path}/photo-0.png": (tmp_path / "photo-0.png").read_bytes(),
             f"file:{tmp_path}/photo-1.png": None,  # listed through the storage layer: the task reads it
             f"file:{tmp_path}/broken.jpg": b"not an image"}
    staging = Staging(fs.to_uri(tmp_path / "stage" / "parquet"), fs.to_uri(tmp_path / "stage" / "hdf5"))

    out = list(process_batches(7, iter([file_batch(files)]), config, str(tmp_path), staging))
    assert all(batch.schema.equals(result_arrow_schema()) for batch in out)
    rows = pa.Table.from_batches(out).to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    errors = [r for r in rows if r["status"] == "error"]
    summary = [r for r in rows if r["status"] == SUMMARY]
    assert [(r["key"], r["split"], r["crops"]) for r in ok] == [("photo-0.png", "train", 3),
                                                               ("photo-1.png", "train", 3)]
    assert [r["key"] for r in errors] == ["broken.jpg"] and errors[0]["error"]
    assert len(summary) == 1 and summary[0]["path"] == "part-00007.h5" and summary[0]["crops"] == 6

    samples = pq.read_table(tmp_path / "stage" / "parquet" / "split=train" / "part-00007.parquet").to_pylist()
    assert len(samples) == 6 and {s["path"] for s in samples} == set(list(files)[:2])
    assert not (tmp_path / "stage" / "parquet" / "split=val").exists()  # no val rows: no empty part
    expected = sum(bin_counts(np.frombuffer(s["bins"], np.int16)) for s in samples if s["colorful"])
    np.testing.assert_array_equal(np.frombuffer(summary[0]["bins"], np.int64), expected)
    with h5py.File(tmp_path / "stage" / "hdf5" / "part-00007.h5", "r") as h5:
        assert h5["l"].shape == (6, 64, 64)
        assert [bytes(v) for v in h5["l"][:]] == [s["l"] for s in samples]
        assert h5["path"].asstr()[:].tolist() == [s["path"] for s in samples]


def test_arrow_pass_without_hdf5_writes_parquet_in_bounded_batches(tmp_path, monkeypatch):
    import colorspark.preprocess_tasks as tasks

    monkeypatch.setattr(tasks, "ARROW_ROWS_PER_BATCH", 4)
    config = defaults()
    config["data"].update(crops=5, val_fraction=0.0, selection_fraction=0.0)
    write_image(tmp_path / "a.png", colour_photo(80, 80, seed=3))
    batch = file_batch({f"file:{tmp_path}/a.png": (tmp_path / "a.png").read_bytes()})
    staging = Staging(fs.to_uri(tmp_path / "parquet"), None)
    out = pa.Table.from_batches(list(process_batches(0, iter([batch]), config, str(tmp_path), staging)))
    assert out.column("status").to_pylist() == ["ok", SUMMARY]
    assert out.column("path").to_pylist()[-1] == ""  # no shard without hdf5
    part = pq.ParquetFile(tmp_path / "parquet" / "split=train" / "part-00000.parquet")
    assert part.metadata.num_rows == 5 and part.metadata.num_row_groups == 2  # 4 + 1
    assert not (tmp_path / "hdf5").exists()


def test_held_out_photos_are_written_apart_and_left_out_of_the_prior(tmp_path):
    """One photo per split (their keys land there at 0.3 / 0.3): each split gets its own part, and the partition's
    bin counts, from which the driver makes the prior, are those of the training photo's crops alone."""
    config = defaults()
    config["data"].update(crops=2, val_fraction=0.3, selection_fraction=0.3)
    expected_split = {"held-3.png": "train", "held-6.png": "val", "held-0.png": "selection"}
    assert {key: split_of(key, 0.3, 0.3) for key in expected_split} == expected_split
    files = {}
    for i, name in enumerate(expected_split):
        write_image(tmp_path / name, colour_photo(80, 72, seed=10 + i))
        files[f"file:{tmp_path}/{name}"] = (tmp_path / name).read_bytes()
    staging = Staging(fs.to_uri(tmp_path / "stage" / "parquet"), fs.to_uri(tmp_path / "stage" / "hdf5"))

    rows = pa.Table.from_batches(list(process_batches(0, iter([file_batch(files)]), config, str(tmp_path),
                                                      staging))).to_pylist()
    assert {r["key"]: r["split"] for r in rows if r["status"] == "ok"} == expected_split
    for name, split in expected_split.items():
        part = pq.read_table(tmp_path / "stage" / "parquet" / f"split={split}" / "part-00000.parquet").to_pylist()
        assert {r["path"].rsplit("/", 1)[-1] for r in part} == {name} and len(part) == 2
    train = pq.read_table(tmp_path / "stage" / "parquet" / "split=train").to_pylist()
    expected = sum(bin_counts(np.frombuffer(s["bins"], np.int16)) for s in train if s["colorful"])
    summary = [r for r in rows if r["status"] == SUMMARY][0]
    np.testing.assert_array_equal(np.frombuffer(summary["bins"], np.int64), expected)
    assert expected.sum() > 0
    with h5py.File(tmp_path / "stage" / "hdf5" / "part-00000.h5", "r") as h5:
        assert sorted(h5["split"].asstr()[:].tolist()) == ["selection"] * 2 + ["train"] * 2 + ["val"] * 2
