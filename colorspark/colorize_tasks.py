"""(executors) The colorize job's per-partition work: the shared colorizing stream plus the job's file outputs.

`colorizer.colorize_stream` does the colorizing, as it does for the DataFrame API. On top of it, each task writes
every image's JPEG and Lab array through the storage layer, scores colour inputs against their own colours, makes
the report's thumbnails, and yields exactly one result row per input file, whatever happens to it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import numpy as np

from . import fs, labarrays
from .colorizer import Colorized, Failed, Rendering, colorize_stream
from .decode import DecodeError
from .inference import worker_model, worker_name
from .listing import read_content
from .metrics import SCORE_KEYS, rebalancing_pixel_weights, score_colorization
from .paths import join_inside, relative_output_path, replace_with_extension
from .runtime import freeze_imports
from .thumbnails import make_thumbnail

THUMB_KEYS = ("thumb_input", "thumb_color", "thumb_truth")


@dataclass(frozen=True)
class Plan:
    """Everything a task needs besides the model; small and picklable."""
    root: str
    out_dir: str
    rendering: Rendering
    lab_format: str
    lab_encoding: str
    resume: bool
    thumb_size: int
    prior: tuple
    keep_extension: frozenset  # inputs whose name without extension collides with another input's
    run_id: str

    @classmethod
    def from_config(cls, config: dict, meta: dict, root: str, out_dir: str, *, resume: bool = False,
                    keep_extension: frozenset = frozenset(), run_id: str | None = None) -> Plan:
        """The plan for a run with `config`, a model's `colorspark.json` (`meta`) and the output folder's URI."""
        return cls(root=root, out_dir=out_dir, rendering=Rendering.from_config(config, meta),
                   lab_format=config["output"]["lab_format"], lab_encoding=config["output"]["lab_encoding"],
                   resume=resume, thumb_size=config["output"]["thumb_size"], prior=tuple(meta["prior"]),
                   keep_extension=keep_extension, run_id=run_id or uuid.uuid4().hex[:8])


def output_names(path: str, plan: Plan) -> tuple[str, str]:
    """(jpeg, lab) paths relative to OUT/jpeg and OUT/lab for one input."""
    rel = relative_output_path(path, plan.root)
    stem = rel if path in plan.keep_extension else replace_with_extension(rel, "")
    return stem + ".jpg", stem + labarrays.FILE_EXTENSIONS.get(plan.lab_format, "")


def stem_key(path: str, root: str) -> str:
    """What two inputs must not share: their relative path without extension (case-folded for such filesystems)."""
    return replace_with_extension(relative_output_path(path, root), "").casefold()


def base_row(path: str, plan: Plan) -> dict:
    from .devices import task_device

    return {"path": path, "relative_path": relative_output_path(path, plan.root), "status": "ok", "error": None,
            "jpeg_path": None, "lab_path": None, "width": None, "height": None, "millis": None, "has_truth": False,
            "worker": worker_name(), "device": task_device(), **dict.fromkeys(SCORE_KEYS),
            **dict.fromkeys(THUMB_KEYS)}


def _write_outputs(row: dict, image: Colorized, plan: Plan, h5lab) -> None:
    """The JPEG and the Lab array of one image, through the storage layer; their locations go into `row`."""
    jpeg_rel, lab_rel = output_names(row["path"], plan)
    jpeg_target = join_inside(fs.join(plan.out_dir, "jpeg"), jpeg_rel)
    fs.write_bytes(jpeg_target, image.jpeg)
    row["jpeg_path"] = fs.display(jpeg_target)
    if plan.lab_format == "none":
        return
    stored = labarrays.encode(image.lab, plan.lab_encoding)
    if h5lab is not None:
        name = replace_with_extension(jpeg_rel, "")
        h5lab.add(name, stored)
        row["lab_path"] = f"{fs.display(h5lab.uri)}:/{name}"
    else:
        lab_target = join_inside(fs.join(plan.out_dir, "lab"), lab_rel)
        fs.write_bytes(lab_target, labarrays.file_bytes(stored, plan.lab_format, plan.lab_encoding))
        row["lab_path"] = fs.display(lab_target)


def _score_and_thumbnails(row: dict, image: Colorized, plan: Plan) -> None:
    gray = image.gray_rgb()
    gray_thumb = gray if image.ab_true is not None else gray[..., 0]  # one channel is a third of the work
    row.update(thumb_input=make_thumbnail(gray_thumb, plan.thumb_size),
               thumb_color=make_thumbnail(image.rgb, plan.thumb_size))
    if image.ab_true is not None:
        weights = rebalancing_pixel_weights(image.ab_true, np.asarray(plan.prior))
        row.update(score_colorization(image.rgb_in, image.rgb, gray, image.ab_true, image.lab[..., 1:], weights))
        row["thumb_truth"] = make_thumbnail(image.rgb_in, plan.thumb_size)


def result_row(row: dict, outcome: Colorized | Failed, plan: Plan, h5lab) -> dict:
    """The finished result row of one input: its outputs written, scored where it had colour."""
    if isinstance(outcome, Failed):
        return {**row, "status": "error", "error": outcome.error}
    started = time.perf_counter()
    row.update(width=outcome.width, height=outcome.height, has_truth=outcome.ab_true is not None)
    try:
        _write_outputs(row, outcome, plan, h5lab)
    except Exception as exc:
        return {**row, "status": "error", "error": f"writing outputs failed: {type(exc).__name__}: {exc}",
                "jpeg_path": None, "lab_path": None}
    try:
        _score_and_thumbnails(row, outcome, plan)
    except Exception as exc:  # the outputs are written; the row says why it has no scores
        row.update(status="error", error=f"scoring failed: {type(exc).__name__}: {exc}")
    row["millis"] = round((outcome.seconds + time.perf_counter() - started) * 1000.0, 2)
    return row


def colorize_partition(index: int, rows, payload_bc, builds, plan: Plan):
    """mapPartitionsWithIndex body over (path, content) rows: one result row per input file, whatever happens."""
    freeze_imports()
    h5lab = (labarrays.Hdf5LabFile(fs.join(plan.out_dir, "lab", f"part-{plan.run_id}-{index:05d}.h5"),
                                   plan.lab_encoding) if plan.lab_format == "hdf5" else None)
    skipped: list[dict] = []

    def to_colorize():
        for path, content in rows:
            if plan.resume and (done := _outputs_exist(path, plan)):
                skipped.append({**base_row(path, plan), "status": "skipped", "error": "outputs exist (--resume)",
                                "jpeg_path": done})
                continue
            try:
                yield path, read_content(path, content)
            except DecodeError as exc:  # unreadable where it was listed: recorded like an undecodable file
                yield path, Failed(str(exc))

    failed = True
    try:
        for path, outcome in colorize_stream(to_colorize(), lambda: worker_model(payload_bc.value, builds),
                                             plan.rendering):
            yield from skipped
            skipped.clear()
            yield result_row(base_row(path, plan), outcome, plan, h5lab)
        yield from skipped
        failed = False
    finally:
        if h5lab is not None:
            h5lab.close(failed=failed)


def _outputs_exist(path: str, plan: Plan) -> str | None:
    """With --resume: the JPEG's path if this input's outputs are all there already, else None."""
    jpeg_rel, lab_rel = output_names(path, plan)
    jpeg_target = join_inside(fs.join(plan.out_dir, "jpeg"), jpeg_rel)
    lab_done = plan.lab_format in ("hdf5", "none") or fs.is_file(join_inside(fs.join(plan.out_dir, "lab"), lab_rel))
    return fs.display(jpeg_target) if lab_done and fs.is_file(jpeg_target) else None


def result_schema():
    from pyspark.sql.types import BinaryType, BooleanType, DoubleType, IntegerType, StringType, StructField, StructType
    fields = [StructField(name, StringType(), True) for name in
              ("path", "relative_path", "status", "error", "jpeg_path", "lab_path")]
    fields += [StructField("width", IntegerType(), True), StructField("height", IntegerType(), True),
               StructField("millis", DoubleType(), True), StructField("has_truth", BooleanType(), True),
               StructField("worker", StringType(), True), StructField("device", StringType(), True)]
    fields += [StructField(key, DoubleType(), True) for key in SCORE_KEYS]
    fields += [StructField(key, BinaryType(), True) for key in THUMB_KEYS]
    return StructType(fields)
