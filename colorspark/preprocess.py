"""Job 1: images -> compact training samples in Parquet and HDF5, the colour prior and a manifest.

The per-image work (`process_image`) is a plain function; `run` wires it into Spark: `binaryFile` listing, one
partition-wise pass (`mapInArrow`: mapPartitions over Arrow batches) that also writes the executors' HDF5 shards and
reduces each partition's bins to counts for the prior, and the DataFrame writer. All outputs are staged under OUT/.staging-<run> and moved into place at the end;
`manifest.json` is written last and removed first, so its presence means the dataset is complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import __version__
from .bins import bin_counts, gamut_centres
from .decode import DecodeError, decode_image
from .listing import check_input_exists, list_images, relative_root, unscanned_files
from .runtime import JobError
from .samples import crop_rng, encode_crop, random_crops, split_of
from .storage import (TMP_MARK, local_uri, relative_output_path, sweep_temp_files, write_hdf5_shard,
                      write_json_atomic)

log = logging.getLogger("colorspark.preprocess")

OUTPUTS = ("parquet", "hdf5", "errors", "prior.npy")


def process_image(content: bytes, key: str, config: dict) -> list[dict]:
    """Decode one file and return its encoded crops as row dicts; raises DecodeError for a bad file."""
    data, limits = config["data"], config["limits"]
    rgb = decode_image(content, max_pixels=limits["max_pixels"], max_bytes=limits["max_bytes"])
    rng = crop_rng(key, data["seed"])
    split = split_of(key, data["val_fraction"])
    rows = []
    for index, crop in enumerate(random_crops(rgb, data["size"], data["crops"], data["min_crop_scale"],
                                              data["flip"], rng)):
        sample = encode_crop(crop)
        rows.append({"crop": index, "split": split, "l": sample["l"].tobytes(), "ab": sample["ab"].tobytes(),
                     "bins": sample["bins"].tobytes(), "max_chroma": sample["max_chroma"],
                     "colorful": sample["max_chroma"] >= data["gray_chroma"],
                     "width": int(rgb.shape[1]), "height": int(rgb.shape[0])})
    return rows


SAMPLE_FIELDS = ("path", "key", "status", "error", "crop", "split", "l", "ab", "bins", "max_chroma", "colorful",
                 "width", "height")
SUMMARY = "partition"  # status of the one summary row that each task appends after its inputs


def process_partition(index: int, rows, config: dict, root: str, shard_dir: str | None):
    """One partition's work over (path, content) files: each yields either its crops (status ok) or one error row.

    The same pass writes the partition's HDF5 shard and counts the bins of its colourful train crops, and ends with a
    summary row (status SUMMARY: path = shard name or "", crop = rows in the shard, bins = int64 counts), so the job
    never iterates the samples in Python a second time. Rows are tuples in SAMPLE_FIELDS order.
    """
    counts = np.zeros(len(gamut_centres()), np.int64)
    shard_rows = []
    for row in rows:
        key = relative_output_path(row.path, root)
        try:
            samples = process_image(bytes(row.content), key, config)
        except DecodeError as exc:
            yield (row.path, key, "error", str(exc)) + (None,) * 9
            continue
        except Exception as exc:  # a bug or resource problem on one file must not fail the job
            yield (row.path, key, "error", f"internal error: {type(exc).__name__}: {exc}") + (None,) * 9
            continue
        for s in samples:
            if s["split"] == "train" and s["colorful"]:
                counts += bin_counts(np.frombuffer(s["bins"], np.int16))
            if shard_dir is not None:
                shard_rows.append({"path": row.path, **s})
            yield (row.path, key, "ok", None, s["crop"], s["split"], s["l"], s["ab"], s["bins"], s["max_chroma"],
                   s["colorful"], s["width"], s["height"])
    shard = write_shard(index, shard_rows, shard_dir, config["data"]["size"]) if shard_rows else ""
    yield (shard, "", SUMMARY, None, len(shard_rows), None, None, None, counts.tobytes()) + (None,) * 4


class InputFile(NamedTuple):
    path: str
    content: bytes


ARROW_ROWS_PER_BATCH = 256  # sample rows per output record batch: ~1.5 MB at 64 px


def process_batches(index: int, batches, config: dict, root: str, shard_dir: str | None):
    """mapInArrow body: `binaryFile` record batches (path, content) in, record batches of `sample_arrow_schema()` out.

    Arrow moves the file bytes and the samples between the JVM and Python in columns instead of one pickled row at a
    time; the work per file is `process_partition`'s.
    """
    import pyarrow as pa

    schema = sample_arrow_schema()

    def files():
        for batch in batches:
            for path, content in zip(batch.column("path").to_pylist(), batch.column("content").to_pylist()):
                yield InputFile(path, content)

    def to_batch(rows):
        columns = zip(*rows)
        return pa.RecordBatch.from_arrays([pa.array(c, f.type) for c, f in zip(columns, schema)], schema=schema)

    pending = []
    for row in process_partition(index, files(), config, root, shard_dir):
        pending.append(row)
        if len(pending) == ARROW_ROWS_PER_BATCH:
            yield to_batch(pending)
            pending = []
    if pending:
        yield to_batch(pending)


_REQUIRED = ("path", "key", "status")
_TYPES = {"crop": "int32", "width": "int32", "height": "int32", "l": "binary", "ab": "binary", "bins": "binary",
          "max_chroma": "float32", "colorful": "bool"}


def sample_arrow_schema():
    import pyarrow as pa

    return pa.schema([pa.field(name, pa.type_for_alias(_TYPES.get(name, "string")), name not in _REQUIRED)
                      for name in SAMPLE_FIELDS])


def sample_schema():
    from pyspark.sql.types import (BinaryType, BooleanType, FloatType, IntegerType, StringType, StructField,
                                   StructType)
    types = {"int32": IntegerType(), "binary": BinaryType(), "float32": FloatType(), "bool": BooleanType()}
    return StructType([StructField(name, types.get(_TYPES.get(name), StringType()), name not in _REQUIRED)
                       for name in SAMPLE_FIELDS])


def write_shard(index: int, samples: list[dict], directory: str, size: int) -> str:
    """Write one partition's samples (process_image dicts plus "path") to `directory/part-NNNNN.h5`, atomically."""
    out = {
        "l": np.stack([np.frombuffer(r["l"], np.uint8).reshape(size, size) for r in samples]),
        "ab": np.stack([np.frombuffer(r["ab"], np.int8).reshape(size // 4, size // 4, 2) for r in samples]),
        "bins": np.stack([np.frombuffer(r["bins"], np.int16).reshape(size // 4, size // 4) for r in samples]),
        "max_chroma": np.array([r["max_chroma"] for r in samples], np.float32),
        "colorful": np.array([r["colorful"] for r in samples], bool),
        "crop": np.array([r["crop"] for r in samples], np.int32),
        "split": np.array([r["split"] for r in samples], object),
        "path": np.array([r["path"] for r in samples], object),
    }
    name = f"part-{index:05d}.h5"
    write_hdf5_shard(Path(directory) / name, out, attrs={"size": size, "colorspark_version": __version__})
    return name


def _install(staging: Path, out: Path, names) -> None:
    """Move staged outputs over the old ones; old ones go aside first so no mix of runs is ever visible."""
    trash = out / f"{TMP_MARK}old-{uuid.uuid4().hex[:8]}"
    trash.mkdir()
    for name in names:
        if (out / name).exists():
            os.replace(out / name, trash / name)
        if (staging / name).exists():
            os.replace(staging / name, out / name)
    shutil.rmtree(trash, ignore_errors=True)


def run(spark, input_path: str, output_dir: str, config: dict) -> dict:
    """Run the whole preprocessing job; returns the manifest."""
    from pyspark import StorageLevel, TaskContext
    from pyspark.sql import functions as F

    started = time.time()
    out = Path(output_dir).resolve()
    formats = config["output"]["formats"]
    size = config["data"]["size"]
    check_input_exists(spark, input_path)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    for leftover in out.glob(".staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    sweep_temp_files(out)
    staging = out / f".staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()

    root = relative_root(spark, input_path)
    files = list_images(spark, input_path, config["data"]["extensions"]).select("path", "content")
    if config["data"]["partitions"]:
        files = files.repartition(config["data"]["partitions"])
    log.info("reading images from %s (extensions: %s)", input_path, ", ".join(config["data"]["extensions"]))
    shard_dir = str(staging / "hdf5") if "hdf5" in formats else None
    if shard_dir:
        os.makedirs(shard_dir, exist_ok=True)
    processed = files.mapInArrow(
        lambda batches: process_batches(TaskContext.get().partitionId(), batches, config, root, shard_dir),
        sample_schema())
    cached = processed.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        # This action runs the processing pass (and fills the cache): each task has reduced its partition to one
        # summary row, so the driver only adds up one counts vector per partition, as RDD.reduce would.
        summary_rows = cached.where(F.col("status") == SUMMARY).select("path", "crop", "bins").collect()
        shards = sorted(r["path"] for r in summary_rows if r["crop"])
        counts_by_bin = sum((np.frombuffer(r["bins"], np.int64) for r in summary_rows),
                            np.zeros(len(gamut_centres()), np.int64))
        samples = cached.where(F.col("status") != SUMMARY)
        empty = unscanned_files(spark, files, samples.select("key"), root)
        if empty:
            samples = samples.unionByName(spark.createDataFrame(
                [{"path": p, "key": k, "status": "error", "error": reason} for p, k, reason in empty],
                sample_schema()))
        tally = samples.groupBy("status", "split").agg(
            F.countDistinct("path").alias("images"), F.count("*").alias("crops"),
            F.sum(F.col("colorful").cast("int")).alias("colorful")).collect()
        split_counts = {r["split"]: (r["images"], r["crops"], r["colorful"]) for r in tally if r["status"] == "ok"}
        n_ok = sum(images for images, _, _ in split_counts.values())
        n_err = sum(r["images"] for r in tally if r["status"] == "error")
        log.info("%d input files: %d ok, %d failed", n_ok + n_err, n_ok, n_err)
        if n_ok + n_err == 0:
            raise JobError(f"no image files (extensions {', '.join(config['data']['extensions'])}) under {input_path}")
        if n_ok == 0:
            raise JobError(f"none of the {n_err} input files could be read; see the reasons in the log above")

        errors = samples.where("status = 'error'").select("path", "error")
        errors.coalesce(1).write.mode("overwrite").parquet(local_uri(staging / "errors"))
        for row in errors.limit(20).collect():
            log.info("  failed: %s: %s", row["path"], row["error"])

        if "parquet" in formats:
            columns = ["path", "crop", "l", "ab", "bins", "max_chroma", "colorful", "width", "height", "split"]
            samples.where("status = 'ok'").select(*columns).write.mode("overwrite").partitionBy("split").parquet(
                local_uri(staging / "parquet"))
            log.info("wrote Parquet samples to %s", out / "parquet")
        if shard_dir:
            log.info("wrote %d HDF5 shards to %s", len(shards), out / "hdf5")
        if counts_by_bin.sum() == 0:
            log.info("no colourful training crops: the prior is uniform")
            prior = np.full(len(counts_by_bin), 1.0 / len(counts_by_bin))
        else:
            prior = counts_by_bin / counts_by_bin.sum()
        np.save(staging / "prior.npy", prior.astype(np.float64))
    finally:
        cached.unpersist()

    sweep_temp_files(staging)  # a shard half-written by a killed task must not be installed with the others
    _install(staging, out, OUTPUTS)
    shutil.rmtree(staging, ignore_errors=True)
    train = split_counts.get("train", (0, 0, 0))
    val = split_counts.get("val", (0, 0, 0))
    manifest = {
        "colorspark_version": __version__, "input": input_path, "inputs": n_ok + n_err, "ok": n_ok, "errors": n_err,
        "train": train[0], "val": val[0], "train_crops": train[1], "val_crops": val[1],
        "train_colorful_crops": train[2], "val_colorful_crops": val[2],
        "formats": formats, "hdf5_shards": shards, "size": size,
        "output_stride": 4, "bins": len(prior), "seconds": round(time.time() - started, 2), "config": config,
    }
    write_json_atomic(out / "manifest.json", manifest)
    log.info("train: %d images (%d crops), val: %d images (%d crops); manifest at %s",
             train[0], train[1], val[0], val[1], out / "manifest.json")
    return manifest

