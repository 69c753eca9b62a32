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
from .api_tasks import Columns, colorize_arrow, colorized_columns
from .colorizer import Rendering
from .config import defaults
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


def _rendering(meta: dict, temperature, render_size, batch_size, jpeg_quality, keep_aspect=None) -> Rendering:
    config = defaults()
    if batch_size:
        config["colorize"]["batch_size"] = int(batch_size)
    if jpeg_quality:
        config["output"]["jpeg_quality"] = int(jpeg_quality)
    return Rendering.from_config(config, meta, temperature=temperature, input_size=render_size,
                                 keep_aspect=keep_aspect)


def colorize_dataframe(df, image_col: str = "content", model: str | None = None, *,
                       output_col: str = "colorized_jpeg", lab_col: str | None = "lab",
                       lab_encoding: str = "lab8", temperature: float | None = None, render_size: int | None = None,
                       keep_aspect: bool | None = None, batch_size: int | None = None,
                       jpeg_quality: int | None = None):
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

    The added columns are `output_col` (binary JPEG), `lab_col` (binary), ``width``, ``height`` (int), ``status``
    (``ok`` or ``error``) and ``error`` (the reason, for null, empty or undecodable bytes).
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import BinaryType, StructType

    if image_col not in df.columns:
        raise ValueError(f"no column {image_col!r} in the DataFrame (columns: {', '.join(df.columns)})")
    if not isinstance(df.schema[image_col].dataType, BinaryType):
        raise ValueError(f"column {image_col!r} must hold image bytes (binary), not {df.schema[image_col].dataType}")
    if lab_col and lab_encoding not in labarrays.ENCODINGS:
        raise ValueError(f"lab_encoding must be one of {', '.join(labarrays.ENCODINGS)}, got {lab_encoding!r}")
    columns = Columns(image=image_col, jpeg=output_col, lab=lab_col or None)
    taken = [field.name for _, field in columns.added_fields() if field.name in df.columns]
    if taken:
        raise ValueError(f"the DataFrame already has column(s) {', '.join(taken)}; choose other output names or "
                         "drop them first")
    payload_bc, meta = _model_broadcast(df.sparkSession, model)
    rendering = _rendering(meta, temperature, render_size, batch_size, jpeg_quality, keep_aspect)
    encoding = lab_encoding if lab_col else None
    added = from_arrow_schema(pa.schema([field for _, field in columns.added_fields()]))
    schema = StructType([*df.schema.fields, *added.fields])
    return df.mapInArrow(functools.partial(colorize_arrow, columns=columns, payload_bc=payload_bc,
                                           rendering=rendering, lab_encoding=encoding), schema)


def register_sql_functions(spark, model: str | None = None, *, name: str = "colorize",
                           temperature: float | None = None, render_size: int | None = None,
                           keep_aspect: bool | None = None) -> None:
    """Register ``colorize(image_bytes)`` for Spark SQL: the colorized JPEG's bytes, or NULL where the bytes are
    not an image.

    It is an Arrow-based (pandas) UDF over the same per-image code as `colorize_dataframe`. (This module does
    without postponed annotations because pandas_udf reads the function's type hints as classes.)
    """
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    payload_bc, meta = _model_broadcast(spark, model)
    rendering = _rendering(meta, temperature, render_size, None, None, keep_aspect)

    @pandas_udf("binary")
    def colorize(images: pd.Series) -> pd.Series:
        columns = colorized_columns(list(images), lambda: worker_model(payload_bc.value), rendering, None)
        return pd.Series(columns["jpeg"], dtype=object)

    spark.udf.register(name, colorize)
