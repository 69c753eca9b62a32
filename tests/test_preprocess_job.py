"""jobs/preprocess.py end to end on local[2], checked with pyarrow and h5py alone (no Spark on the reading side)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from imagefactory import colour_photo, make_image_zoo, write_image

pytestmark = pytest.mark.spark

SIZE = 64
CROPS = 2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, run_job):
    """The image zoo plus a few colourful photos in nested folders, preprocessed once for the whole module."""
    root = tmp_path_factory.mktemp("pre")
    images = root / "images"
    expect = make_image_zoo(images)
    for i in range(6):
        rel = f"photos/set {i % 2}/photo-{i}.png"
        write_image(images / rel, colour_photo(80 + 8 * i, 60, seed=i))
        expect[rel] = None
    out = root / "out"
    proc = run_job("preprocess", "--input", images, "--output", out, "--set", f"data.crops={CROPS}")
    assert proc.returncode == 0, proc.log
    return {"images": images, "out": out, "expect": expect, "log": proc.log}


def _ok_paths(expect):
    return {rel for rel, e in expect.items() if e is None or e.ok}


def test_every_input_is_accounted_for(dataset):
    manifest = json.loads((dataset["out"] / "manifest.json").read_text())
    expect = dataset["expect"]
    assert manifest["inputs"] == len(expect)
    assert manifest["ok"] == len(_ok_paths(expect))
    assert manifest["errors"] == len(expect) - len(_ok_paths(expect))
    assert manifest["ok"] + manifest["errors"] == manifest["inputs"]
    assert manifest["train"] + manifest["val"] + manifest["selection"] == manifest["ok"]
    assert manifest["train_crops"] + manifest["val_crops"] + manifest["selection_crops"] == manifest["ok"] * CROPS
    assert manifest["colorspark_version"] and manifest["config"]["data"]["crops"] == CROPS


def test_errors_name_each_bad_file_with_its_reason(dataset):
    errors = pq.read_table(dataset["out"] / "errors").to_pylist()
    by_name = {Path(r["path"].split(":", 1)[1]).relative_to(dataset["images"]).as_posix(): r["error"]
               for r in errors}
    bad = {rel: e for rel, e in dataset["expect"].items() if e is not None and not e.ok}
    assert set(by_name) == set(bad)
    for rel, e in bad.items():
        assert e.reason in by_name[rel].lower(), (rel, by_name[rel])


def test_parquet_rows_are_compact_and_complete(dataset):
    table = pq.read_table(dataset["out"] / "parquet")
    rows = table.to_pylist()
    assert table.schema.field("l").type == "binary"
    assert all(t != "double" for t in map(str, table.schema.types))  # no float64 on disk
    assert len(rows) == len(_ok_paths(dataset["expect"])) * CROPS
    per_path = {}
    for r in rows:
        per_path.setdefault(r["path"], []).append(r["crop"])
        assert len(r["l"]) == SIZE * SIZE
        assert len(r["ab"]) == (SIZE // 4) ** 2 * 2
        assert len(r["bins"]) == (SIZE // 4) ** 2 * 2
        assert r["split"] in ("train", "val", "selection")
        bins = np.frombuffer(r["bins"], np.int16)
        assert bins.min() >= 0 and bins.max() < 313
    assert all(sorted(c) == list(range(CROPS)) for c in per_path.values())
    names = {p.rsplit("/", 1)[-1] for p in per_path}
    assert "Über Straße ünïcödé.jpg" in names and "inner.png" in names and "photo-3.png" in names


def test_hdf5_shards_hold_the_same_samples(dataset):
    parquet = pq.read_table(dataset["out"] / "parquet").to_pylist()
    by_key = {(r["path"], r["crop"]): r for r in parquet}
    shards = sorted((dataset["out"] / "hdf5").glob("*.h5"))
    assert shards
    total = 0
    for shard in shards:
        with h5py.File(shard, "r") as h5:
            n = len(h5["path"])
            total += n
            assert h5["l"].shape == (n, SIZE, SIZE) and h5["l"].dtype == np.uint8
            assert h5["ab"].shape == (n, SIZE // 4, SIZE // 4, 2) and h5["ab"].dtype == np.int8
            assert h5["bins"].dtype == np.int16
            for i, path in enumerate(h5["path"].asstr()[:]):
                row = by_key[(path, int(h5["crop"][i]))]
                assert h5["l"][i].tobytes() == row["l"] and h5["ab"][i].tobytes() == row["ab"]
    assert total == len(parquet)


def test_prior_is_a_distribution_over_313_bins(dataset):
    prior = np.load(dataset["out"] / "prior.npy")
    assert prior.shape == (313,) and prior.min() >= 0
    assert prior.sum() == pytest.approx(1.0)
    assert (prior > 0).sum() > 5  # colourful photos touch several bins


def test_prior_counts_the_colourful_train_crops(dataset):
    """The per-partition counts summed by the job equal a count over the Parquet rows it wrote."""
    rows = pq.read_table(dataset["out"] / "parquet", filters=[("split", "=", "train")]).to_pylist()
    bins = np.concatenate([np.frombuffer(r["bins"], np.int16) for r in rows if r["colorful"]])
    expected = np.bincount(bins, minlength=313) / bins.size
    np.testing.assert_allclose(np.load(dataset["out"] / "prior.npy"), expected, atol=1e-12)


def test_rerun_replaces_the_output_cleanly_and_keeps_the_split(dataset, run_job):
    """Runs last among the `dataset` tests: it replaces that output with a Parquet-only one."""
    out = dataset["out"]
    first = {r["path"]: r["split"] for r in pq.read_table(out / "parquet").to_pylist()}
    proc = run_job("preprocess", "--input", dataset["images"], "--output", out, "--set", f"data.crops={CROPS}",
                   "--format", "parquet")
    assert proc.returncode == 0, proc.log
    rows = pq.read_table(out / "parquet").to_pylist()
    assert len(rows) == len(_ok_paths(dataset["expect"])) * CROPS  # replaced, not appended
    assert {r["path"]: r["split"] for r in rows} == first  # the split is a function of the path
    assert not (out / "hdf5").exists()  # nothing of the previous run's formats is left behind
    leftovers = [p for p in out.rglob("*") if p.name.startswith((".staging", ".cs-tmp"))]
    assert leftovers == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"] == len(dataset["expect"]) and manifest["formats"] == ["parquet"]


def test_missing_input_fails_clearly(run_job, tmp_path):
    proc = run_job("preprocess", "--input", tmp_path / "nope", "--output", tmp_path / "out")
    assert proc.returncode == 1
    assert "does not exist" in proc.log


def test_nothing_readable_fails_and_leaves_no_manifest(run_job, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_text("not a photo")
    (tmp_path / "in" / "b.png").write_bytes(b"\x89PNG junk")
    proc = run_job("preprocess", "--input", tmp_path / "in", "--output", tmp_path / "out")
    assert proc.returncode == 1
    assert "none of the 2 input files could be read" in proc.log
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_bad_config_value_is_a_clear_error(run_job, tmp_path):
    proc = run_job("preprocess", "--input", tmp_path, "--output", tmp_path / "out", "--set", "data.size=60")
    assert proc.returncode == 2
    assert "data.size must be a multiple of 8" in proc.log


def test_folder_balance_is_recorded_and_keeps_the_splits(dataset, run_job, tmp_path):
    out = tmp_path / "balanced"
    proc = run_job("preprocess", "--input", dataset["images"], "--output", out, "--set", f"data.crops={CROPS}",
                   "--set", "data.balance=folder", "--format", "parquet")
    assert proc.returncode == 0, proc.log
    plain = json.loads((dataset["out"] / "manifest.json").read_text())
    balanced = json.loads((out / "manifest.json").read_text())
    assert "balance folder: crops per training photo by folder" in proc.log
    assert "photos" in balanced["folder_crops"] and balanced["config"]["data"]["balance"] == "folder"
    for split in ("train", "val", "selection"):
        assert balanced[split] == plain[split]
    assert balanced["val_crops"] == plain["val_crops"]
