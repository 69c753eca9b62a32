"""Finding the input images on any Hadoop filesystem, and making sure every one of them is accounted for.

Spark's `binaryFile` scan silently drops zero-length files, and with `spark.sql.files.ignoreCorruptFiles` (which
colorspark sets so that one file Hadoop cannot open, e.g. one with ':' in its name, does not fail the whole job) it
drops unreadable ones too. The jobs therefore compare the scan with the file index (`DataFrame.inputFiles()`) and
give each dropped file its own error row. Names starting with '.' or '_' are hidden from Spark's listing altogether
(its convention for metadata files) and are not inputs.
"""

from __future__ import annotations

from urllib.parse import unquote

from .runtime import JobError
from .storage import input_root, relative_output_path, uri_to_posix

EMPTY_FILE_REASON = "empty file (0 bytes)"
UNREADABLE_REASON = ("Spark could not open the file (vanished while the job ran, or its name has a character Hadoop "
                     "cannot handle, such as ':')")


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


def unscanned_files(spark, files, seen_keys, root: str) -> list[tuple[str, str, str]]:
    """(path, relative key, reason) of listed files that produced no row.

    `seen_keys` is a one-column DataFrame of the relative keys (`relative_output_path`) that did produce rows.
    """
    from pyspark.sql.types import StringType, StructField, StructType

    listed = []
    for uri in files.inputFiles():
        path = unquote(uri).replace("file:///", "file:/", 1)  # inputFiles() gives encoded URIs
        listed.append((uri, path, relative_output_path(path, root)))
    if not listed:
        return []
    schema = StructType([StructField(n, StringType()) for n in ("uri", "path", "key")])
    frame = spark.createDataFrame(listed, schema)
    missing = frame.join(seen_keys.withColumnRenamed(seen_keys.columns[0], "key"), "key", "left_anti").collect()
    return [(r["path"], r["key"], _why_unscanned(spark, r["uri"])) for r in missing]


def _why_unscanned(spark, uri: str) -> str:
    jvm = spark.sparkContext._jvm
    try:
        hpath = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(uri))
        fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        return EMPTY_FILE_REASON if fs.getFileStatus(hpath).getLen() == 0 else UNREADABLE_REASON
    except Exception:  # vanished since listing, or not addressable at all
        return UNREADABLE_REASON
