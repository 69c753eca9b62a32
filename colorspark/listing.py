"""Finding the input images on any Hadoop filesystem, and making sure every one of them is accounted for.

Where Hadoop serves the input's scheme (`file:`, `hdfs:`, and `s3a:` or `gs:` with the connector jars) Spark's
`binaryFile` source lists the files and plans the partitions. It also reads them, except on a local disk (`file:`),
where the task reads each file itself through the storage layer: a Python worker reads a local file as cheaply as
the JVM does, and the bytes then skip the JVM's copies into Spark rows and Arrow batches, half of the JVM's CPU time
in a warm preprocess run (BENCHMARKS.md, section 1). Where Hadoop does not serve the scheme (the pip pyspark has no
S3, GCS or Azure connector), the driver lists the files through the storage layer (`colorspark.fs`, pyarrow) and each
task reads its files itself, so a cluster without connector jars still works. Wherever the task reads, the
`content` column is null and `read_content` fetches the bytes.

Spark's `binaryFile` scan silently drops zero-length files, and with `spark.sql.files.ignoreCorruptFiles` (which
colorspark sets so that one file Hadoop cannot open, e.g. one with ':' in its name, does not fail the whole job) it
drops unreadable ones too. The jobs therefore compare the scan with the file index (`DataFrame.inputFiles()`, which
is on the driver) and give each dropped file its own error row. Names starting with '.' or '_' are hidden from
Spark's listing altogether (its convention for metadata files) and are not inputs.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from urllib.parse import unquote

from . import fs
from .decode import DecodeError, check_size
from .errors import JobError
from .paths import InputLocation, uri_to_posix

EMPTY_FILE_REASON = "empty file (0 bytes)"
UNREADABLE_REASON = ("Spark could not open the file (vanished while the job ran, or its name has a character Hadoop "
                     "cannot handle, such as ':')")


def _hadoop_path(spark, path: str):
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath, hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


@dataclass
class Inputs:
    """The input files of a job: `frame` has the columns (path, content); `location` is the input, its root as the
    filesystem qualified it (what output names are made relative to); `via_hadoop` says whether Spark's binaryFile
    source listed them (and may have dropped some); `paths` holds the driver's own listing where it made one."""
    frame: object
    location: InputLocation
    via_hadoop: bool
    paths: list[str] | None = None
    sizes: list[int] | None = None  # the sizes of `paths`, from the same listing
    _index: list[str] | None = field(default=None, repr=False)  # binaryFile's file index, once fetched

    def listed(self) -> list[str]:
        """Every listed input file's path, without running a Spark job (binaryFile's file index is on the driver)."""
        if self.paths is not None:
            return list(self.paths)
        if self._index is None:
            self._index = [_listed_path(uri) for uri in file_index_uris(self.frame)]
        return list(self._index)

    def partitions(self, spark, count: int = 0):
        """The (path, content) rows as an RDD in `count` partitions, or with 0 in Spark's own number of file
        partitions rounded up to a multiple of the cores (`defaultParallelism`).

        Where the tasks read the files themselves (a local disk, or the storage layer's listing) the driver's listing
        is spread over the partitions in equal numbers of files, without planning a query (`file_partitions` counts
        from the files' sizes; planning a session's first query costs a cold JVM tenths of a second). binaryFile packs
        files by size into partitions of up to `maxPartitionBytes` and leaves the remainder in a last, smaller one:
        600 photos on `local[2]` were five tasks of about 120 photos and one of a single photo, and the fifth task ran
        alone while the other core waited. Where binaryFile reads the bytes (HDFS, s3a:) its scan is repartitioned
        only when `count` is given, since that moves every file's bytes through a shuffle."""
        reads_itself = self.paths is not None or fs.is_local(self.location.root_uri)
        if not reads_itself:
            return (self.frame.repartition(count) if count else self.frame).rdd
        paths = self.listed()
        if not paths:
            return spark.sparkContext.emptyRDD()
        if not count:
            cores = max(1, spark.sparkContext.defaultParallelism)
            sizes = self.sizes if self.sizes is not None else fs.sizes(paths)
            count = math.ceil(file_partitions(spark, sizes) / cores) * cores
        return spark.sparkContext.parallelize([(path, None) for path in paths], min(count, len(paths)))

    def unscanned(self, spark, seen_keys: set[str]) -> list[tuple[str, str, str]]:
        """(path, relative key, reason) of listed files whose relative key (`relative_output_path`) is not among
        `seen_keys`: the ones Spark's scan dropped. Only binaryFile drops files."""
        if not self.via_hadoop:
            return []
        index = self.frame._jdf.inputFiles()  # one Java array; its length is one Py4J call
        if len(seen_keys) >= len(index):  # the scan is a subset of the listing: nothing was dropped
            return []
        uris = _index_uris(self.frame, index)
        missing = []
        for uri in uris:
            path = _listed_path(uri)
            key = self.location.relative(path)
            if key not in seen_keys:
                missing.append((path, key, _why_unscanned(spark, uri)))
        return missing


def file_index_uris(frame) -> list[str]:
    """`frame.inputFiles()` in one Py4J call. PySpark's own `inputFiles()` fetches the JVM's array one element at a
    time, two round trips per file: 0.7 s of the driver's time for 5,120 files. The URIs are percent-encoded, so a
    newline cannot occur inside one and joins them safely."""
    return _index_uris(frame, frame._jdf.inputFiles())


def _index_uris(frame, index) -> list[str]:
    jvm = frame.sparkSession.sparkContext._jvm
    joined = jvm.scala.collection.immutable.ArraySeq.unsafeWrapArray(index).mkString("\n")
    return joined.split("\n") if joined else []


def _listed_path(uri: str) -> str:
    """A file index URI (encoded, file:///) as the `path` column spells it."""
    return unquote(uri).replace("file:///", "file:/", 1)


