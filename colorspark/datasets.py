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


def write_part(uri: str, table) -> None:
    """A pyarrow Table as the one part file of the dataset folder `uri` (written by the driver: small tables such as
    the error rows, or an empty one so that readers of a dataset without rows find its columns)."""
    import pyarrow.parquet as pq

    with fs.local_file_for(fs.join(uri, part_name(0)), ".parquet") as local:
        pq.write_table(table, local)


def read_table(uri: str, columns: list[str] | None = None):
    """One Parquet file through the storage layer, as a pyarrow Table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(fs.read_bytes(uri)), columns=columns)


def part_files(uri: str) -> list[str]:
    """The Parquet files of a published dataset folder (any depth, e.g. below split=train/), sorted."""
    return [file for file, _ in fs.list_files(uri) if file.endswith(".parquet")]
