"""Job 3: colorize images at their full resolution with broadcast weights; results, summary and an HTML report.

Per image: decode -> L at the original resolution -> L resized to the model's input -> predict (in batches) ->
annealed-mean ab at 1/4 of the input -> ab upsampled to the original size -> recombined with the original L -> JPEG
and Lab array. Colour inputs are colorized from their L alone and then scored against their own colours.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import posixpath
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import __version__
from .colorspace import lab_to_rgb8, rgb_to_l, rgb_to_lab
from .decode import DecodeError, decode_image, is_grayscale
from .inference import ModelPayload, predict_ab, worker_model, worker_name
from .metrics import rebalancing_pixel_weights, score_colorization
from .modeldir import load_model_dir
from .listing import check_input_exists, list_images, relative_root, unscanned_files
from .report import make_thumbnail, render_report, write_report
from .runtime import JobError
from .samples import L_SCALE
from .storage import (atomic_path, join_inside, local_uri, relative_output_path, replace_with_extension,
                      save_npy_atomic, sweep_temp_files, temp_path_for, write_json_atomic)

log = logging.getLogger("colorspark.colorize")

SCORE_KEYS = ("psnr", "psnr_gray", "ssim", "ssim_gray", "auc", "auc_gray", "auc_rebal", "auc_rebal_gray",
              "colourfulness", "colourfulness_gray", "colourfulness_truth")
THUMB_KEYS = ("thumb_input", "thumb_color", "thumb_truth")
LAB_EXTENSIONS = {"npy": ".npy", "mat": ".mat"}


# --- pure image steps --------------------------------------------------------------------------------------------------

def _resize_channel(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of one float32 channel (Pillow antialiases when shrinking)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
                      .resize((width, height), Image.BILINEAR), dtype=np.float32)


def model_input(l_full: np.ndarray, size: int) -> np.ndarray:
    """Full-resolution L -> the network's size×size input of L codes (L·2.55)."""
    return _resize_channel(l_full, size, size) * L_SCALE


