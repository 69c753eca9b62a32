"""Job 1 (driver): images -> compact training samples in Parquet and HDF5, the colour prior and a manifest.

The per-image work runs on the executors (`preprocess_tasks`) in one `mapInArrow` pass that writes the samples into
a staging folder itself; it is the job's only Spark job. From its small result rows the driver accounts for every
input, writes the errors and the prior, and publishes the staged outputs at the end: `manifest.json` is removed
first and written last, so its presence means the dataset is complete, on every filesystem.
"""

from __future__ import annotations

import io
import logging
import time
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import __version__, fs, progress
from .balance import crops_per_folder
from .bins import gamut_centres, prior_from_counts
from .datasets import write_part
from .errors import JobError
from .listing import Inputs, find_inputs
from .paths import InputLocation
from .preprocess_tasks import SUMMARY, Staging, prepare_worker, process_batches, result_ddl
from .samples import OUTPUT_STRIDE
from .session import python_workers_starting
from .splits import SPLITS

log = logging.getLogger("colorspark.preprocess")

OUTPUTS = ("parquet", "hdf5", "errors", "prior.npy")
MANIFEST = "manifest.json"


def run(spark, source: InputLocation, output_dir: str, config: dict) -> dict:
    """Run the whole preprocessing job on the inputs at `source`; returns the manifest."""
    started = time.time()
    out = fs.to_uri(output_dir)
    with python_workers_starting(spark, prepare_worker):
        inputs = find_inputs(spark, source, config["data"]["extensions"])
        staging = start_staging(out)
        folder_crops = training_crops(inputs, config)
        results = process(spark, inputs, staging, config, folder_crops)
    shards, counts = partition_summaries(results)
    files = add_unscanned(spark, inputs, results)
    tally = count_results(files, source.given, config)
    write_errors(files, staging)
    write_prior(prior_from_counts(counts), staging)
    fs.sweep_temp_files(staging)  # a file half-written by a killed task must not be published with the others
    fs.publish(staging, out, OUTPUTS)
    manifest = (make_manifest(source.given, config, tally, shards, time.time() - started)
                | {"folder_crops": folder_crops})
    fs.write_json(fs.join(out, MANIFEST), manifest)
    log.info("%s; manifest at %s", ", ".join(f"{split}: {manifest[split]} images ({manifest[split + '_crops']} crops)"
                                             for split in SPLITS), fs.display(fs.join(out, MANIFEST)))
    return manifest


def start_staging(out: str) -> str:
    """Withdraw the old manifest, clear what earlier killed runs left, and make a fresh staging folder."""
    fs.delete(fs.join(out, MANIFEST))
    for name in fs.children(out):
        if name.startswith(fs.STAGING_MARK):
            fs.delete(fs.join(out, name))
    fs.sweep_temp_files(out)
    staging = fs.join(out, f"{fs.STAGING_MARK}{uuid.uuid4().hex[:8]}")
    fs.make_dirs(staging)
    return staging


def training_crops(inputs: Inputs, config: dict) -> dict[str, int]:
    """{top-level folder: crops per training photo}, from the driver's listing (`balance.crops_per_folder`)."""
    folder_crops = crops_per_folder([inputs.location.relative(path) for path in inputs.listed()],
                                    config["data"])
    if config["data"]["balance"] != "none":
        log.info("balance %s: crops per training photo by folder: %s", config["data"]["balance"],
                 ", ".join(f"{folder} {n}" for folder, n in folder_crops.items()))
    return folder_crops


def process(spark, inputs: Inputs, staging: str, config: dict, folder_crops: dict | None = None):
    """The processing pass, the job's one Spark job: the tasks write the samples into `staging`, and the driver gets
    back, as one Arrow table, one small result row per input file plus one summary row per partition.

    Everything after it (tallies, errors, the unscanned-file check, the prior) works on that table on the driver:
    each would otherwise be a Spark job of its own over cached results, a few hundred ms each on every run. The
    table holds about a hundred bytes per input file; the unscanned-file check needs every key on the driver anyway.
    """
    from pyspark import TaskContext

    formats = config["output"]["formats"]
    targets = Staging(fs.join(staging, "parquet") if "parquet" in formats else None,
                      fs.join(staging, "hdf5") if "hdf5" in formats else None)
    files = inputs.frame
    if config["data"]["partitions"]:
        files = files.repartition(config["data"]["partitions"])
    root = inputs.location.root
    log.info("processing images (extensions: %s) into %s", ", ".join(config["data"]["extensions"]),
             fs.display(staging))
    done, interval = progress.counter(spark.sparkContext), config["log"]["progress_seconds"]
    with progress.reporting("images", len(inputs.listed()) if interval else None, lambda: done.value, interval):
        return files.mapInArrow(
            lambda batches: process_batches(TaskContext.get().partitionId(), counted(batches, done), config, root,
                                            targets, folder_crops),
            result_ddl()).toArrow()


