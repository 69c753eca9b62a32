"""(executors) The colorize job's per-image and per-partition work.

Per image: decode -> L at the original resolution -> L resized to the model's input -> predict (in batches) ->
annealed-mean ab at 1/4 of the input -> ab upsampled to the original size -> recombined with the original L -> JPEG
and Lab array, written through the storage layer. Colour inputs are colorized from their L alone and then scored
against their own colours. Every input yields exactly one result row, whatever happens to it.
"""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import __version__, fs
from .colorspace import lab_to_rgb8, rgb_to_l, rgb_to_lab
from .decode import DecodeError, decode_image, is_grayscale
from .inference import predict_ab, worker_model, worker_name
from .listing import read_content
from .metrics import SCORE_KEYS, rebalancing_pixel_weights, score_colorization
from .paths import join_inside, relative_output_path, replace_with_extension
from .runtime import freeze_imports
from .samples import L_SCALE
from .thumbnails import make_thumbnail

THUMB_KEYS = ("thumb_input", "thumb_color", "thumb_truth")
LAB_EXTENSIONS = {"npy": ".npy", "mat": ".mat"}


# --- pure image steps -------------------------------------------------------------------------------------------------

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

    @classmethod
    def from_config(cls, config: dict, meta: dict, root: str, out_dir: str, *, resume: bool = False,
                    keep_extension: frozenset = frozenset(), run_id: str | None = None) -> Plan:
        """The plan for a run with `config`, a model's `colorspark.json` (`meta`) and the output folder's URI."""
        return cls(root=root, out_dir=out_dir, lab_format=config["output"]["lab_format"], resume=resume,
                   jpeg_quality=config["output"]["jpeg_quality"], thumb_size=config["output"]["thumb_size"],
                   temperature=float(meta["temperature"]), input_size=int(meta["input_size"]),
                   batch_size=config["colorize"]["batch_size"], max_pixels=config["limits"]["max_pixels"],
                   max_bytes=config["limits"]["max_bytes"], prior=tuple(meta["prior"]), keep_extension=keep_extension,
                   run_id=run_id or uuid.uuid4().hex[:8])


def output_names(path: str, plan: Plan) -> tuple[str, str]:
    """(jpeg, lab) paths relative to OUT/jpeg and OUT/lab for one input."""
    rel = relative_output_path(path, plan.root)
    stem = rel if path in plan.keep_extension else replace_with_extension(rel, "")
    return stem + ".jpg", stem + LAB_EXTENSIONS.get(plan.lab_format, "")


def stem_key(path: str, root: str) -> str:
    """What two inputs must not share: their relative path without extension (case-folded for such filesystems)."""
    return replace_with_extension(relative_output_path(path, root), "").casefold()


class _Hdf5Lab:
    """One partition's Lab arrays in one HDF5 file, written as they come to a local file and published through the
    storage layer only when the partition is complete (`close`)."""

    def __init__(self, uri: str):
        self.uri, self.h5 = uri, None
        self._stack = contextlib.ExitStack()

    def add(self, name: str, lab: np.ndarray) -> None:
        if self.h5 is None:
            import h5py

            local = self._stack.enter_context(fs.local_file_for(self.uri, ".h5"))
            self.h5 = h5py.File(local, "w")
            self.h5.attrs["colorspark_version"] = __version__
        self.h5.create_dataset(name, data=lab, compression="gzip", compression_opts=1)

    def close(self, failed: bool = False) -> None:
        """Publish the file, or with `failed` drop it."""
        if self.h5 is not None:
            self.h5.close()
        error = RuntimeError("partition failed") if failed else None
        self._stack.__exit__(type(error) if error else None, error, None)


def encode_lab(lab: np.ndarray, fmt: str) -> bytes:
    """One image's Lab array as the bytes of a .npy or MATLAB .mat file."""
    buffer = io.BytesIO()
    if fmt == "npy":
        np.save(buffer, lab)
    else:
        from scipy.io import savemat

        savemat(buffer, {"lab": lab, "L": lab[..., 0], "ab": lab[..., 1:]}, do_compression=True)
    return buffer.getvalue()


def base_row(path: str, plan: Plan) -> dict:
    return {"path": path, "relative_path": relative_output_path(path, plan.root), "status": "ok", "error": None,
            "jpeg_path": None, "lab_path": None, "width": None, "height": None, "millis": None, "has_truth": False,
            "worker": worker_name(), **dict.fromkeys(SCORE_KEYS), **dict.fromkeys(THUMB_KEYS)}


