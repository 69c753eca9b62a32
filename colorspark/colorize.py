"""Job 3 (driver): colorize images at their full resolution with broadcast weights; results, summary and a report.

The per-image work is in `colorize_tasks` (executors). The driver checks the model (without TensorFlow: it only
passes the verified file on) and broadcasts it, and the Python workers start and build it while the driver lists
the inputs and finds names that collide up to their extension, both from Spark's file index without running a job,
and chooses the inputs the report shows. Then one Spark job colorizes
everything: each task writes its outputs and its part of the results table, and hands back only a small tally. The
driver publishes the results and writes the summary and the report. `summary.json` is removed at the start and
written last, so its presence means the run is complete. Video files get a pass of their own (`video_job`: a task
per segment, then the driver joins each video's segments).
"""

from __future__ import annotations

import logging
import posixpath
import time
from functools import partial

from . import __version__, fs, progress
from .colorize_tasks import (
    Plan,
    Tally,
    base_row,
    colorize_and_record,
    prepare_worker,
    result_schema,
    results_batch,
    stem_key,
)
from .colorizer import Rendering
from .datasets import PartWriter, part_files, read_table, write_part
from .devices import device_records
from .errors import JobError
from .inference import ModelFile
from .listing import Inputs, find_inputs, find_videos
from .metrics import SCORE_KEYS
from .modeldir import read_model_file
from .paths import InputLocation
from .reference import ReferenceMap, reference_map
from .report import render_report
from .session import python_workers_starting
from .shipped import describe_model
from .video_job import VideoTally, colorize_videos
from .video_tasks import VideoPlan

log = logging.getLogger("colorspark.colorize")

SUMMARY = "summary.json"


def run(spark, source: InputLocation, output_dir: str, model_dir: str, config: dict, resume: bool = False,
        reference: str | None = None, references_table: str | None = None) -> dict:
    """Run the whole colorize job on the inputs at `source` into `output_dir` (a URI); returns the summary.
    `reference` (an image, a folder of images or a palette) steers every input's colours, `references_table` maps
    inputs to references."""
    started = time.time()
    references = load_references(reference, references_table, config)
    out = fs.to_uri(output_dir)
    model_file, meta = load_model(model_dir)
    payload = spark.sparkContext.broadcast(model_file)
    builds = spark.sparkContext.accumulator(0)
    try:
        with python_workers_starting(spark, partial(prepare_worker, None if resume else payload, builds,
                                                    meta["input_size"])):
            inputs = find_inputs(spark, source, config["data"]["extensions"])
            videos = find_videos(source, config["video"]["extensions"])
            start_output(out)
            listed = inputs.listed()
            plan = Plan.from_config(config, meta, inputs.location.root, out, resume=resume,
                                    keep_extension=colliding_names(listed, inputs.location),
                                    shown=report_selection(listed, inputs.location, config), references=references)
        tally = colorize_all(spark, inputs, len(listed), payload, builds, plan, config)
        video_tally = (colorize_videos(spark, videos, inputs.location.root, out, payload, builds,
                                       VideoPlan.from_config(config, meta, plan.rendering, plan.staging, out), config,
                                       resume, plan.staging, references) if videos else VideoTally())
        n_inputs = account_for_inputs(spark, inputs, len(listed), tally, plan, config, len(videos))
        log.info("%d input files processed; the model was built %d time(s) across the Python workers",
                 n_inputs + len(videos), builds.value)
        publish_results(out, plan, with_videos=bool(videos))
        summary = summarize(tally, time.time() - started, model_label(model_dir, meta), builds.value, plan.rendering)
        summary["videos"] = video_tally.summary()
        log_failures(tally)
        fs.write_bytes(fs.join(out, "report.html"),
                       make_report(tally, summary, n_inputs, inputs.location, out, config, references,
                                   video_tally.rows))
        fs.write_json(fs.join(out, SUMMARY), summary)
    finally:
        payload.destroy()
    finish_output(out, plan)
    log.info("%d ok, %d failed, %d skipped; %.1f images/s; report: %s", summary["ok"], summary["errors"],
             summary["skipped"], summary["images_per_second"] or 0.0, fs.display(fs.join(out, "report.html")))
    if summary["ok"] + summary["skipped"] + summary["videos"]["ok"] + summary["videos"]["skipped"] == 0:
        raise JobError(f"none of the {n_inputs + len(videos)} inputs could be colorized; reasons in "
                       f"{fs.display(fs.join(out, 'results'))}" + (" and videos" if videos else ""))
    return summary


