"""(executors) One synchronisation of model-averaging training: a subclass of Elephas's synchronous SparkWorker.

Elephas's own worker rebuilds the model from JSON and recompiles it on every fit, so every synchronisation pays the
model build and the first-step tracing again (about 10 s per round for `tiny`, measured in BENCHMARKS.md), and its
optimizer starts from zero each time, so Adam's moments and bias correction restart at every average. This worker
keeps one compiled model per Python worker process (Spark reuses the process for later tasks) and sets the
broadcast weights and, when the driver carries it, the averaged optimizer state into it. It trains on one window of
its partition, so that the driver can average more often than once per epoch, and returns its weight deltas (as
Elephas's worker does), its optimizer state after the window when the driver carries it, and its timings.

A worker's rows are a stream of `epochs` passes over its partition, each pass in its own seeded order; window
[start, stop) of that stream is what one synchronisation trains on. The driver (`colorspark/averaging.py`) cuts the
stream into windows of `sync_every` batches.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np
from elephas.worker import SparkWorker

from .devices import pin_task_devices
from .progress import TaskProgress
from .runtime import import_tensorflow, task_cpus

_compiled: dict = {}  # this Python worker's training model: {"key": spec key, "model": compiled Keras model}


@dataclass(frozen=True)
class Window:
    """Positions [start, stop) of each worker's row stream: `epochs` passes over its partition, pass e shuffled with
    seed (seed, partition, e)."""
    seed: int
    epochs: int
    start: int
    stop: int


def window_rows(partition_size: int, partition: int, window: Window) -> np.ndarray:
    """Indices into the partition of the rows a window trains on, in training order (empty past the stream's end)."""
    stop = min(window.stop, partition_size * window.epochs)
    positions = np.arange(window.start, max(window.start, stop))
    pieces = [np.random.default_rng([window.seed, partition, epoch]).permutation(partition_size)[
              positions[positions // partition_size == epoch] % partition_size]
              for epoch in np.unique(positions // partition_size)]
    return np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)


def spec_key(model_json: str, optimizer_config: dict, loss) -> str:
    """Identifies a compiled training model: the architecture, the optimizer (its learning rate aside, which is set
    per synchronisation) and the loss's configuration."""
    optimizer = {k: v for k, v in optimizer_config.get("config", {}).items() if k != "learning_rate"}
    loss_config = loss.get_config() if hasattr(loss, "get_config") else loss
    text = json.dumps([model_json, optimizer_config.get("class_name"), optimizer, loss_config], sort_keys=True,
                      default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def optimizer_state(optimizer) -> list[np.ndarray]:
    """The optimizer's variables that carry its state (step count and slots such as Adam's moments); the learning
    rate is left out: the driver sets it."""
    return [v.numpy() for v in optimizer.variables if not _is_learning_rate(v)]


def set_optimizer_state(optimizer, state: list[np.ndarray] | None) -> None:
    """Set the state `optimizer_state` returned; None resets it to a fresh optimizer's (zeros), as Elephas's worker
    has it."""
    variables = [v for v in optimizer.variables if not _is_learning_rate(v)]
    if state is not None and len(state) != len(variables):
        raise ValueError(f"optimizer state has {len(state)} arrays, the optimizer {len(variables)} variables")
    for i, variable in enumerate(variables):
        variable.assign(state[i] if state is not None else np.zeros(variable.shape, variable.dtype))


def _is_learning_rate(variable) -> bool:
    return variable.path.rsplit("/", 1)[-1] == "learning_rate"


class AveragingWorker(SparkWorker):
    """Elephas's synchronous worker, training one window on a compiled model kept in the process (module docstring).

    `parameters` is a broadcast of (weights, optimizer state or None); `sizes` are the rows of every partition."""

    def __init__(self, json, parameters, train_config, master_optimizer, master_loss, master_metrics,
                 custom_objects, *, key: str, window: Window, sizes: list[int], learning_rate: float,
                 progress_seconds: float = 0.0):
        super().__init__(json, parameters, train_config, master_optimizer, master_loss, master_metrics,
                         custom_objects)
        self.key = key
        self.window = window
        self.sizes = sizes
        self.learning_rate = learning_rate
        self.progress_seconds = progress_seconds  # a progress line this often while training a window (0: none)

    def train(self, data_iterator):
        from pyspark import TaskContext

        started = time.perf_counter()
        partition = TaskContext.get().partitionId()
        model, built = self._model()
        weights, state = self.parameters.value
        model.set_weights(weights)
        set_optimizer_state(model.optimizer, state)
        model.optimizer.learning_rate.assign(self.learning_rate)
        ready = time.perf_counter()
        wanted = window_rows(self.sizes[partition], partition, self.window)
        x, y = _take(data_iterator, wanted)
        read = time.perf_counter()
        batch = self.train_config["batch_size"]
        ticker = TaskProgress("crops", len(x), self.progress_seconds, f"train worker {partition}")
        losses = []
        for i in range(0, len(x), batch):
            losses.append(float(model.train_on_batch(x[i:i + batch], y[i:i + batch])) * len(x[i:i + batch]))
            ticker.update(i + len(x[i:i + batch]))
        trained = time.perf_counter()
        deltas = [before - after for before, after in zip(weights, model.get_weights())]
        carried = optimizer_state(model.optimizer) if state is not None else None  # reset: nothing to send back
        yield deltas, carried, {
            "rows": len(x), "loss_sum": sum(losses), "built": built, "setup_seconds": ready - started,
            "read_seconds": read - ready, "train_seconds": trained - read}

    def _model(self):
        """(compiled model, whether it was built now): one per Python worker, rebuilt only for another spec."""
        if _compiled.get("key") == self.key:
            return _compiled["model"], False
        import_tensorflow(task_cpus())
        pin_task_devices()
        import keras

        _compiled.clear()
        model = keras.models.model_from_json(self.json, custom_objects=self.custom_objects)
        model.compile(optimizer=keras.optimizers.deserialize(self.master_optimizer), loss=self.master_loss)
        model.optimizer.build(model.trainable_variables)
        _compiled.update(key=self.key, model=model)
        return model, True


def _take(rows, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the partition's rows at indices `wanted`, in that order (a window that spans two passes may hold a
    row twice); only those rows are kept in memory."""
    slots: dict[int, list[int]] = {}
    for slot, index in enumerate(wanted):
        slots.setdefault(int(index), []).append(slot)
    picked: list = [None] * len(wanted)
    for index, row in enumerate(rows):
        for slot in slots.get(index, ()):
            picked[slot] = row
    if not picked:
        return np.empty((0,)), np.empty((0,))
    return np.stack([r[0] for r in picked]), np.stack([r[1] for r in picked])
