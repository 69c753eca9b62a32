"""Job 3 (driver): colorize images at their full resolution with broadcast weights; results, summary and a report.

The per-image work is in `colorize_tasks` (executors). The driver checks and broadcasts the model, lists the inputs,
finds names that collide up to their extension, and afterwards publishes the results, the summary and the report.
`summary.json` is removed at the start and written last, so its presence means the run is complete.
"""

from __future__ import annotations

import logging
import math
import posixpath
import time

from . import __version__, fs
from .colorize_tasks import THUMB_KEYS, Plan, base_row, colorize_partition, result_schema, stem_key
from .datasets import write_parquet
from .errors import JobError
from .inference import ModelPayload
from .listing import Inputs, find_inputs
from .metrics import SCORE_KEYS
from .modeldir import load_model_dir
from .report import render_report

log = logging.getLogger("colorspark.colorize")

SUMMARY = "summary.json"


def run(spark, input_path: str, output_dir: str, model_dir: str, config: dict, resume: bool = False) -> dict:
    """Run the whole colorize job into `output_dir` (a URI); returns the summary."""
    started = time.time()
    out = fs.to_uri(output_dir)
    inputs = find_inputs(spark, input_path, config["data"]["extensions"])
    model, meta = load_model(model_dir)
    start_output(out)
    plan = Plan.from_config(config, meta, inputs.root, out, resume=resume,
                            keep_extension=colliding_names(inputs))
    payload = spark.sparkContext.broadcast(ModelPayload.from_model(model, any_input_size=True))
    builds = spark.sparkContext.accumulator(0)
    results = colorize_all(spark, inputs, payload, builds, plan, config)
    try:
        results, n_inputs = account_for_inputs(spark, inputs, results, plan, input_path, config)
        log.info("%d input files processed; the model was built %d time(s) across the Python workers",
                 n_inputs, builds.value)
        publish_results(results, out, plan)
        summary = {**summarize(results, time.time() - started, model_dir), "model_builds": builds.value,
                   "devices": [r.asDict() for r in results.where("device IS NOT NULL").select("worker", "device")
                               .distinct().orderBy("worker", "device").collect()]}
        log_failures(results)
        fs.write_bytes(fs.join(out, "report.html"), make_report(results, summary, n_inputs, inputs.root, out, config))
        fs.write_json(fs.join(out, SUMMARY), summary)
    finally:
        results.unpersist()
        payload.destroy()
    finish_output(out, plan)
    log.info("%d ok, %d failed, %d skipped; %.1f images/s; report: %s", summary["ok"], summary["errors"],
             summary["skipped"], summary["images_per_second"] or 0.0, fs.display(fs.join(out, "report.html")))
    if summary["ok"] + summary["skipped"] == 0:
        raise JobError(f"none of the {n_inputs} inputs could be colorized; reasons in "
                       f"{fs.display(fs.join(out, 'results'))}")
    return summary


def load_model(model_dir: str):
    model, meta = load_model_dir(model_dir)
    log.info("model %s: preset %s, %d px input, trained %s rounds", fs.display(model_dir),
             meta["settings"].get("preset"), meta["input_size"], meta.get("rounds_done"))
    return model, meta


def start_output(out: str) -> None:
    """Withdraw the old summary (it marks a complete run) and clear what killed tasks of earlier runs left."""
    fs.make_dirs(out)
    fs.delete(fs.join(out, SUMMARY))
    fs.sweep_temp_files(out)


def colliding_names(inputs: Inputs) -> frozenset:
    """Inputs whose relative path without extension is another input's too: their outputs keep the extension."""
    root = inputs.root
    collisions = (inputs.frame.select("path").rdd.map(lambda r: (stem_key(r.path, root), r.path)).groupByKey()
                  .flatMap(lambda kv: list(kv[1]) if len(kv[1]) > 1 else []).collect())
    if collisions:
        log.info("%d inputs share a name up to the extension; their outputs keep the original extension "
                 "(e.g. photo.png.jpg)", len(collisions))
    return frozenset(collisions)


def colorize_all(spark, inputs: Inputs, payload, builds, plan: Plan, config: dict):
    """The colorizing pass, cached: one result row per scanned input file."""
    from pyspark import StorageLevel

    files = inputs.frame
    if config["colorize"]["partitions"]:
        files = files.repartition(config["colorize"]["partitions"])
    log.info("colorizing images under %s into %s", inputs.root, fs.display(plan.out_dir))
    rows = files.rdd.mapPartitionsWithIndex(lambda i, part: colorize_partition(i, part, payload, builds, plan))
    return spark.createDataFrame(rows, result_schema()).persist(StorageLevel.MEMORY_AND_DISK)