def load_references(reference: str | None, table: str | None, config: dict) -> ReferenceMap:
    """The references, each read and checked once on the driver before any work: one that cannot serve ends the
    job as a usage error (`UnusableReference`, exit code 2)."""
    limits = config["limits"]
    references = reference_map(reference, table, max_pixels=limits["max_pixels"], max_bytes=limits["max_bytes"])
    for ref in references.references():
        log.info("reference %s steers the colours (strength %g)", ref.name, config["colorize"]["reference_strength"])
    return references


def load_model(model_dir: str) -> tuple[ModelFile, dict]:
    data, meta = read_model_file(model_dir)
    log.info("model %s: preset %s, %d px input, %s", fs.display(model_dir), meta["settings"].get("preset"),
             meta["input_size"], training_note(meta))
    return ModelFile(data, meta["model_sha256"]), meta


def training_note(meta: dict) -> str:
    """How the model came about, in a few words: its rounds, or that it is a blend (`colorspark.blend`)."""
    if "blend" in meta:
        return f"{meta.get('rounds_done')} rounds of fine-tuning, blended {meta['blend']['weight']:g} with its start"
    note = f"{meta.get('rounds_done')} rounds"
    return note + (" of fine-tuning" if "init_model" in meta else "")


def start_output(out: str) -> None:
    """Withdraw the old summary (it marks a complete run) and clear what killed tasks of earlier runs left."""
    fs.make_dirs(out)
    fs.delete(fs.join(out, SUMMARY))
    fs.sweep_temp_files(out)


def colliding_names(listed: list[str], location: InputLocation) -> frozenset:
    """Relative paths of inputs whose name without extension is another input's too: their outputs keep the
    extension."""
    by_stem: dict[str, list[str]] = {}
    for path in listed:
        by_stem.setdefault(stem_key(path, location.root), []).append(location.relative(path))
    collisions = frozenset(rel for group in by_stem.values() if len(group) > 1 for rel in group)
    if collisions:
        log.info("%d inputs share a name up to the extension; their outputs keep the original extension "
                 "(e.g. photo.png.jpg)", len(collisions))
    return collisions


def report_selection(listed: list[str], location: InputLocation, config: dict) -> frozenset:
    """The inputs the report shows (the first `output.report_max_images` by relative path): only they get
    thumbnails, so the tasks spend nothing on the rest."""
    return frozenset(sorted(location.relative(path) for path in listed)
                     [:config["output"]["report_max_images"]])


def colorize_all(spark, inputs: Inputs, n_listed: int, payload, builds, plan: Plan, config: dict) -> Tally:
    """The colorizing pass, the job's only Spark job: all partitions' tallies, merged; with a progress line about
    every `log.progress_seconds`."""
    files = inputs.partitions(spark, config["colorize"]["partitions"])
    log.info("colorizing images under %s into %s", fs.display(inputs.location.root_uri), fs.display(plan.out_dir))
    done = progress.counter(spark.sparkContext)
    with progress.reporting("images", n_listed, lambda: done.value, config["log"]["progress_seconds"]):
        tallies = files.mapPartitionsWithIndex(
            lambda index, rows: colorize_and_record(index, rows, payload, builds, done, plan)).collect()
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    return total


def account_for_inputs(spark, inputs: Inputs, n_listed: int, tally: Tally, plan: Plan, config: dict,
                       n_videos: int = 0) -> int:
    """The number of image inputs, after an error row was added for each of the `n_listed` files that Spark's scan
    dropped. A run needs at least one image or one of its `n_videos` videos."""
    if tally.rows < n_listed:
        seen = {key for file in part_files(fs.join(plan.staging, "results"))
                for key in read_table(file, columns=["relative_path"]).column("relative_path").to_pylist()}
        rows = [{**base_row(path, plan), "status": "error", "error": reason}
                for path, _, reason in inputs.unscanned(spark, seen)]
        with PartWriter(fs.join(plan.staging, "results", "part-unscanned.parquet")) as writer:
            writer.write(results_batch(rows))
        for row in rows:
            tally.add(row, plan)
    if tally.rows == 0 and n_videos == 0:
        raise JobError(f"no image files (extensions {', '.join(config['data']['extensions'])}) or videos "
                       f"({', '.join(config['video']['extensions'])}) under {fs.display(inputs.location.given)}")
    return tally.rows


