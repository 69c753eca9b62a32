"""(executors) The colorize job's per-partition work: the shared colorizing stream plus the job's file outputs.

`colorizer.colorize_stream` does the colorizing, as it does for the DataFrame API. On top of it, each task writes
every image's JPEG and Lab array through the storage layer, scores colour inputs against their own colours, makes
the report's thumbnails, and yields exactly one result row per input file, whatever happens to it.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from . import fs, labarrays
from .colorizer import Colorized, Failed, Rendering, colorize_stream
from .datasets import PartWriter, part_name
from .decode import DecodeError
from .devices import task_device, worker_name
from .inference import predict_logits, worker_model
from .listing import read_content
from .metrics import SCORE_KEYS, rebalancing_pixel_weights, score_colorization
from .paths import join_inside, relative_output_path, replace_with_extension
from .reference import ReferenceMap
from .runtime import freeze_imports
from .thumbnails import make_thumbnail

THUMB_KEYS = ("thumb_input", "thumb_color", "thumb_truth")
REFERENCE_KEYS = ("reference", "reference_divergence", "reference_looks_wrong")
RESULT_ROWS_PER_BATCH = 256


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
    keep_extension: frozenset  # relative paths of inputs whose name without extension is another input's too
    shown: frozenset  # relative paths of the inputs the report shows: only these get thumbnails
    run_id: str
    references: ReferenceMap = ReferenceMap()  # which reference steers which input's colours

    @classmethod
    def from_config(cls, config: dict, meta: dict, root: str, out_dir: str, *, resume: bool = False,
                    keep_extension: frozenset = frozenset(), shown: frozenset = frozenset(),
                    run_id: str | None = None, references: ReferenceMap | None = None) -> Plan:
        """The plan for a run with `config`, a model's `colorspark.json` (`meta`) and the output folder's URI."""
        return cls(root=root, out_dir=out_dir, rendering=Rendering.from_config(config, meta),
                   lab_format=config["output"]["lab_format"], lab_encoding=config["output"]["lab_encoding"],
                   resume=resume, thumb_size=config["output"]["thumb_size"], prior=tuple(meta["prior"]),
                   keep_extension=keep_extension, shown=shown, run_id=run_id or uuid.uuid4().hex[:8],
                   references=references or ReferenceMap())

    @property
    def staging(self) -> str:
        """Where this run's results are staged until the driver publishes them."""
        return fs.join(self.out_dir, f"{fs.STAGING_MARK}{self.run_id}")


def output_names(path: str, plan: Plan) -> tuple[str, str]:
    """(jpeg, lab) paths relative to OUT/jpeg and OUT/lab for one input."""
    rel = relative_output_path(path, plan.root)
    stem = rel if rel in plan.keep_extension else replace_with_extension(rel, "")
    return stem + ".jpg", stem + labarrays.FILE_EXTENSIONS.get(plan.lab_format, "")


def stem_key(path: str, root: str) -> str:
    """What two inputs must not share: their relative path without extension (case-folded for such filesystems)."""
    return replace_with_extension(relative_output_path(path, root), "").casefold()


def base_row(path: str, plan: Plan, worker: str | None = None, device: str | None = None) -> dict:
    """A result row before its outcome is known; `worker` and `device` say where its task ran (None for rows the
    driver makes)."""
    return {"path": path, "relative_path": relative_output_path(path, plan.root), "status": "ok", "error": None,
            "jpeg_path": None, "lab_path": None, "width": None, "height": None, "millis": None, "has_truth": False,
            "worker": worker, "device": device, **dict.fromkeys(REFERENCE_KEYS), **dict.fromkeys(SCORE_KEYS),
            **dict.fromkeys(THUMB_KEYS)}


def _write_outputs(row: dict, image: Colorized, plan: Plan, h5lab) -> None:
    """The JPEG and the Lab array of one image, through the storage layer; their locations go into `row`."""
    jpeg_rel, _ = output_names(row["path"], plan)
    row["jpeg_path"], row["lab_path"] = write_image_files(
        image, replace_with_extension(jpeg_rel, ""), fs.join(plan.out_dir, "jpeg"), fs.join(plan.out_dir, "lab"),
        plan.lab_format, plan.lab_encoding, h5lab)


