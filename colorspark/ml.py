"""`ColorizeTransformer`: colorspark as a Spark ML Pipeline stage, saved and loaded with the Pipeline.

It holds only Params (the model's location, not its weights), so `save()` writes a few hundred bytes of JSON and a
loaded stage reads the model again from where it lives. The work is `colorize_dataframe`.
"""

from __future__ import annotations

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable

from .api import colorize_dataframe
from .config import defaults

_KEEP_ASPECT = defaults()["colorize"]["keep_aspect"]


class ColorizeTransformer(Transformer, HasInputCol, HasOutputCol, DefaultParamsReadable, DefaultParamsWritable):
    """Adds the colorized JPEG of `inputCol`'s image bytes as `outputCol`, plus the Lab array (`labCol`), width,
    height, status and error columns; see `colorspark.colorize_dataframe`."""

    model = Param(Params._dummy(), "model", "model directory written by the train job (path or URI); empty: the "
                  "shipped model", typeConverter=TypeConverters.toString)
    labCol = Param(Params._dummy(), "labCol", "column for the Lab array (.npy bytes); empty: no Lab column",
                   typeConverter=TypeConverters.toString)
    labEncoding = Param(Params._dummy(), "labEncoding", "Lab array encoding: lab8, float16 or float32",
                        typeConverter=TypeConverters.toString)
    temperature = Param(Params._dummy(), "temperature", "annealed-mean temperature; 0: the model's own",
                        typeConverter=TypeConverters.toFloat)
    renderSize = Param(Params._dummy(), "renderSize", "the network's input side (multiple of 8); 0: the model's own",
                       typeConverter=TypeConverters.toInt)
    keepAspect = Param(Params._dummy(), "keepAspect", "render at the photo's aspect ratio, with the "
                       "pixels of a renderSize square", typeConverter=TypeConverters.toBoolean)
    referenceCol = Param(Params._dummy(), "referenceCol", "column of references that steer each row's colours "
                         "(image path or URI, palette:#rrggbb,..., or image bytes); empty: no reference",
                         typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, inputCol: str = "content", outputCol: str = "colorized_jpeg", model: str = "",
                 labCol: str = "lab", labEncoding: str = "lab8", temperature: float = 0.0, renderSize: int = 0,
                 keepAspect: bool = _KEEP_ASPECT, referenceCol: str = ""):
        super().__init__()
        self._setDefault(inputCol="content", outputCol="colorized_jpeg", model="", labCol="lab",
                         labEncoding="lab8", temperature=0.0, renderSize=0, keepAspect=_KEEP_ASPECT,
                         referenceCol="")
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, inputCol: str = "content", outputCol: str = "colorized_jpeg", model: str = "",
                  labCol: str = "lab", labEncoding: str = "lab8", temperature: float = 0.0, renderSize: int = 0,
                  keepAspect: bool = _KEEP_ASPECT, referenceCol: str = ""):
        return self._set(**self._input_kwargs)

    def _transform(self, dataset):
        return colorize_dataframe(
            dataset, self.getOrDefault(self.inputCol), self.getOrDefault(self.model) or None,
            output_col=self.getOrDefault(self.outputCol), lab_col=self.getOrDefault(self.labCol) or None,
            lab_encoding=self.getOrDefault(self.labEncoding),
            temperature=self.getOrDefault(self.temperature) or None,
            render_size=self.getOrDefault(self.renderSize) or None, keep_aspect=self.getOrDefault(self.keepAspect),
            reference_col=self.getOrDefault(self.referenceCol) or None)
