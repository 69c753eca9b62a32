"""The preprocessing pass without Spark: Arrow batches of files in, Arrow batches of samples plus a summary row out."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow as pa

from colorspark.bins import bin_counts
from colorspark.config import defaults
from colorspark.preprocess import SUMMARY, process_batches, sample_arrow_schema
from imagefactory import colour_photo, write_image


def file_batch(files: dict[str, bytes]) -> pa.RecordBatch:
    """What Spark's binaryFile source hands to mapInArrow (the columns colorspark selects)."""
    return pa.RecordBatch.from_pydict({"path": list(files), "content": list(files.values())})


def test_arrow_pass_yields_samples_errors_and_one_summary(tmp_path):
    config = defaults()
    config["data"].update(crops=3, val_fraction=0.0)
    for i in range(2):
        write_image(tmp_path / f"photo-{i}.png", colour_photo(90, 70, seed=i))
    files = {f"file:{tmp_path}/photo-{i}.png": (tmp_path / f"photo-{i}.png").read_bytes() for i in range(2)}
    files[f"file:{tmp_path}/broken.jpg"] = b"not an image"
    shards = tmp_path / "hdf5"
    shards.mkdir()

    out = list(process_batches(7, iter([file_batch(files)]), config, str(tmp_path), str(shards)))
    assert all(batch.schema.equals(sample_arrow_schema()) for batch in out)
    rows = pa.Table.from_batches(out).to_pylist()

    ok = [r for r in rows if r["status"] == "ok"]
    errors = [r for r in rows if r["status"] == "error"]
    summary = [r for r in rows if r["status"] == SUMMARY]
    assert len(ok) == 2 * 3 and {r["key"] for r in ok} == {"photo-0.png", "photo-1.png"}
    assert [r["key"] for r in errors] == ["broken.jpg"] and errors[0]["error"]
    assert len(summary) == 1 and summary[0]["path"] == "part-00007.h5" and summary[0]["crop"] == len(ok)

    expected = sum(bin_counts(np.frombuffer(r["bins"], np.int16)) for r in ok if r["colorful"])
    np.testing.assert_array_equal(np.frombuffer(summary[0]["bins"], np.int64), expected)
    with h5py.File(shards / "part-00007.h5", "r") as h5:
        assert h5["l"].shape == (len(ok), 64, 64)
        assert [bytes(v) for v in h5["l"][:]] == [r["l"] for r in ok]


def test_arrow_pass_splits_output_into_bounded_batches(tmp_path, monkeypatch):
    import colorspark.preprocess as preprocess

    monkeypatch.setattr(preprocess, "ARROW_ROWS_PER_BATCH", 4)
    config = defaults()
    config["data"]["crops"] = 5
    write_image(tmp_path / "a.png", colour_photo(80, 80, seed=3))
    batch = file_batch({f"file:{tmp_path}/a.png": (tmp_path / "a.png").read_bytes()})
    out = list(process_batches(0, iter([batch]), config, str(tmp_path), None))
    assert [b.num_rows for b in out] == [4, 2]  # 5 crops + the summary row
    assert out[-1].column("path").to_pylist()[-1] == ""  # no shard without hdf5
