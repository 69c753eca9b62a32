"""(executors) The preprocess job's per-partition work: files in; samples, shards and one result row per file out.

`process_image` is the whole per-image recipe as a plain function. `process_batches` is the body of the job's single
`mapInArrow` pass: it decodes and encodes each file, writes the partition's samples straight to the staging folder
(Parquet per split, and an HDF5 shard) through the storage layer, and hands the driver back only small rows: one per
input file (its status and counts) and one summary per partition (its shard and the bin counts of its colourful
train crops, from which the driver adds up the prior). The samples never pass through Spark.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import fs
from .balance import folder_of
from .bins import bin_counts, gamut_centres, hard_bins
from .datasets import PartWriter, part_name
from .decode import DecodeError, decode_image
from .listing import read_content
from .paths import relative_output_path
from .runtime import freeze_imports
from .samples import crop_rng, decode_bins, encode_sample, random_crops, write_shard
from .splits import SPLITS, TRAIN, split_of

SAMPLE_COLUMNS = ("path", "crop", "l", "ab", "bins", "max_chroma", "colorful", "width", "height")
_SAMPLE_TYPES = {"path": "string", "crop": "int32", "l": "binary", "ab": "binary", "bins": "binary",
                 "max_chroma": "float32", "colorful": "bool", "width": "int32", "height": "int32"}
RESULT_COLUMNS = ("path", "key", "status", "error", "split", "crops", "colorful", "bins")
_RESULT_TYPES = {"crops": "int32", "colorful": "int32", "bins": "binary"}
SUMMARY = "partition"  # status of the one summary row each task appends: path = its shard or "", bins = counts
ARROW_ROWS_PER_BATCH = 256  # sample rows per Parquet write: ~1.5 MB at 64 px


def sample_arrow_schema():
    import pyarrow as pa

    return pa.schema([pa.field(n, pa.type_for_alias(_SAMPLE_TYPES[n]), n != "path") for n in SAMPLE_COLUMNS])


def result_arrow_schema():
    import pyarrow as pa

    return pa.schema([pa.field(n, pa.type_for_alias(_RESULT_TYPES.get(n, "string")), n not in ("path", "status"))
                      for n in RESULT_COLUMNS])


def result_ddl() -> str:
    """The Spark schema of the result rows, as DDL for mapInArrow."""
    spark_types = {"string": "string", "int32": "int", "binary": "binary"}
    return ", ".join(f"{n} {spark_types[_RESULT_TYPES.get(n, 'string')]}" for n in RESULT_COLUMNS)


def process_image(content: bytes, key: str, config: dict, train_crops: int | None = None) -> list[dict]:
    """Decode one file and return its encoded crops as row dicts; raises DecodeError for a bad file. A training
    photo gets `train_crops` crops when given (`balance.crops_per_folder`), a held-out one always data.crops."""
    data, limits = config["data"], config["limits"]
    rgb = decode_image(content, max_pixels=limits["max_pixels"], max_bytes=limits["max_bytes"])
    rng = crop_rng(key, data["seed"])
    split = split_of(key, data["val_fraction"], data["selection_fraction"])
    count = train_crops if split == TRAIN and train_crops else data["crops"]
    rows = []
    for index, crop in enumerate(random_crops(rgb, data["size"], count, data["min_crop_scale"],
                                              data["flip"], rng)):
        sample = encode_sample(crop)
        rows.append({"crop": index, "split": split, "l": sample["l"], "ab": sample["ab"], "bins": sample["bins"],
                     "max_chroma": sample["max_chroma"], "colorful": sample["max_chroma"] >= data["gray_chroma"],
                     "width": int(rgb.shape[1]), "height": int(rgb.shape[0])})
    return rows


def prepare_worker() -> None:
    """What a Python worker needs before its first file, done before the job's tasks arrive
    (`session.python_workers_starting`): the bin tables and the imports that the first file would trigger."""
    import h5py  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from PIL import Image

    Image.preinit()
    hard_bins(np.zeros((1, 1, 2), np.int8))


class Staging(NamedTuple):
    """Where a task writes its samples: the staging folder's parquet/ and hdf5/ URIs (None: format not wanted)."""
    parquet: str | None
    hdf5: str | None