def publish_results(out: str, plan: Plan, with_videos: bool = False) -> None:
    """OUT/results (and OUT/videos): staged by the tasks, then made visible in one step where the filesystem allows
    it. A run without rows still gets one empty part, so that readers find the table's columns."""
    results = fs.join(plan.staging, "results")
    if not part_files(results):
        write_part(results, result_schema().empty_table())
    fs.publish(plan.staging, out, ["results", "videos"] if with_videos else ["results"])


def model_label(model_dir: str, meta: dict) -> str:
    """The model as the summary and the report name it: `shipped models/small (preset small, 64 px, 10 rounds)`."""
    return (f"{describe_model(model_dir)} (preset {meta['settings'].get('preset')}, {meta['input_size']} px, "
            f"{training_note(meta)})")


def summarize(tally: Tally, seconds: float, model: str, model_builds: int, rendering: Rendering) -> dict:
    """Counts by status, mean scores of the images that had a colour truth, the devices the workers used, and the
    rendering settings (temperature, input size, upsampling), so that the outputs can be made again the same way.

    `cast_ratio` is the mean colour cast over the gray baseline's (a ratio of means, so photos with a strong true
    tint weigh in more than near-neutral ones, whose per-image ratio would be noise): below 1 the colorizer got
    the photos' overall colour closer than leaving them gray; None without a scored image or a gray cast."""
    sums = tally.score_sums
    mean_scores = {key: sums[key][0] / sums[key][1] if sums.get(key, [0, 0])[1] else None for key in SCORE_KEYS}
    cast, cast_gray = mean_scores["cast"], mean_scores["cast_gray"]
    n_ok = tally.counts.get("ok", 0)
    return {"inputs": tally.rows, "ok": n_ok, "errors": tally.counts.get("error", 0),
            "skipped": tally.counts.get("skipped", 0), "scored": tally.scored,
            "mean_scores": mean_scores, "cast_ratio": cast / cast_gray if cast is not None and cast_gray else None,
            "mean_millis_per_image": tally.millis[0] / tally.millis[1] if tally.millis[1] else None,
            "seconds": round(seconds, 2), "images_per_second": round(n_ok / seconds, 3) if seconds > 0 else None,
            "model": model, "colorspark_version": __version__, "model_builds": model_builds,
            "devices": device_records(tally.devices), "rendering": rendering.record(),
            "references": tally.references, "wrong_references": tally.wrong_reference_count}


def log_failures(tally: Tally) -> None:
    for path, error in tally.failures:
        log.info("  failed: %s: %s", path, error)
    if tally.wrong_reference_count:
        log.warning("%d outputs' reference looks wrong for them (its colours are far from what the model predicts; "
                    "see reference_looks_wrong in results), e.g.:", tally.wrong_reference_count)
    for path, name, divergence in tally.wrong_references:
        log.warning("  reference looks wrong: %s: %s (divergence %.2f)", path, name, divergence)


def make_report(tally: Tally, summary: dict, n_inputs: int, location: InputLocation, out: str, config: dict,
                references: ReferenceMap, videos: list[dict] = ()) -> bytes:
    shown = sorted(tally.shown, key=lambda row: row["relative_path"])[:config["output"]["report_max_images"]]
    jpeg_folder = fs.display(fs.join(out, "jpeg")) + "/"  # report.html links each JPEG relative to itself
    previews = {ref.name: ref.preview for ref in references.references()}
    rows = [{**row, "jpeg_href": "jpeg/" + row["jpeg_path"][len(jpeg_folder):]
             if (row["jpeg_path"] or "").startswith(jpeg_folder) else None,
             "thumb_reference": previews.get(row["reference"])} for row in shown]
    video_folder = fs.display(fs.join(out, "video")) + "/"
    shown_videos = sorted(videos, key=lambda row: row["relative_path"])[:config["output"]["report_max_images"]]
    video_rows = [{**row, "video_href": "video/" + row["video_path"][len(video_folder):]
                   if (row["video_path"] or "").startswith(video_folder) else None,
                   "thumb_reference": previews.get(row["reference"])} for row in shown_videos]
    html = render_report(rows, summary, total_rows=n_inputs,
                         title=f"colorspark: {posixpath.basename(location.root.rstrip('/')) or location.root}",
                         videos=video_rows)
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