def _finish(item: dict, ab_small: np.ndarray, plan: Plan, h5lab, per_image_predict_s: float) -> dict:
    started = time.perf_counter()
    row, rgb, lab_in = item["row"], item["rgb"], item["lab_in"]
    l_full = lab_in[..., 0]
    lab = recombine(l_full, ab_small)
    colorized = lab_to_rgb8(lab)
    jpeg_rel, lab_rel = output_names(row["path"], plan)
    jpeg_target = join_inside(fs.join(plan.out_dir, "jpeg"), jpeg_rel)
    fs.write_bytes(jpeg_target, encode_jpeg(colorized, plan.jpeg_quality))
    if h5lab is not None:
        h5lab.add(replace_with_extension(jpeg_rel, ""), lab)
        row["lab_path"] = f"{fs.display(h5lab.uri)}:/{replace_with_extension(jpeg_rel, '')}"
    else:
        lab_target = join_inside(fs.join(plan.out_dir, "lab"), lab_rel)
        fs.write_bytes(lab_target, encode_lab(lab, plan.lab_format))
        row["lab_path"] = fs.display(lab_target)
    gray = lab_to_rgb8(np.dstack([l_full, np.zeros_like(l_full), np.zeros_like(l_full)]))
    row.update(jpeg_path=fs.display(jpeg_target), thumb_input=make_thumbnail(gray, plan.thumb_size),
               thumb_color=make_thumbnail(colorized, plan.thumb_size))
    if row["has_truth"]:
        ab_true = lab_in[..., 1:]
        weights = rebalancing_pixel_weights(ab_true, np.asarray(plan.prior))
        row.update(score_colorization(rgb, colorized, gray, ab_true, lab[..., 1:], weights))
        row["thumb_truth"] = make_thumbnail(rgb, plan.thumb_size)
    row["millis"] = round((item["prepare_s"] + per_image_predict_s + time.perf_counter() - started) * 1000.0, 2)
    return row


def colorize_partition(index: int, rows, payload_bc, builds, plan: Plan):
    """mapPartitionsWithIndex body over (path, content) rows: one result row per input file, whatever happens."""
    freeze_imports()
    h5lab = (_Hdf5Lab(fs.join(plan.out_dir, "lab", f"part-{plan.run_id}-{index:05d}.h5"))
             if plan.lab_format == "hdf5" else None)
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
                done.append(_finish(item, ab_small, plan, h5lab, share))
            except Exception as exc:
                done.append({**item["row"], "status": "error",
                             "error": f"writing outputs failed: {type(exc).__name__}: {exc}",
                             "jpeg_path": None, "lab_path": None})
        pending.clear()
        return done

    failed = True
    try:
        for path, content in rows:
            row = base_row(path, plan)
            if plan.resume and (done := _outputs_exist(path, plan)):
                yield {**row, "status": "skipped", "error": "outputs exist (--resume)", "jpeg_path": done}
                continue
            started = time.perf_counter()
            try:
                rgb = decode_image(read_content(path, content), max_pixels=plan.max_pixels,
                                   max_bytes=plan.max_bytes)
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
            pending.append({"row": row, "rgb": rgb, "lab_in": lab_in, "x": x,
                            "prepare_s": time.perf_counter() - started})
            if len(pending) >= plan.batch_size:
                yield from flush()
        yield from flush()
        failed = False
    finally:
        if h5lab is not None:
            h5lab.close(failed=failed)


def _outputs_exist(path: str, plan: Plan) -> str | None:
    """With --resume: the JPEG's path if this input's outputs are all there already, else None."""
    jpeg_rel, lab_rel = output_names(path, plan)
    jpeg_target = join_inside(fs.join(plan.out_dir, "jpeg"), jpeg_rel)
    lab_done = plan.lab_format == "hdf5" or fs.is_file(join_inside(fs.join(plan.out_dir, "lab"), lab_rel))
    return fs.display(jpeg_target) if lab_done and fs.is_file(jpeg_target) else None


def result_schema():
    from pyspark.sql.types import BinaryType, BooleanType, DoubleType, IntegerType, StringType, StructField, StructType
    fields = [StructField(name, StringType(), True) for name in
              ("path", "relative_path", "status", "error", "jpeg_path", "lab_path")]
    fields += [StructField("width", IntegerType(), True), StructField("height", IntegerType(), True),
               StructField("millis", DoubleType(), True), StructField("has_truth", BooleanType(), True),
               StructField("worker", StringType(), True)]
    fields += [StructField(key, DoubleType(), True) for key in SCORE_KEYS]
    fields += [StructField(key, BinaryType(), True) for key in THUMB_KEYS]
    return StructType(fields)
