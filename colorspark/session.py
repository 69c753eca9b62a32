"""(driver) The job process itself: its log lines and its Spark session with colorspark's executor environment.

The Spark settings here are defaults a user can override with spark-submit; the executors get the environment that
quiets TensorFlow, tells the worker start-up hook what to preload, and points s3:// URIs at the same store as the
driver.
"""

from __future__ import annotations

import logging
import os
import sys

from .runtime import QUIET_ENV


def setup_logging(job: str) -> logging.Logger:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s colorspark {job}: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)
    for noisy in ("py4j", "absl", "h5py", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(f"colorspark.{job}")


# No listening port beyond what Spark itself needs: the web UI is off unless asked for (spark.ui.enabled=true).
DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.python.worker.reuse": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "64",  # rows carry whole images
    # Spark packs files into partitions as if opening each cost 4 MB of reading: 32 photos per task, and a fixed cost
    # per task that dominates when a photo takes a few ms. At 1 MB a task holds ~120 photos (bench/preprocess_bench).
    "spark.sql.files.openCostInBytes": str(1 << 20),
    # A file Hadoop cannot open must not fail the job; colorspark.listing gives every skipped file an error row.
    "spark.sql.files.ignoreCorruptFiles": "true",
    "spark.sql.files.ignoreMissingFiles": "true",
}


# Where an s3:// URI points (never a credential): the executors must resolve a URI to the same store as the driver.
STORAGE_ENDPOINT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION")


def _storage_endpoints() -> dict:
    return {key: os.environ[key] for key in STORAGE_ENDPOINT_ENV if os.environ.get(key)}


def build_spark_session(app_name: str, extra_conf: dict | None = None, *, tensorflow_workers: bool = True):
    """A SparkSession with colorspark's executor environment; master and resources come from spark-submit.

    `tensorflow_workers` makes every Python worker daemon import TensorFlow at start
    (worker_startup/colorspark_worker_init.py); a job whose workers never use it saves that start-up time and memory.
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    given = SparkConf()  # what spark-submit / spark-defaults.conf already set: the user's choice wins
    builder = SparkSession.builder.appName(app_name)
    for key, value in DEFAULT_CONF.items():
        if not given.contains(key):
            builder = builder.config(key, value)
    if given.get("spark.master", "local[*]").startswith("local"):
        for key in ("spark.driver.host", "spark.driver.bindAddress"):
            if not given.contains(key):
                builder = builder.config(key, "127.0.0.1")
    worker_init = "tensorflow" if tensorflow_workers else "plain"
    for key, value in {**QUIET_ENV, "COLORSPARK_WORKER_INIT": worker_init}.items():
        builder = builder.config(f"spark.executorEnv.{key}", value)
    for key, value in _storage_endpoints().items():
        if not given.contains(f"spark.executorEnv.{key}"):
            builder = builder.config(f"spark.executorEnv.{key}", value)
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    conf = spark.sparkContext.getConf()
    cpus = conf.get("spark.task.cpus", "1")
    # Read by TensorFlow in processes we do not control (Elephas workers); our own code also calls import_tensorflow.
    spark.sparkContext.environment.setdefault("TF_NUM_INTRAOP_THREADS", cpus)
    spark.sparkContext.environment.setdefault("TF_NUM_INTEROP_THREADS", "1")
    spark.sparkContext.environment.setdefault("OMP_NUM_THREADS", cpus)
    return spark
