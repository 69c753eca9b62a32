"""Parquet datasets that the executors write through the storage layer and the driver then publishes.

Spark's own Parquet writer can only reach filesystems that Hadoop serves (the pip pyspark has no S3, GCS or Azure
connector), and it is slow for rows of image bytes. So each task writes its rows with pyarrow as one part file,
`part-NNNNN.parquet` after the task's partition, into a staging folder; a retried or speculative task writes the same
name with the same rows, so exactly one copy survives. The driver then makes the folder visible (`fs.publish`). The
result is an ordinary Parquet folder that Spark, pyarrow and pandas read.
"""

from __future__ import annotations

import contextlib

from . import fs


def part_name(partition: int) -> str:
    return f"part-{partition:05d}.parquet"


class PartWriter:
    """(executors) One Parquet file written batch by batch and published atomically when the `with` block ends
    without an error; nothing is published when no rows came, or when the block failed."""

    def __init__(self, uri: str):
        self.uri, self.rows = uri, 0
        self._stack = contextlib.ExitStack()
        self._writer = None

    def __enter__(self) -> PartWriter:
        return self

    def write(self, batch) -> None:
        import pyarrow.parquet as pq

        if not batch.num_rows:
            return
        if self._writer is None:
            local = self._stack.enter_context(fs.local_file_for(self.uri, ".parquet"))
            self._writer = pq.ParquetWriter(local, batch.schema)
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def __exit__(self, *exc_info) -> None:
        if self._writer is not None:
            self._writer.close()
        self._stack.__exit__(*exc_info)


def _write_partition(batches, uri: str):
    import pyarrow as pa
    from pyspark import TaskContext

    name = part_name(TaskContext.get().partitionId())
    with PartWriter(fs.join(uri, name)) as writer:
        for batch in batches:
            writer.write(batch)
    yield pa.RecordBatch.from_pydict({"file": [name], "rows": [writer.rows]})


def write_parquet(frame, uri: str) -> int:
    """Write a DataFrame as Parquet part files under `uri` from the executors; returns the number of rows.

    A DataFrame without rows still gets one (empty) part, so that readers find its schema.
    """
    from pyspark.sql.pandas.types import to_arrow_schema

    parts = frame.mapInArrow(lambda batches: _write_partition(batches, uri), "file string, rows long").collect()
    rows = sum(p["rows"] for p in parts)
    if rows == 0:
        write_empty_part(uri, to_arrow_schema(frame.schema))
    return rows


def write_empty_part(uri: str, schema) -> None:
    """An empty part file under the dataset folder `uri`, so that readers of a dataset without rows find its
    columns."""
    import pyarrow.parquet as pq

    with fs.local_file_for(fs.join(uri, part_name(0)), ".parquet") as local:
        pq.write_table(schema.empty_table(), local)


def read_table(uri: str, columns: list[str] | None = None):
    """One Parquet file through the storage layer, as a pyarrow Table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(fs.read_bytes(uri)), columns=columns)


def part_files(uri: str) -> list[str]:
    """The Parquet files of a published dataset folder (any depth, e.g. below split=train/), sorted."""
    return [file for file, _ in fs.list_files(uri) if file.endswith(".parquet")]