class _SampleSink:
    """A partition's samples on their way to Parquet (one part per split) and to one HDF5 shard."""

    def __init__(self, index: int, staging: Staging, size: int):
        self.index, self.staging, self.size = index, staging, size
        self.pending = {split: [] for split in SPLITS}
        self.shard_rows: list[dict] = []
        self.writers = {split: PartWriter(fs.join(staging.parquet, f"split={split}", part_name(index)))
                        for split in SPLITS} if staging.parquet else {}

    def add(self, path: str, sample: dict) -> None:
        if self.staging.hdf5:
            self.shard_rows.append({"path": path, **sample})
        if self.writers:
            pending = self.pending[sample["split"]]
            pending.append({"path": path, **sample})
            if len(pending) == ARROW_ROWS_PER_BATCH:
                self._flush(sample["split"])

    def _flush(self, split: str) -> None:
        import pyarrow as pa

        rows = self.pending[split]
        if rows:
            self.writers[split].write(pa.RecordBatch.from_pylist(rows, schema=sample_arrow_schema()))
            rows.clear()

    def close(self, exc_info=(None, None, None)) -> str:
        """Publish the partition's files (nothing on failure); returns the shard's name, or "" without one."""
        for split, writer in self.writers.items():
            if exc_info[0] is None:
                self._flush(split)
            writer.__exit__(*exc_info)
        if exc_info[0] is not None or not self.shard_rows:
            return ""
        name = f"part-{self.index:05d}.h5"
        write_shard(fs.join(self.staging.hdf5, name), self.shard_rows, self.size)
        return name


def process_files(index: int, files, config: dict, root: str, staging: Staging, folder_crops: dict | None = None):
    """One partition's work over (path, content) files: one result row per file (status ok with its split and crop
    counts, or error with the reason), then the partition's summary row. Rows are tuples in RESULT_COLUMNS order.
    `folder_crops` gives the crops per training photo of each top-level folder (`balance.crops_per_folder`)."""
    counts = np.zeros(len(gamut_centres()), np.int64)
    sink = _SampleSink(index, staging, config["data"]["size"])
    try:
        for path, content in files:
            key = relative_output_path(path, root)
            try:
                samples = process_image(read_content(path, content, config["limits"]["max_bytes"]), key, config,
                                        (folder_crops or {}).get(folder_of(key)))
            except DecodeError as exc:
                yield (path, key, "error", str(exc), None, None, None, None)
                continue
            except Exception as exc:  # a bug or resource problem on one file must not fail the job
                yield (path, key, "error", f"internal error: {type(exc).__name__}: {exc}", None, None, None, None)
                continue
            for sample in samples:
                if sample["split"] == TRAIN and sample["colorful"]:  # the held-out splits stay out of the prior
                    counts += bin_counts(decode_bins(sample["bins"], config["data"]["size"]))
                sink.add(path, sample)
            yield (path, key, "ok", None, samples[0]["split"], len(samples), sum(s["colorful"] for s in samples),
                   None)
    except BaseException as exc:
        sink.close((type(exc), exc, exc.__traceback__))
        raise
    shard = sink.close()
    yield (shard, "", SUMMARY, None, None, len(sink.shard_rows), None, counts.tobytes())


def process_batches(index: int, batches, config: dict, root: str, staging: Staging, folder_crops: dict | None = None):
    """mapInArrow body: `binaryFile`-shaped record batches (path, content) in, result record batches out."""
    import pyarrow as pa

    freeze_imports()
    schema = result_arrow_schema()

    def files():
        for batch in batches:
            yield from zip(batch.column("path").to_pylist(), batch.column("content").to_pylist())

    rows = list(process_files(index, files(), config, root, staging, folder_crops))
    yield pa.RecordBatch.from_arrays([pa.array(column, field.type) for column, field in zip(zip(*rows), schema)],
                                     schema=schema)