def write_image_files(image: Colorized, name: str, jpeg_folder: str | None, lab_folder: str | None, lab_format: str,
                      lab_encoding: str, h5lab=None) -> tuple[str | None, str | None]:
    """(JPEG, Lab array) of one colorized image or video frame, each written atomically through the storage layer:
    `jpeg_folder`/`name`.jpg and the Lab array as `labarrays.write_array` stores it (dataset `name` of `h5lab` for
    hdf5). A folder of None skips that file; returns their locations as the results record them (None: not
    written). Photos and video frames share it, so both come out in the same formats."""
    jpeg_path = None
    if jpeg_folder is not None:
        target = join_inside(jpeg_folder, name + ".jpg")
        fs.write_bytes(target, image.jpeg)
        jpeg_path = fs.display(target)
    lab_path = (labarrays.write_array(image.lab, name, lab_folder, lab_format, lab_encoding, h5lab)
                if lab_folder is not None else None)
    return jpeg_path, lab_path


def _score_and_thumbnails(row: dict, image: Colorized, plan: Plan) -> None:
    """Scores for a colour input; thumbnails for the inputs the report shows."""
    shown = row["relative_path"] in plan.shown
    gray = image.gray_rgb() if image.ab_true is not None else None
    if shown:
        gray_thumb = gray if gray is not None else image.gray_values()  # one channel is a third of the work
        row.update(thumb_input=make_thumbnail(gray_thumb, plan.thumb_size),
                   thumb_color=make_thumbnail(image.rgb, plan.thumb_size))
    if image.ab_true is not None:
        weights = rebalancing_pixel_weights(image.ab_true, np.asarray(plan.prior))
        row.update(score_colorization(image.rgb_in, image.rgb, gray, image.ab_true, image.lab[..., 1:], weights))
        if shown:
            row["thumb_truth"] = make_thumbnail(image.rgb_in, plan.thumb_size)


def result_row(row: dict, outcome: Colorized | Failed, plan: Plan, h5lab) -> dict:
    """The finished result row of one input: its outputs written, scored where it had colour."""
    if isinstance(outcome, Failed):
        return {**row, "status": "error", "error": outcome.error}
    started = time.perf_counter()
    row.update(width=outcome.width, height=outcome.height, has_truth=outcome.ab_true is not None,
               reference=outcome.reference, reference_divergence=outcome.divergence,
               reference_looks_wrong=outcome.reference_looks_wrong if outcome.reference else None)
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


def prepare_worker(payload_bc, builds, input_size: int) -> None:
    """What a Python worker needs before its first image, done while the driver lists the inputs
    (`session.python_workers_starting`): the imports the first image and the results part trigger, and, unless
    `payload_bc` is None (a resumed run may have nothing to colorize), the broadcast model built and its forward
    pass traced, once per worker (`inference.worker_model`)."""
    import pyarrow.parquet  # noqa: F401
    from PIL import Image

    Image.preinit()
    if payload_bc is not None:
        predict_logits(worker_model(payload_bc.value, builds), np.zeros((1, input_size, input_size), np.float32))


def colorize_partition(index: int, rows, payload_bc, builds, plan: Plan):
    """mapPartitionsWithIndex body over (path, content) rows: one result row per input file, whatever happens."""
    freeze_imports()
    where = {"worker": worker_name(), "device": task_device()}  # the same for every row of the task
    h5lab = (labarrays.Hdf5LabFile(fs.join(plan.out_dir, "lab", f"part-{plan.run_id}-{index:05d}.h5"),
                                   plan.lab_encoding) if plan.lab_format == "hdf5" else None)
    skipped: list[dict] = []

    def reference_of(path: str):
        return plan.references.for_path(relative_output_path(path, plan.root))

    def to_colorize():
        for path, content in rows:
            if plan.resume and (done := _outputs_exist(path, plan)):
                skipped.append({**base_row(path, plan, **where), "status": "skipped",
                                "error": "outputs exist (--resume)", "jpeg_path": done})
                continue
            try:
                yield path, read_content(path, content, plan.rendering.max_bytes)
            except DecodeError as exc:  # unreadable where it was listed: recorded like an undecodable file
                yield path, Failed(str(exc))

    failed = True
    try:
        for path, outcome in colorize_stream(to_colorize(), lambda: worker_model(payload_bc.value, builds),
                                             plan.rendering, reference_of):
            yield from skipped
            skipped.clear()
            yield result_row(base_row(path, plan, **where), outcome, plan, h5lab)
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
    """The results table (OUT/results): one row per input, without the report's thumbnails."""
    import pyarrow as pa

    text = ("path", "relative_path", "status", "error", "jpeg_path", "lab_path", "reference")
    return pa.schema([*(pa.field(name, pa.string()) for name in text), pa.field("width", pa.int32()),
                      pa.field("height", pa.int32()), pa.field("millis", pa.float64()),
                      pa.field("has_truth", pa.bool_()), pa.field("worker", pa.string()),
                      pa.field("device", pa.string()), pa.field("reference_divergence", pa.float64()),
                      pa.field("reference_looks_wrong", pa.bool_()),
                      *(pa.field(key, pa.float64()) for key in SCORE_KEYS)])


