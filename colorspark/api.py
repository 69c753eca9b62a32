"""colorspark inside a user's own Spark pipeline: a DataFrame function and a SQL function (driver side).

`colorize_dataframe` adds the colorized JPEG (and Lab array) as columns of any DataFrame with a column of image
bytes: a `binaryFile` listing, or a Parquet, Delta or Hive table. It runs as one `mapInArrow` pass, so every other
column, the row order and the row count are kept, and the images reach Python as Arrow buffers with no per-row
pickling. `pyspark.ml.functions.predict_batch_udf` was the other candidate; it cannot return binary columns (its
return types are numbers, strings and arrays of numbers) and it wants fixed-shape tensors, so it can carry neither
the JPEGs nor photos of different sizes.

The model file is verified on the driver (which needs no TensorFlow for it) and broadcast once per Spark application
and model; each Python worker builds it once and reuses it for every batch, as the colorize job does.
"""

import functools
import logging

from . import fs, labarrays
from .api_tasks import Columns, TaskReferences, colorize_arrow, colorized_columns
from .colorizer import Rendering
from .config import defaults, merge
from .inference import ModelFile, worker_model
from .modeldir import read_model_file
from .shipped import shipped_model_dir

log = logging.getLogger("colorspark.api")

_broadcasts: dict = {}


def _model_broadcast(spark, model: str | None):
    """(broadcast ModelFile, colorspark.json) for a model directory, or for the shipped model; one broadcast per
    Spark application and model location."""
    location = fs.to_uri(model or shipped_model_dir())
    sc = spark.sparkContext
    key = (sc.applicationId, location)
    if key not in _broadcasts:
        data, meta = read_model_file(location)
        _broadcasts[key] = (sc.broadcast(ModelFile(data, meta["model_sha256"])), meta)
        log.info("model %s broadcast for colorizing DataFrames", fs.display(location))
    return _broadcasts[key]


def _rendering(meta: dict, temperature, render_size, batch_size, jpeg_quality, keep_aspect=None,
               reference_strength=None) -> Rendering:
    chosen = {"colorize": {"reference_strength": None if reference_strength is None else float(reference_strength),
                           "batch_size": int(batch_size) if batch_size else None},
              "output": {"jpeg_quality": int(jpeg_quality) if jpeg_quality else None}}
    config = merge(defaults(), {section: {key: value for key, value in values.items() if value is not None}
                                for section, values in chosen.items()}, "colorize_dataframe")
    return Rendering.from_config(config, meta, temperature=temperature, input_size=render_size,
                                 keep_aspect=keep_aspect)


