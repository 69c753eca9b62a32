"""The training loss: class-rebalanced cross-entropy against soft-encoded ab targets, computed in the graph.

Targets arrive compact (ab at the output stride, as stored by preprocess); the soft encoding over the k nearest of the
313 centres is built here per batch, so 313-vectors never exist on disk or in the RDD. Each pixel's cross-entropy is
weighted by the rebalancing weight of its nearest bin (Zhang et al., eq. 2-4).

Near-gray crops: a crop whose ab targets are all within `gray_chroma` of gray (a gray photo, a white studio
background, a sepia scan) would teach the model that gray is a safe answer everywhere. Such crops get weight 0 in the
loss (and preprocess leaves them out of the prior), so they neither pull predictions to gray nor skew the rebalancing.
The batch loss is the mean over the crops in the batch, masked crops counting as zero.
"""

from __future__ import annotations

import numpy as np

from .bins import gamut_centres
from .runtime import import_tensorflow

import_tensorflow()  # before Keras, so its start-up noise stays out of the logs
import keras  # noqa: E402
from keras import ops  # noqa: E402


@keras.saving.register_keras_serializable(package="colorspark")
class RebalancedSoftCrossEntropy(keras.losses.Loss):
    def __init__(self, class_weights, neighbours: int = 10, sigma: float = 5.0, gray_chroma: float = 5.0,
                 name: str = "rebalanced_soft_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        self.class_weights = [float(w) for w in np.asarray(class_weights).ravel()]
        self.neighbours = int(neighbours)
        self.sigma = float(sigma)
        self.gray_chroma = float(gray_chroma)

    def call(self, y_true, y_pred):
        centres = ops.convert_to_tensor(gamut_centres(), dtype="float32")
        weights = ops.convert_to_tensor(np.asarray(self.class_weights, np.float32))
        ab = ops.cast(y_true, "float32")                                           # B×h×w×2
        d2 = ops.sum(ops.square(ab[..., None, :] - centres), axis=-1)             # B×h×w×Q
        neg_d2, nearest = ops.top_k(-d2, k=self.neighbours)                       # nearest first
        soft = ops.softmax(neg_d2 / (2.0 * self.sigma ** 2), axis=-1)
        log_p = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        log_p_near = ops.take_along_axis(log_p, nearest, axis=-1)
        cross_entropy = -ops.sum(soft * log_p_near, axis=-1)                      # B×h×w
        pixel_weight = ops.take(weights, nearest[..., 0])
        chroma = ops.sqrt(ops.sum(ops.square(ab), axis=-1))
        colourful = ops.cast(ops.max(chroma, axis=(1, 2)) >= self.gray_chroma, "float32")
        return ops.mean(pixel_weight * cross_entropy, axis=(1, 2)) * colourful

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights, "neighbours": self.neighbours,
                "sigma": self.sigma, "gray_chroma": self.gray_chroma}


def custom_objects() -> dict:
    return {"colorspark>RebalancedSoftCrossEntropy": RebalancedSoftCrossEntropy,
            "RebalancedSoftCrossEntropy": RebalancedSoftCrossEntropy}
