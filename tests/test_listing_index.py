"""colorspark.listing on Spark: the one-call file index, the files binaryFile drops, who reads local files."""

from __future__ import annotations

import os
import sys

import pytest

from colorspark.listing import (
    EMPTY_FILE_REASON,
    UNREADABLE_REASON,
    Inputs,
    file_index_uris,
    find_inputs,
    list_images,
    read_content,
)
from colorspark.paths import InputLocation, relative_output_path

pytestmark = pytest.mark.spark

NAMES = ["plain.jpg", "with space.jpg", "per%cent.jpg", "hash#tag.jpg", "accentué.jpg", "new\nline.jpg",
         "deep/er/nested.JPG", "semi;colon.png"]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[1]").appName("colorspark-listing-tests")
               .config("spark.ui.enabled", "false").config("spark.sql.files.ignoreCorruptFiles", "true").getOrCreate())
    yield session
    session.stop()


def test_the_index_matches_pysparks_listing_for_awkward_names(spark, tmp_path):
    for name in NAMES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    frame = list_images(spark, str(tmp_path), ["jpg", "png"])
    uris = file_index_uris(frame)
    assert uris == frame.inputFiles()
    assert len(uris) == len(NAMES)


def test_an_empty_index_is_an_empty_list(spark, tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"not an image")
    frame = list_images(spark, str(tmp_path), ["jpg"])
    assert frame.inputFiles() == [] and file_index_uris(frame) == []


def test_files_that_binaryfile_drops_get_their_reason(spark, tmp_path):
    """Where binaryFile reads the bytes (HDFS, s3a:), its scan drops empty files and, with ignoreCorruptFiles, files
    Hadoop cannot open, such as a name with ':'; the listing gives each its reason."""
    (tmp_path / "fine.png").write_bytes(b"x")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "colon:name.png").write_bytes(b"x")
    frame = list_images(spark, str(tmp_path), ["png"]).select("path", "content")
    seen = {relative_output_path(row["path"], str(tmp_path)) for row in frame.collect()}
    assert seen == {"fine.png"}
    missing = Inputs(frame, InputLocation.parse(str(tmp_path)), True).unscanned(spark, seen)
    assert sorted((key, reason) for _, key, reason in missing) == [("colon_name.png", UNREADABLE_REASON),
                                                                   ("empty.png", EMPTY_FILE_REASON)]


def test_on_a_local_disk_the_tasks_read_the_files_themselves(spark, tmp_path):
    """binaryFile lists and partitions local files, but their bytes do not pass through the JVM: the task reads
    each one, names with ':', a newline, '%' or '#' included."""
    files = {"a.png": b"first", "sub/colon:b.png": b"second", "new\nline %41 #.png": b"third"}
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    inputs = find_inputs(spark, InputLocation.parse(str(tmp_path)), ["png"])
    rows = inputs.frame.collect()
    assert inputs.via_hadoop and {row["content"] for row in rows} == {None}
    assert sorted(read_content(row["path"], row["content"], 100) for row in rows) == sorted(files.values())


def test_on_a_local_disk_every_task_gets_the_same_number_of_files(spark, tmp_path):
    """binaryFile packs 9 files of 4 MB weight (the open cost) into partitions of 16 MB: 4, 4 and 1. The colorizing
    pass gets the same number of tasks with 3 files each, and every file once."""
    for i in range(9):
        (tmp_path / f"{i}.png").write_bytes(b"x")
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(16 << 20))
    spark.conf.set("spark.sql.files.openCostInBytes", str(4 << 20))
    try:
        inputs = find_inputs(spark, InputLocation.parse(str(tmp_path)), ["png"])
        assert sorted(len(rows) for rows in inputs.frame.rdd.glom().collect()) == [1, 4, 4]
        shares = inputs.partitions(spark).glom().collect()
        given = inputs.partitions(spark, 2).glom().collect()
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
        spark.conf.unset("spark.sql.files.openCostInBytes")
    assert [len(rows) for rows in shares] == [3, 3, 3] and [len(rows) for rows in given] == [4, 5]
    assert sorted(path for rows in shares for path, _ in rows) == sorted(inputs.listed())
    assert {content for rows in shares for _, content in rows} == {None}


def test_no_input_files_make_no_tasks(spark, tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"not an image")
    assert find_inputs(spark, InputLocation.parse(str(tmp_path)), ["png"]).partitions(spark).getNumPartitions() == 0


def test_the_storage_layers_listing_is_shared_out_the_same_way(spark, tmp_path, monkeypatch):
    """Where Hadoop does not serve the scheme, the driver's own listing (with its sizes) sets the shares."""
    import colorspark.listing as listing

    for i in range(5):
        (tmp_path / f"{i}.png").write_bytes(b"x" * (i + 1))
    monkeypatch.setattr(listing, "hadoop_serves", lambda spark, location: False)
    inputs = find_inputs(spark, InputLocation.parse(str(tmp_path)), ["png"])
    assert not inputs.via_hadoop and inputs.sizes == [1, 2, 3, 4, 5]
    shares = inputs.partitions(spark, 2).glom().collect()
    assert [len(rows) for rows in shares] == [2, 3] and sorted(p for rows in shares for p, _ in rows) == inputs.paths