def counted(batches, done):
    """(executors) The input record batches, each one's rows added to the `done` accumulator (the driver's progress
    line) as the task reads it."""
    for batch in batches:
        done.add(batch.num_rows)
        yield batch


def partition_summaries(results) -> tuple[list[str], np.ndarray]:
    """(HDF5 shard names, bin counts of the colourful train crops) from the partitions' summary rows."""
    summaries = results.filter(pc.equal(results["status"], SUMMARY)).select(["path", "crops", "bins"]).to_pylist()
    shards = sorted(r["path"] for r in summaries if r["crops"])
    counts = sum((np.frombuffer(r["bins"], np.int64) for r in summaries), np.zeros(len(gamut_centres()), np.int64))
    return shards, counts


def add_unscanned(spark, inputs: Inputs, results):
    """The per-file rows, plus an error row for each file that Spark's scan dropped (empty, unreadable)."""
    files = results.filter(pc.not_equal(results["status"], SUMMARY))
    missing = inputs.unscanned(spark, set(files["key"].to_pylist()))
    if not missing:
        return files
    rows = [{"path": path, "key": key, "status": "error", "error": reason} for path, key, reason in missing]
    return pa.concat_tables([files, pa.Table.from_pylist(rows, schema=files.schema)])


def count_results(files, input_path: str, config: dict) -> dict:
    """Images, crops and colourful crops per split, and how many inputs failed; fails the job if nothing was usable."""
    ok = files.filter(pc.equal(files["status"], "ok"))
    sums = ok.group_by("split").aggregate([("split", "count"), ("crops", "sum"), ("colorful", "sum")]).to_pylist()
    splits = {r["split"]: (r["split_count"], r["crops_sum"], r["colorful_sum"]) for r in sums}
    n_ok, n_err = ok.num_rows, files.num_rows - ok.num_rows
    log.info("%d input files: %d ok, %d failed", n_ok + n_err, n_ok, n_err)
    if n_ok + n_err == 0:
        raise JobError(f"no image files (extensions {', '.join(config['data']['extensions'])}) under "
                       f"{fs.display(input_path)}")
    if n_ok == 0:
        raise JobError(f"none of the {n_err} input files could be read; see the reasons in the log above")
    return {"ok": n_ok, "errors": n_err, "splits": splits}


def write_errors(files, staging: str) -> None:
    errors = files.filter(pc.equal(files["status"], "error")).select(["path", "error"])
    write_part(fs.join(staging, "errors"), errors)
    for row in errors.slice(0, 20).to_pylist():
        log.info("  failed: %s: %s", row["path"], row["error"])


def write_prior(prior: np.ndarray, staging: str) -> None:
    if prior.std() == 0:
        log.info("no colourful training crops: the prior is uniform")
    buffer = io.BytesIO()
    np.save(buffer, prior.astype(np.float64))
    fs.write_bytes(fs.join(staging, "prior.npy"), buffer.getvalue())


def make_manifest(input_path: str, config: dict, tally: dict, shards: list[str], seconds: float) -> dict:
    """manifest.json: per split (train, val, selection) its images as `<split>`, and `<split>_crops`,
    `<split>_colorful_crops`; the input counts, the config and what a reader of the samples needs."""
    per_split = {}
    for split in SPLITS:
        images, crops, colorful = tally["splits"].get(split, (0, 0, 0))
        per_split |= {split: images, f"{split}_crops": crops, f"{split}_colorful_crops": colorful}
    return {
        "colorspark_version": __version__, "input": fs.display(input_path), "inputs": tally["ok"] + tally["errors"],
        "ok": tally["ok"], "errors": tally["errors"], **per_split,
        "formats": config["output"]["formats"], "hdf5_shards": shards, "size": config["data"]["size"],
        "output_stride": OUTPUT_STRIDE, "bins": len(gamut_centres()), "seconds": round(seconds, 2), "config": config,
    }

