"""(executors) The DataFrame API's per-partition work: Arrow batches of rows in, the same rows with colour out.

The colorizing itself is `colorizer.colorize_stream`, the code the colorize job runs; this module only turns Arrow
columns into its input and its outcomes into Arrow columns. Rows keep their order and every other column.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa

from . import labarrays
from .colorizer import Failed, Rendering, colorize_stream
from .inference import worker_model
from .reference import Reference, UnusableReference, from_images, load_reference
from .runtime import freeze_imports

ROWS_PER_OUTPUT_BATCH = 32  # decoded images and their JPEGs are held for one output batch at a time


@dataclass(frozen=True)
class Columns:
    """Names of the input column and of the columns the API adds."""
    image: str
    jpeg: str
    lab: str | None  # None: no Lab column
    width: str = "width"
    height: str = "height"
    status: str = "status"
    error: str = "error"
    reference: str | None = None  # the input column of references (None: no reference)
    divergence: str = "reference_divergence"
    looks_wrong: str = "reference_looks_wrong"

    def added_fields(self) -> list[tuple[str, pa.Field]]:
        """(key of `colorized_columns`, Arrow field) of each added column, in order."""
        fields = [("jpeg", pa.field(self.jpeg, pa.binary()))]
        if self.lab:
            fields.append(("lab", pa.field(self.lab, pa.binary())))
        fields += [("width", pa.field(self.width, pa.int32())), ("height", pa.field(self.height, pa.int32())),
                   ("status", pa.field(self.status, pa.string())), ("error", pa.field(self.error, pa.string()))]
        if self.reference:
            fields += [("divergence", pa.field(self.divergence, pa.float64())),
                       ("looks_wrong", pa.field(self.looks_wrong, pa.bool_()))]
        return fields


class TaskReferences:
    """The references of one task's rows, each distinct value (a location or palette string, or image bytes) read
    once per task; one that cannot serve is kept as its `UnusableReference`, the error of every row that uses it."""

    def __init__(self, rendering: Rendering):
        self.rendering, self.loaded = rendering, {}

    def get(self, value) -> Reference | UnusableReference | None:
        if value is None:
            return None
        key = value if isinstance(value, str) else hashlib.sha1(value).hexdigest()
        if key not in self.loaded:
            limits = {"max_pixels": self.rendering.max_pixels, "max_bytes": self.rendering.max_bytes}
            try:
                self.loaded[key] = (load_reference(value, **limits) if isinstance(value, str)
                                    else from_images(f"image bytes sha1:{key[:12]}", [value], **limits))
            except UnusableReference as exc:
                self.loaded[key] = exc
        return self.loaded[key]


def colorized_columns(images: list, get_model, rendering: Rendering, lab_encoding: str | None,
                      references: list[Reference | UnusableReference | None] | None = None) -> dict[str, list]:
    """One list per added column (keyed jpeg, lab, width, height, status, error, divergence, looks_wrong) for a
    list of image bytes, each steered by its entry of `references` if given."""
    out: dict[str, list] = {key: [] for key in ("jpeg", "lab", "width", "height", "status", "error", "divergence",
                                                 "looks_wrong")}
    references = references or [None] * len(images)
    items = ((index, Failed(str(ref)) if isinstance(ref, UnusableReference) else data)
             for index, (data, ref) in enumerate(zip(images, references)))
    for _, outcome in colorize_stream(items, get_model, rendering, references.__getitem__):
        if isinstance(outcome, Failed):
            values = (None, None, None, None, "error", outcome.error, None, None)
        else:
            lab = (labarrays.file_bytes(labarrays.encode(outcome.lab, lab_encoding), "npy", lab_encoding)
                   if lab_encoding else None)
            values = (outcome.jpeg, lab, outcome.width, outcome.height, "ok", None, outcome.divergence,
                      outcome.reference_looks_wrong if outcome.reference else None)
        for key, value in zip(out, values):
            out[key].append(value)
    return out


def colorize_arrow(batches: Iterator[pa.RecordBatch], columns: Columns, payload_bc, rendering: Rendering,
                   lab_encoding: str | None) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: each input batch comes back in slices, with the added columns after the existing ones."""
    freeze_imports()

    def get_model():
        return worker_model(payload_bc.value)

    added = columns.added_fields()
    task_references = TaskReferences(rendering)
    for batch in batches:
        schema = pa.schema([*batch.schema, *(field for _, field in added)])
        for start in range(0, batch.num_rows, ROWS_PER_OUTPUT_BATCH):
            part = batch.slice(start, ROWS_PER_OUTPUT_BATCH)
            references = ([task_references.get(value) for value in part.column(columns.reference).to_pylist()]
                          if columns.reference else None)
            values = colorized_columns(part.column(columns.image).to_pylist(), get_model, rendering, lab_encoding,
                                       references)
            arrays = [pa.array(values[key], type=field.type) for key, field in added]
            yield pa.RecordBatch.from_arrays([*part.columns, *arrays], schema=schema)