@dataclass
class Tally:
    """What the driver needs from a partition besides its results file: counts, score sums, the rows the report
    shows (with thumbnails) and the first failures. Partitions' tallies add up with `merge`."""
    rows: int = 0
    counts: dict = field(default_factory=dict)
    scored: int = 0  # ok rows with a colour truth
    score_sums: dict = field(default_factory=dict)  # key -> [sum, count] over scored rows, finite values only
    millis: list = field(default_factory=lambda: [0.0, 0])
    devices: set = field(default_factory=set)
    shown: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    references: dict = field(default_factory=dict)  # reference name -> outputs it steered
    wrong_reference_count: int = 0  # outputs whose reference looks wrong for them (Colorized.reference_looks_wrong)
    wrong_references: list = field(default_factory=list)  # (path, reference, divergence) of the first few

    MAX_FAILURES = 20

    def add(self, row: dict, plan: Plan) -> None:
        self.rows += 1
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        if row["status"] == "ok":
            if row["millis"] is not None:
                self.millis[0] += row["millis"]
                self.millis[1] += 1
            if row["has_truth"]:
                self.scored += 1
                for key in SCORE_KEYS:
                    value = row[key]
                    if value is not None and math.isfinite(value):  # a perfect PSNR is infinite: left out
                        total = self.score_sums.setdefault(key, [0.0, 0])
                        total[0] += value
                        total[1] += 1
        if row["device"] is not None:
            self.devices.add((row["worker"], row["device"]))
        if row["relative_path"] in plan.shown:
            self.shown.append(row)
        if row["status"] == "error" and len(self.failures) < self.MAX_FAILURES:
            self.failures.append((row["path"], row["error"]))
        if row["reference"] is not None:
            self.references[row["reference"]] = self.references.get(row["reference"], 0) + 1
            if row["reference_looks_wrong"]:
                self.wrong_reference_count += 1
                if len(self.wrong_references) < self.MAX_FAILURES:
                    self.wrong_references.append((row["path"], row["reference"], row["reference_divergence"]))

    def merge(self, other: Tally) -> Tally:
        self.rows += other.rows
        self.scored += other.scored
        for status, n in other.counts.items():
            self.counts[status] = self.counts.get(status, 0) + n
        for key, (total, n) in other.score_sums.items():
            mine = self.score_sums.setdefault(key, [0.0, 0])
            mine[0] += total
            mine[1] += n
        self.millis = [self.millis[0] + other.millis[0], self.millis[1] + other.millis[1]]
        self.devices |= other.devices
        self.shown += other.shown
        self.failures += other.failures[:max(0, self.MAX_FAILURES - len(self.failures))]
        for name, n in other.references.items():
            self.references[name] = self.references.get(name, 0) + n
        self.wrong_reference_count += other.wrong_reference_count
        self.wrong_references += other.wrong_references[:max(0, self.MAX_FAILURES - len(self.wrong_references))]
        return self


def results_batch(rows: list[dict]):
    """Result rows as one Arrow batch of the results table (thumbnails left out)."""
    import pyarrow as pa

    schema = result_schema()
    return pa.RecordBatch.from_pylist([{name: row[name] for name in schema.names} for row in rows], schema=schema)


def colorize_and_record(index: int, rows, payload_bc, builds, done, plan: Plan):
    """The colorize pass of one partition: its results written as one Parquet part into the staging folder (a
    retried task writes the same part again), and only its `Tally` returned to the driver; its row count is added
    to the `done` accumulator (the driver's progress line)."""
    tally, pending = Tally(), []
    with PartWriter(fs.join(plan.staging, "results", part_name(index))) as writer:
        for row in colorize_partition(index, rows, payload_bc, builds, plan):
            tally.add(row, plan)
            pending.append(row)
            if len(pending) >= RESULT_ROWS_PER_BATCH:
                writer.write(results_batch(pending))
                pending.clear()
        writer.write(results_batch(pending))
    done.add(tally.rows)
    yield tally