def account_for_inputs(spark, inputs: Inputs, results, plan: Plan, input_path: str, config: dict):
    """(results with an error row for each file Spark's scan dropped, number of inputs); runs the pass."""
    n_inputs = results.count()
    missing = inputs.unscanned(spark, results.select("relative_path"))
    if missing:
        results = results.unionByName(spark.createDataFrame(
            [{**base_row(path, plan), "status": "error", "error": reason, "worker": None}
             for path, _, reason in missing], result_schema()))
        n_inputs += len(missing)
    if n_inputs == 0:
        raise JobError(f"no image files (extensions {', '.join(config['data']['extensions'])}) under "
                       f"{fs.display(input_path)}")
    return results, n_inputs


def publish_results(results, out: str, plan: Plan) -> None:
    """OUT/results: staged, then made visible in one step where the filesystem allows it."""
    staging = fs.join(out, f"{fs.STAGING_MARK}{plan.run_id}")
    write_parquet(results.drop(*THUMB_KEYS), fs.join(staging, "results"))
    fs.publish(staging, out, ["results"])


def summarize(results, seconds: float, model_dir: str) -> dict:
    """Counts by status and mean scores of the images that had a colour truth.

    `cast_ratio` is the mean colour cast over the gray baseline's (a ratio of means, so photos with a strong true
    tint weigh in more than near-neutral ones, whose per-image ratio would be noise): below 1 the colorizer got
    the photos' overall colour closer than leaving them gray; None without a scored image or a gray cast."""
    from pyspark.sql import functions as F

    counts = {r["status"]: r["n"] for r in results.groupBy("status").agg(F.count("*").alias("n")).collect()}
    scored = results.where("has_truth AND status = 'ok'")
    # PSNR of a perfect prediction is infinite; average finite values only.
    means = scored.agg(F.count("*").alias("scored"), *[
        F.avg(F.when(~F.isnan(F.col(k)) & (F.abs(F.col(k)) != float("inf")), F.col(k))).alias(k)
        for k in SCORE_KEYS]).collect()[0].asDict()
    timing = results.where("status = 'ok'").agg(F.avg("millis").alias("mean_millis")).collect()[0]
    n_ok = counts.get("ok", 0)
    mean_scores = {k: (None if v is None or math.isnan(v) else v) for k, v in means.items() if k != "scored"}
    cast, cast_gray = mean_scores["cast"], mean_scores["cast_gray"]
    return {"inputs": sum(counts.values()), "ok": n_ok, "errors": counts.get("error", 0),
            "skipped": counts.get("skipped", 0), "scored": means["scored"], "mean_scores": mean_scores,
            "cast_ratio": cast / cast_gray if cast is not None and cast_gray else None,
            "mean_millis_per_image": timing["mean_millis"], "seconds": round(seconds, 2),
            "images_per_second": round(n_ok / seconds, 3) if seconds > 0 else None,
            "model": fs.display(model_dir), "colorspark_version": __version__}


def log_failures(results) -> None:
    for row in results.where("status = 'error'").select("path", "error").limit(20).collect():
        log.info("  failed: %s: %s", row["path"], row["error"])


def make_report(results, summary: dict, n_inputs: int, root: str, out: str, config: dict) -> bytes:
    shown = results.orderBy("relative_path").limit(config["output"]["report_max_images"]).toLocalIterator()
    jpeg_folder = fs.display(fs.join(out, "jpeg")) + "/"  # report.html links each JPEG relative to itself
    rows = [{**row, "jpeg_href": "jpeg/" + row["jpeg_path"][len(jpeg_folder):]
             if (row["jpeg_path"] or "").startswith(jpeg_folder) else None} for row in (r.asDict() for r in shown)]
    html = render_report(rows, summary, total_rows=n_inputs,
                         title=f"colorspark: {posixpath.basename(root.rstrip('/')) or root}")
    return html.encode("utf-8")


def finish_output(out: str, plan: Plan) -> None:
    """Drop HDF5 Lab files of earlier runs (unless resuming) and temporaries of killed tasks."""
    if plan.lab_format == "hdf5" and not plan.resume:
        lab = fs.join(out, "lab")
        for name in fs.children(lab):
            if name.startswith("part-") and name.endswith(".h5") and not name.startswith(f"part-{plan.run_id}-"):
                fs.delete(fs.join(lab, name))
    swept = fs.sweep_temp_files(out)
    if swept:
        log.info("removed %d temporary files left by interrupted tasks", swept)