def hadoop_serves(spark, location: str) -> bool:
    """Whether Spark's Hadoop filesystems can read `location` (plain paths: Hadoop's default filesystem)."""
    if "://" not in location or fs.scheme_of(location) == "file":
        return True
    try:
        spark.sparkContext._jvm.org.apache.hadoop.fs.FileSystem.getFileSystemClass(
            fs.scheme_of(location), spark.sparkContext._jsc.hadoopConfiguration())
        return True
    except Exception:  # UnsupportedFileSystemException, or the connector class is not on the classpath
        return False


def find_inputs(spark, location: InputLocation, extensions: list[str]) -> Inputs:
    """The image files under `location` (a file, folder or glob) with a wanted extension, in either case."""
    if hadoop_serves(spark, location.given):
        hpath, hfs = _hadoop_path(spark, location.given)
        if not hfs.globStatus(hpath):
            raise JobError(f"input path {fs.display(location.given)} does not exist")
        root_path, root_fs = _hadoop_path(spark, location.root_uri)
        qualified = location.qualified(root_fs.makeQualified(root_path).toString())
        frame = list_images(spark, location.given, extensions).select("path", _content_column(qualified.root_uri))
        return Inputs(frame, qualified, True)
    fs.check_location(location.root_uri, what="--input", cluster=False, output=False)
    if not fs.exists(location.root_uri):
        raise JobError(f"input path {fs.display(location.given)} does not exist")
    wanted = _wanted_files(location, extensions)
    return Inputs(_listing_frame(spark, wanted), location, False, [uri for uri, _ in wanted], [n for _, n in wanted])


def _content_column(qualified_root: str):
    """binaryFile's `content` column, or null on a local disk, where the task reads the file instead (see above):
    without the column in the query, binaryFile does not read the files."""
    from pyspark.sql import functions as F

    if fs.is_local(qualified_root):
        return F.lit(None).cast("binary").alias("content")
    return F.col("content")


def list_images(spark, input_path: str, extensions: list[str]):
    """DataFrame of (path, modificationTime, length, content) for files with a wanted extension (either case)."""
    variants = sorted({e.lower() for e in extensions} | {e.upper() for e in extensions})
    return (spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", "*.{" + ",".join(variants) + "}")
            .load(input_path))


def _listing_frame(spark, wanted: list[tuple[str, int]]):
    """(path, content = null) rows of the (URI, size) files the storage layer listed, spread over partitions sized
    as binaryFile sizes them (`file_partitions`)."""
    from pyspark.sql.types import BinaryType, StringType, StructField, StructType

    slices = file_partitions(spark, [n for _, n in wanted])
    schema = StructType([StructField("path", StringType(), False), StructField("content", BinaryType(), True)])
    return spark.createDataFrame(spark.sparkContext.parallelize([(uri, None) for uri, _ in wanted], slices), schema)


def file_partitions(spark, sizes: list[int]) -> int:
    """How many partitions Spark's file sources make of files of these sizes: each file counts its length plus
    `openCostInBytes`, a partition holds at most `maxPartitionBytes` of that, with at least one partition per core
    (and at most one per file). Reads the session's settings, so a user's choice of either counts."""
    sql_conf = spark._jsparkSession.sessionState().conf()
    weighted = sum(sizes) + len(sizes) * sql_conf.filesOpenCostInBytes()
    by_size = math.ceil(weighted / sql_conf.filesMaxPartitionBytes())
    return max(1, min(len(sizes), max(spark.sparkContext.defaultParallelism, by_size)))


def _wanted_files(location: InputLocation, extensions: list[str]) -> list[tuple[str, int]]:
    """(URI, size) of the files below the input (a URI, folder or glob) with a wanted extension, in either case,
    listed through the storage layer; names starting with '.' or '_' are left out, as Spark's listing does."""
    suffixes = tuple("." + e.lower() for e in extensions)
    wanted = []
    for uri, nbytes in fs.list_files(location.root_uri):
        rel = uri[len(location.root_uri):].lstrip("/")
        if not uri.lower().endswith(suffixes) or any(part.startswith((".", "_")) for part in rel.split("/")):
            continue
        if location.pattern and not fnmatch.fnmatchcase(uri_to_posix(uri), location.pattern):
            continue
        wanted.append((uri, nbytes))
    return wanted


def find_videos(location: InputLocation, extensions: list[str]) -> list[str]:
    """URIs of the video files under `location`, listed through the storage layer on any filesystem: each task
    reads its segment of a video with ranged reads, so Spark's binaryFile, which would load whole videos into
    rows, is not used for them."""
    if not extensions:
        return []
    return [uri for uri, _ in _wanted_files(InputLocation.parse(fs.to_uri(location.given)), extensions)]


def read_content(path: str, content, max_bytes: int) -> bytes:
    """(executors) A file's bytes: the ones binaryFile read, or fetched through the storage layer, reading no
    further than one byte past `max_bytes` (such a file is refused with its size). A file that cannot be read
    (vanished since the listing, no permission) is a bad input like an undecodable one."""
    if content is not None:
        return bytes(content)
    try:
        data = fs.read_bytes(path, limit=max_bytes + 1)
        if len(data) > max_bytes:
            check_size(fs.size(path), max_bytes)
        return data
    except OSError as exc:
        raise DecodeError(f"could not read the file: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None


def _why_unscanned(spark, uri: str) -> str:
    jvm = spark.sparkContext._jvm
    try:
        hpath = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(uri))
        fs = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        return EMPTY_FILE_REASON if fs.getFileStatus(hpath).getLen() == 0 else UNREADABLE_REASON
    except Exception:  # vanished since listing, or not addressable at all
        return UNREADABLE_REASON
