"""Running a trained network on the executors.

The driver broadcasts one payload: for training's validation a `ModelPayload` (architecture JSON + weights, made
from the model in training), for colorizing a `ModelFile` (the verified .keras bytes, so the driver needs no
TensorFlow). Each Python worker keeps the Keras model it built in a module-level cache, so the model is built once
per worker process and reused by every task and batch that process runs; new weights for the same architecture
(the next training round) are set in place without rebuilding. Before the first build TensorFlow is pinned to the
GPUs Spark assigned the task (colorspark/devices.py). Elephas's own `predict` is not used: it rebuilds the model per
partition and fails on empty partitions.
"""

from __future__ import annotations

import hashlib
import json
import sys
import weakref
from dataclasses import dataclass

import numpy as np

from . import fs
from .bins import annealed_mean
from .devices import pin_task_devices
from .runtime import import_tensorflow, release_frozen, task_cpus


def architecture_json(model) -> str:
    """The model's JSON without its compile settings. Those hold the optimizer's learning rate, which training
    changes from round to round; a worker's cached model is keyed by the architecture alone, so that a new rate does
    not make every Python worker rebuild and re-trace its model."""
    config = json.loads(model.to_json())
    config.pop("compile_config", None)
    return json.dumps(config)


@dataclass
class ModelPayload:
    architecture: str  # architecture_json(model)
    weights: list
    weights_key: str

    @classmethod
    def from_model(cls, model) -> ModelPayload:
        weights = model.get_weights()
        digest = hashlib.sha256()
        for w in weights:
            digest.update(np.ascontiguousarray(w).tobytes())
        return cls(architecture_json(model), weights, digest.hexdigest())

    @property
    def cache_key(self) -> tuple:
        """What a worker's cached model must match: the architecture (weights are set in place)."""
        return "architecture", hashlib.sha256(self.architecture.encode()).hexdigest()

    def build(self):
        import keras

        from .losses import custom_objects

        return keras.models.model_from_json(self.architecture, custom_objects=custom_objects())


@dataclass
class ModelFile:
    """A verified .keras archive's bytes (`modeldir.read_model_file`): what colorize broadcasts, so that its driver
    never imports TensorFlow. Each Python worker loads it once, in Keras safe mode (embedded code is refused), with
    the input's height and width left free when `any_input_size`."""
    data: bytes
    sha256: str
    any_input_size: bool = True

    @property
    def cache_key(self) -> tuple:
        return "file", self.sha256, self.any_input_size

    def build(self):
        import keras

        from .losses import custom_objects

        with fs.local_file_holding(self.data, suffix=".keras") as archive:
            model = keras.saving.load_model(archive, custom_objects=custom_objects(), compile=False, safe_mode=True)
        if not self.any_input_size:
            return model
        from .model import any_size_architecture

        resizable = keras.models.model_from_json(any_size_architecture(model.to_json()),
                                                 custom_objects=custom_objects())
        resizable.set_weights(model.get_weights())
        return resizable


_cache: dict = {}


def worker_model(payload: ModelPayload | ModelFile, builds=None):
    """The model for `payload` in this worker process: built on first use only; for a `ModelPayload` with a known
    architecture, new weights (the next training round) are set in place.

    `builds` (a Spark accumulator) counts actual builds, so tests and logs can show one build per worker.
    """
    key = payload.cache_key
    if _cache.get("key") != key:
        import_tensorflow(task_cpus())
        pin_task_devices()
        if _cache:
            release_frozen()  # the freeze may hold the model being replaced
        _cache.clear()
        _cache["model"] = payload.build()
        _cache["key"] = key
        if builds is not None:
            builds.add(1)
    if isinstance(payload, ModelPayload) and _cache.get("weights_key") != payload.weights_key:
        _cache["model"].set_weights(payload.weights)
        _cache["weights_key"] = payload.weights_key
    return _cache["model"]


_forward_passes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def forward_pass(model):
    """The model's forward pass as one TensorFlow graph for inputs of any batch size, height and width.

    Keras's `predict_on_batch` traces a graph per new input shape, and photos rendered at their own aspect ratio
    come in many shapes: those traces cost more than the network itself (bench/colorize_bench.py). One graph with
    free dimensions is traced once per model. Anything that is not a Keras model (a test's stand-in) is called
    through its `predict_on_batch`.

    AutoGraph is off: the lambda has no control flow to convert, and converting it writes a
    `__autograph_generated_file*.py` into the temp folder that only an `atexit` hook removes. PySpark's workers
    leave through `os._exit`, so each worker of each job left one behind on its machine.
    """
    keras = sys.modules.get("keras")
    if keras is None or not isinstance(model, keras.Model):
        return model.predict_on_batch
    if model not in _forward_passes:
        import tensorflow as tf

        held = weakref.ref(model)  # the cache must not keep its own key alive
        graph = tf.function(lambda x: held()(x, training=False), autograph=False,
                            input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])
        _forward_passes[model] = lambda x: graph(x).numpy()
    return _forward_passes[model]


def predict_logits(model, l_codes: np.ndarray) -> np.ndarray:
    """Batch of L codes (N×H×W or N×H×W×1, L·2.55) -> logits over the bins at 1/4 resolution (N×H/4×W/4×313)."""
    x = np.asarray(l_codes, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    return np.asarray(forward_pass(model)(x))


def predict_ab(model, l_codes: np.ndarray, temperature: float) -> np.ndarray:
    """Batch of L codes (N×H×W or N×H×W×1, L·2.55) -> annealed-mean ab at 1/4 resolution (N×H/4×W/4×2), as the
    network gives it: the colorizer decodes `predict_logits` itself (reference, guards)."""
    return annealed_mean(predict_logits(model, l_codes), temperature)
