"""colorspark.listing's one-call file index against PySpark's own `DataFrame.inputFiles()`."""

from __future__ import annotations

import os
import sys

import pytest

from colorspark.listing import file_index_uris, list_images

pytestmark = pytest.mark.spark

NAMES = ["plain.jpg", "with space.jpg", "per%cent.jpg", "hash#tag.jpg", "accentué.jpg", "new\nline.jpg",
         "deep/er/nested.JPG", "semi;colon.png"]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (SparkSession.builder.master("local[1]").appName("colorspark-listing-tests")
               .config("spark.ui.enabled", "false").getOrCreate())
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
