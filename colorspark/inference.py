"""Running a trained network on the executors.

The driver broadcasts one `ModelPayload` (architecture JSON + weights). Each Python worker keeps the Keras model it
built in a module-level cache keyed by the architecture, so the model is built once per worker process and reused by
every task and batch that process runs; new weights for the same architecture (the next training round) are set in
place without rebuilding. Before the first build TensorFlow is pinned to the GPUs Spark assigned the task
(colorspark/devices.py). Elephas's own `predict` is not used: it rebuilds the model per partition and fails on
empty partitions.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass

import numpy as np

from .bins import annealed_mean
from .devices import pin_task_devices
from .runtime import import_tensorflow, task_cpus


@dataclass
class ModelPayload:
    architecture: str  # model.to_json()
    weights: list
    weights_key: str

    @classmethod
    def from_model(cls, model, any_input_size: bool = False) -> ModelPayload:
        """With `any_input_size` the executors build the network with a free input height and width
        (`model.any_size_architecture`), to render at other sizes than the training crops'."""
        weights = model.get_weights()
        digest = hashlib.sha256()
        for w in weights:
            digest.update(np.ascontiguousarray(w).tobytes())
        architecture = model.to_json()
        if any_input_size:
            from .model import any_size_architecture

            architecture = any_size_architecture(architecture)
        return cls(architecture, weights, digest.hexdigest())


_cache: dict = {}


def worker_model(payload: ModelPayload, builds=None):
    """The model for `payload` in this worker process: built on first use only, weights refreshed when they change.

    `builds` (a Spark accumulator) counts actual builds, so tests and logs can show one build per worker.
    """
    arch_key = hashlib.sha256(payload.architecture.encode()).hexdigest()
    if _cache.get("arch_key") != arch_key:
        import_tensorflow(task_cpus())
        pin_task_devices()
        import keras

        from .losses import custom_objects

        _cache.clear()
        _cache["model"] = keras.models.model_from_json(payload.architecture, custom_objects=custom_objects())
        _cache["arch_key"] = arch_key
        if builds is not None:
            builds.add(1)
    if _cache.get("weights_key") != payload.weights_key:
        _cache["model"].set_weights(payload.weights)
        _cache["weights_key"] = payload.weights_key
    return _cache["model"]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def predict_ab(model, l_codes: np.ndarray, temperature: float) -> np.ndarray:
    """Batch of L codes (N×S×S or N×S×S×1, L·2.55) -> annealed-mean ab at 1/4 resolution (N×S/4×S/4×2)."""
    x = np.asarray(l_codes, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    logits = np.asarray(model.predict_on_batch(x))
    return annealed_mean(logits, temperature)