def upsample_ab(ab_small: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack([_resize_channel(ab_small[..., c], width, height) for c in range(2)], axis=-1)


def recombine(l_full: np.ndarray, ab_small: np.ndarray) -> np.ndarray:
    """The colorized Lab image: the original full-resolution L with the predicted ab brought up to its size."""
    height, width = l_full.shape
    return np.concatenate([l_full[..., None], upsample_ab(ab_small, width, height)], axis=-1).astype(np.float32)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# --- the partition worker --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """Everything a task needs besides the model; small and picklable."""
    root: str
    out_dir: str
    lab_format: str
    resume: bool
    jpeg_quality: int
    thumb_size: int
    temperature: float
    input_size: int
    batch_size: int
    max_pixels: int
    max_bytes: int
    prior: tuple
    keep_extension: frozenset  # inputs whose name without extension collides with another input's
    run_id: str


def output_names(path: str, plan: Plan) -> tuple[str, str]:
    """(jpeg, lab) paths relative to OUT/jpeg and OUT/lab for one input."""
    rel = relative_output_path(path, plan.root)
    stem = rel if path in plan.keep_extension else replace_with_extension(rel, "")
    return stem + ".jpg", stem + LAB_EXTENSIONS.get(plan.lab_format, "")


def stem_key(path: str, root: str) -> str:
    """What two inputs must not share: their relative path without extension (case-folded for such filesystems)."""
    return replace_with_extension(relative_output_path(path, root), "").casefold()


class _Hdf5Lab:
    """One partition's Lab arrays in one HDF5 file: written as they come to a temp file, renamed when complete."""

    def __init__(self, path: Path):
        self.path, self.tmp, self.h5 = path, temp_path_for(path), None

    def add(self, name: str, lab: np.ndarray) -> None:
        if self.h5 is None:
            import h5py

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.h5 = h5py.File(self.tmp, "w")
            self.h5.attrs["colorspark_version"] = __version__
        self.h5.create_dataset(name, data=lab, compression="gzip", compression_opts=1)

    def close(self) -> None:
        if self.h5 is not None:
            self.h5.close()
            os.replace(self.tmp, self.path)


def _write_lab(lab: np.ndarray, target: Path, fmt: str) -> None:
    if fmt == "npy":
        save_npy_atomic(target, lab)
    else:
        from scipy.io import savemat

        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                savemat(fh, {"lab": lab, "L": lab[..., 0], "ab": lab[..., 1:]}, do_compression=True)


def _base_row(path: str, plan: Plan) -> dict:
    return {"path": path, "relative_path": relative_output_path(path, plan.root), "status": "ok", "error": None,
            "jpeg_path": None, "lab_path": None, "width": None, "height": None, "millis": None, "has_truth": False,
            "worker": worker_name(), **dict.fromkeys(SCORE_KEYS), **dict.fromkeys(THUMB_KEYS)}


def _finish(item: dict, ab_small: np.ndarray, plan: Plan, out: Path, h5lab, per_image_predict_s: float) -> dict:
    started = time.perf_counter()
    row, rgb, lab_in = item["row"], item["rgb"], item["lab_in"]
    l_full = lab_in[..., 0]
    lab = recombine(l_full, ab_small)
    colorized = lab_to_rgb8(lab)
    jpeg_rel, lab_rel = output_names(row["path"], plan)
    jpeg_target = join_inside(out / "jpeg", jpeg_rel)
    with atomic_path(jpeg_target) as tmp:
        tmp.write_bytes(encode_jpeg(colorized, plan.jpeg_quality))
    if h5lab is not None:
        h5lab.add(replace_with_extension(jpeg_rel, ""), lab)
        row["lab_path"] = f"{h5lab.path}:/{replace_with_extension(jpeg_rel, '')}"
    else:
        lab_target = join_inside(out / "lab", lab_rel)
        _write_lab(lab, lab_target, plan.lab_format)
        row["lab_path"] = str(lab_target)
    gray = lab_to_rgb8(np.dstack([l_full, np.zeros_like(l_full), np.zeros_like(l_full)]))
    row.update(jpeg_path=str(jpeg_target), thumb_input=make_thumbnail(gray, plan.thumb_size),
               thumb_color=make_thumbnail(colorized, plan.thumb_size))
    if row["has_truth"]:
        ab_true = lab_in[..., 1:]
        weights = rebalancing_pixel_weights(ab_true, np.asarray(plan.prior))
        row.update(score_colorization(rgb, colorized, gray, ab_true, lab[..., 1:], weights))
        row["thumb_truth"] = make_thumbnail(rgb, plan.thumb_size)
    row["millis"] = round((item["prepare_s"] + per_image_predict_s + time.perf_counter() - started) * 1000.0, 2)
    return row


def colorize_partition(index: int, rows, payload_bc, builds, plan: Plan):
    """mapPartitionsWithIndex body: one result row per input file, whatever happens to it."""
    out = Path(plan.out_dir)
    h5lab = _Hdf5Lab(out / "lab" / f"part-{plan.run_id}-{index:05d}.h5") if plan.lab_format == "hdf5" else None
    pending: list[dict] = []
    model = None

    def flush():
        nonlocal model
        if not pending:
            return []
        model = model or worker_model(payload_bc.value, builds)
        started = time.perf_counter()
        try:
            ab = predict_ab(model, np.stack([p["x"] for p in pending]), plan.temperature)
        except Exception as exc:  # e.g. out of memory: every image of the batch gets the reason
            failed = [{**p["row"], "status": "error", "error": f"prediction failed: {type(exc).__name__}: {exc}"}
                      for p in pending]
            pending.clear()
            return failed
        share = (time.perf_counter() - started) / len(pending)
        done = []
        for item, ab_small in zip(pending, ab):
            try:
                done.append(_finish(item, ab_small, plan, out, h5lab, share))
            except Exception as exc:
                done.append({**item["row"], "status": "error",
                             "error": f"writing outputs failed: {type(exc).__name__}: {exc}",
                             "jpeg_path": None, "lab_path": None})
        pending.clear()
        return done

    for file in rows:
        row = _base_row(file.path, plan)
        if plan.resume:
            jpeg_rel, lab_rel = output_names(file.path, plan)
            jpeg_target = join_inside(out / "jpeg", jpeg_rel)
            lab_done = plan.lab_format == "hdf5" or join_inside(out / "lab", lab_rel).is_file()
            if jpeg_target.is_file() and lab_done:
                yield {**row, "status": "skipped", "error": "outputs exist (--resume)",
                       "jpeg_path": str(jpeg_target)}
                continue
        started = time.perf_counter()
        try:
            rgb = decode_image(bytes(file.content), max_pixels=plan.max_pixels, max_bytes=plan.max_bytes)
            has_truth = not is_grayscale(rgb)
            lab_in = rgb_to_lab(rgb) if has_truth else rgb_to_l(rgb)[..., None]
            x = model_input(lab_in[..., 0], plan.input_size)
        except DecodeError as exc:
            yield {**row, "status": "error", "error": str(exc)}
            continue
        except Exception as exc:
            yield {**row, "status": "error", "error": f"internal error: {type(exc).__name__}: {exc}"}
            continue
        row.update(width=int(rgb.shape[1]), height=int(rgb.shape[0]), has_truth=has_truth)
        pending.append({"row": row, "rgb": rgb, "lab_in": lab_in, "x": x, "prepare_s": time.perf_counter() - started})
        if len(pending) >= plan.batch_size:
            yield from flush()
    yield from flush()
    if h5lab is not None:
        h5lab.close()


def result_schema():
    from pyspark.sql.types import (BinaryType, BooleanType, DoubleType, IntegerType, StringType, StructField,
                                   StructType)
    fields = [StructField(name, StringType(), True) for name in
              ("path", "relative_path", "status", "error", "jpeg_path", "lab_path")]
    fields += [StructField("width", IntegerType(), True), StructField("height", IntegerType(), True),
               StructField("millis", DoubleType(), True), StructField("has_truth", BooleanType(), True),
               StructField("worker", StringType(), True)]
    fields += [StructField(key, DoubleType(), True) for key in SCORE_KEYS]
    fields += [StructField(key, BinaryType(), True) for key in THUMB_KEYS]
    return StructType(fields)


# --- the job ---------------------------------------------------------------------------------------------------------

def summarize(results, seconds: float, model_dir: str) -> dict:
    """Counts by status and mean scores of the images that had a colour truth."""
    from pyspark.sql import functions as F

    counts = {r["status"]: r["n"] for r in results.groupBy("status").agg(F.count("*").alias("n")).collect()}
    scored = results.where("has_truth AND status = 'ok'")
    # PSNR of a perfect prediction is infinite; average finite values only.
    means = scored.agg(F.count("*").alias("scored"), *[
        F.avg(F.when(~F.isnan(F.col(k)) & (F.abs(F.col(k)) != float("inf")), F.col(k))).alias(k)
        for k in SCORE_KEYS]).collect()[0].asDict()
    timing = results.where("status = 'ok'").agg(F.avg("millis").alias("mean_millis")).collect()[0]
    n_ok = counts.get("ok", 0)
    return {"inputs": sum(counts.values()), "ok": n_ok, "errors": counts.get("error", 0),
            "skipped": counts.get("skipped", 0), "scored": means.pop("scored"),
            "mean_scores": {k: (None if v is None or math.isnan(v) else v) for k, v in means.items()},
            "mean_millis_per_image": timing["mean_millis"], "seconds": round(seconds, 2),
            "images_per_second": round(n_ok / seconds, 3) if seconds > 0 else None,
            "model": model_dir, "colorspark_version": __version__}


def run(spark, input_path: str, output_dir: str, model_dir: str, config: dict, resume: bool = False) -> dict:
    from pyspark import StorageLevel

    started = time.time()
    out = Path(output_dir).resolve()
    check_input_exists(spark, input_path)
    model_dir = str(Path(model_dir).resolve())
    model, meta = load_model_dir(model_dir)
    log.info("model %s: preset %s, %d px input, trained %s rounds", model_dir, meta["settings"].get("preset"),
             meta["input_size"], meta.get("rounds_done"))
    out.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(out)
    root = relative_root(spark, input_path)
    files = list_images(spark, input_path, config["data"]["extensions"])
    if config["colorize"]["partitions"]:
        files = files.repartition(config["colorize"]["partitions"])
    collisions = (files.select("path").rdd.map(lambda r: (stem_key(r.path, root), r.path)).groupByKey()
                  .flatMap(lambda kv: list(kv[1]) if len(kv[1]) > 1 else []).collect())
    if collisions:
        log.info("%d inputs share a name up to the extension; their outputs keep the original extension "
                 "(e.g. photo.png.jpg)", len(collisions))
    run_id = uuid.uuid4().hex[:8]
    plan = Plan(root=root, out_dir=str(out), lab_format=config["output"]["lab_format"], resume=resume,
                jpeg_quality=config["output"]["jpeg_quality"], thumb_size=config["output"]["thumb_size"],
                temperature=float(meta["temperature"]), input_size=int(meta["input_size"]),
                batch_size=config["colorize"]["batch_size"], max_pixels=config["limits"]["max_pixels"],
                max_bytes=config["limits"]["max_bytes"], prior=tuple(meta["prior"]),
                keep_extension=frozenset(collisions), run_id=run_id)
    sc = spark.sparkContext
    payload = sc.broadcast(ModelPayload.from_model(model))
    builds = sc.accumulator(0)
    log.info("colorizing images under %s into %s", input_path, out)
    results = spark.createDataFrame(
        files.select("path", "content").rdd.mapPartitionsWithIndex(
            lambda i, rows: colorize_partition(i, rows, payload, builds, plan)), result_schema())
    results = cached = results.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        n_inputs = results.count()
        empty = unscanned_files(spark, files, results.select("relative_path"), root)
        if empty:
            results = results.unionByName(spark.createDataFrame(
                [{**_base_row(p, plan), "status": "error", "error": reason, "worker": None}
                 for p, _, reason in empty], result_schema()))
            n_inputs += len(empty)
        if n_inputs == 0:
            raise JobError(f"no image files (extensions {', '.join(config['data']['extensions'])}) under {input_path}")
        log.info("%d input files processed; the model was built %d time(s) across the Python workers",
                 n_inputs, builds.value)
        with atomic_path(out / "results") as tmp:
            results.drop(*THUMB_KEYS).write.parquet(local_uri(tmp))
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(out / "results")
        summary = summarize(results, time.time() - started, model_dir)
        summary["model_builds"] = builds.value
        for row in results.where("status = 'error'").select("path", "error").limit(20).collect():
            log.info("  failed: %s: %s", row["path"], row["error"])
        shown = (results.orderBy("relative_path").limit(config["output"]["report_max_images"])
                 .toLocalIterator())
        html = render_report([r.asDict() for r in shown], summary, total_rows=n_inputs,
                             title=f"colorspark: {posixpath.basename(root.rstrip('/')) or root}")
        write_report(out / "report.html", html)
        write_json_atomic(out / "summary.json", summary)
    finally:
        cached.unpersist()
        payload.destroy()
    if plan.lab_format == "hdf5" and not resume:
        for stale in (out / "lab").glob("part-*.h5"):
            if not stale.name.startswith(f"part-{run_id}-"):
                stale.unlink()
    swept = sweep_temp_files(out)
    if swept:
        log.info("removed %d temporary files left by interrupted tasks", swept)
    log.info("%d ok, %d failed, %d skipped; %.1f images/s; report: %s", summary["ok"], summary["errors"],
             summary["skipped"], summary["images_per_second"] or 0.0, out / "report.html")
    if summary["ok"] + summary["skipped"] == 0:
        raise JobError(f"none of the {n_inputs} inputs could be colorized; reasons in {out / 'results'}")
    return summary