def colorize_dataframe(df, image_col: str = "content", model: str | None = None, *,
                       output_col: str = "colorized_jpeg", lab_col: str | None = "lab",
                       lab_encoding: str = "lab8", temperature: float | None = None, render_size: int | None = None,
                       keep_aspect: bool | None = None, batch_size: int | None = None,
                       jpeg_quality: int | None = None, reference_col: str | None = None,
                       reference_strength: float | None = None):
    """`df` with colorized images added as columns, one output row per input row, in the same order.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Any DataFrame with a binary column of encoded images (JPEG, PNG, WebP, TIFF, BMP, GIF).
    image_col : str
        That column; ``content`` is what ``spark.read.format("binaryFile")`` gives.
    model : str, optional
        A model directory written by the train job, as a path or URI; None means the shipped model.
    output_col, lab_col : str
        Names of the added JPEG column and of the Lab array column (``.npy`` bytes, `lab_encoding`; read them with
        ``np.load(io.BytesIO(value))``). ``lab_col=None`` leaves the Lab arrays out.
    lab_encoding : str
        ``lab8`` (uint8: L·2.55, a + 128, b + 128), ``float16`` or ``float32``; see `colorspark.labarrays`.
    temperature, render_size : optional
        The annealed-mean temperature and the network's input side (a multiple of 8); by default the model's own.
    keep_aspect : bool, optional
        Render at the photo's own aspect ratio, with about the pixels of a `render_size` square; by default as
        configured (`colorize.keep_aspect`).
    batch_size, jpeg_quality : int, optional
        Images per network call and JPEG quality; by default those of `conf/colorspark.toml`.
    reference_col : str, optional
        A column whose value steers each row's colours (docs/reference.md): a string (an image's path or URI, a
        folder of images, or ``palette:#aa3311,#2255cc``) or image bytes; null means no reference. Each distinct
        reference is read once per task.
    reference_strength : float, optional
        β, how strongly a reference steers; by default `colorize.reference_strength`.

    The added columns are `output_col` (binary JPEG), `lab_col` (binary), ``width``, ``height`` (int), ``status``
    (``ok`` or ``error``) and ``error`` (the reason, for null, empty or undecodable bytes, or a reference that cannot
    serve); with `reference_col` also ``reference_divergence`` (float) and ``reference_looks_wrong`` (bool).
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import BinaryType, StringType, StructType

    if image_col not in df.columns:
        raise ValueError(f"no column {image_col!r} in the DataFrame (columns: {', '.join(df.columns)})")
    if not isinstance(df.schema[image_col].dataType, BinaryType):
        raise ValueError(f"column {image_col!r} must hold image bytes (binary), not {df.schema[image_col].dataType}")
    if lab_col and lab_encoding not in labarrays.ENCODINGS:
        raise ValueError(f"lab_encoding must be one of {', '.join(labarrays.ENCODINGS)}, got {lab_encoding!r}")
    if reference_col and (reference_col not in df.columns or not isinstance(
            df.schema[reference_col].dataType, (BinaryType, StringType))):
        raise ValueError(f"reference_col {reference_col!r} must be a string or binary column of the DataFrame")
    columns = Columns(image=image_col, jpeg=output_col, lab=lab_col or None, reference=reference_col or None)
    taken = [field.name for _, field in columns.added_fields() if field.name in df.columns]
    if taken:
        raise ValueError(f"the DataFrame already has column(s) {', '.join(taken)}; choose other output names or "
                         "drop them first")
    payload_bc, meta = _model_broadcast(df.sparkSession, model)
    rendering = _rendering(meta, temperature, render_size, batch_size, jpeg_quality, keep_aspect, reference_strength)
    encoding = lab_encoding if lab_col else None
    added = from_arrow_schema(pa.schema([field for _, field in columns.added_fields()]))
    schema = StructType([*df.schema.fields, *added.fields])
    return df.mapInArrow(functools.partial(colorize_arrow, columns=columns, payload_bc=payload_bc,
                                           rendering=rendering, lab_encoding=encoding), schema)


@functools.lru_cache(maxsize=8)
def _task_references(rendering: Rendering) -> TaskReferences:
    """In a Python worker: the SQL function's references, read once per worker and rendering (a pandas UDF is
    called per Arrow batch, so a per-call cache would read them again for every batch)."""
    return TaskReferences(rendering)


def register_sql_functions(spark, model: str | None = None, *, name: str = "colorize",
                           temperature: float | None = None, render_size: int | None = None,
                           keep_aspect: bool | None = None) -> None:
    """Register ``colorize(image_bytes)`` and ``colorize(image_bytes, reference)`` for Spark SQL: the colorized
    JPEG's bytes, or NULL where the bytes are not an image (or the reference cannot serve). The reference is a
    string (path or URI of an image or folder, or ``palette:#aa3311,...``); see `colorize_dataframe`.

    It is an Arrow-based (pandas) UDF over the same per-image code as `colorize_dataframe`. (This module does
    without postponed annotations because pandas_udf reads the function's type hints as classes.)
    """
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    payload_bc, meta = _model_broadcast(spark, model)
    rendering = _rendering(meta, temperature, render_size, None, None, keep_aspect)

    @pandas_udf("binary")
    def colorize(images: pd.Series, references: pd.Series = None) -> pd.Series:
        steering = None
        if references is not None:
            task_references = _task_references(rendering)
            steering = [task_references.get(None if pd.isna(value) else value) for value in references]
        columns = colorized_columns(list(images), lambda: worker_model(payload_bc.value), rendering, None, steering)
        return pd.Series(columns["jpeg"], dtype=object)

    spark.udf.register(name, colorize)
