"""How the train job spreads its rows over the Elephas workers."""

from __future__ import annotations

import os
import sys

import pytest

from colorspark.training import deal_evenly

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def sc():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # the workers import colorspark from here
    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    yield spark.sparkContext
    spark.stop()


@pytest.mark.parametrize("rows, inputs, workers", [(13, 7, 2), (25, 12, 4), (3, 3, 3), (100, 1, 5)])
def test_every_worker_gets_an_even_share(sc, rows, inputs, workers):
    """A few small Parquet files give many input partitions of a few rows; each worker still gets its share."""
    parts = deal_evenly(sc.parallelize(range(rows), inputs), workers).glom().collect()
    assert len(parts) == workers
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert sorted(row for part in parts for row in part) == list(range(rows))
