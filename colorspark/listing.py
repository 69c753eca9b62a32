"""Finding the input images on any Hadoop filesystem, and making sure every one of them is accounted for.

Spark's `binaryFile` scan silently drops zero-length files, so the jobs compare the scan against the file index
(`DataFrame.inputFiles()`, which lists them) and give each dropped file its own error row.
"""

from __future__ import annotations

from urllib.parse import unquote

from .runtime import JobError
from .storage import input_root, relative_output_path, uri_to_posix

EMPTY_FILE_REASON = "empty file (0 bytes)"


def _hadoop_path(spark, path: str):
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath, hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def check_input_exists(spark, input_path: str) -> None:
    hpath, fs = _hadoop_path(spark, input_path)
    if not fs.globStatus(hpath):
        raise JobError(f"input path {input_path} does not exist")


def relative_root(spark, input_path: str) -> str:
    """The input root as a fully qualified path, so it matches the paths `binaryFile` reports."""
    hpath, fs = _hadoop_path(spark, input_root(input_path))
    return uri_to_posix(fs.makeQualified(hpath).toString())


def list_images(spark, input_path: str, extensions: list[str]):
    """DataFrame of (path, modificationTime, length, content) for files with a wanted extension (either case)."""
    variants = sorted({e.lower() for e in extensions} | {e.upper() for e in extensions})
    return (spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", "*.{" + ",".join(variants) + "}")
            .load(input_path))


def unscanned_files(spark, files, seen_keys, root: str) -> list[tuple[str, str]]:
    """(path, relative key) of listed files that produced no row: Spark skips empty files when scanning.

    `seen_keys` is a one-column DataFrame of the relative keys (`relative_output_path`) that did produce rows.
    """
    from pyspark.sql.types import StringType, StructField, StructType

    listed = []
    for uri in files.inputFiles():
        path = unquote(uri).replace("file:///", "file:/", 1)  # inputFiles() gives encoded URIs
        listed.append((path, relative_output_path(path, root)))
    if not listed:
        return []
    schema = StructType([StructField("path", StringType()), StructField("key", StringType())])
    frame = spark.createDataFrame(listed, schema)
    missing = frame.join(seen_keys.withColumnRenamed(seen_keys.columns[0], "key"), "key", "left_anti")
    return [(r["path"], r["key"]) for r in missing.collect()]
