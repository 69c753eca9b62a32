"""(driver) Synchronous model averaging through Elephas, synchronising every `sync_every` batches.

Elephas's synchronous `SparkModel` averages the workers' weights once per epoch, and each worker starts a fresh
optimizer on every fit. With W workers that is one average per n/W rows per worker, and Adam's moments restart each
time (BENCHMARKS.md, section 2b, measures what both cost). `AveragingSparkModel` keeps Elephas's interface and its
scheme (broadcast the weights, each partition trains a copy, collect the deltas, subtract their mean) and changes
three things:

* a fit is cut into windows of `sync_every` batches per worker (0: one pass over the partition, as Elephas), and
  the weights are averaged after each window;
* the optimizer's state (Adam's step count and moments) is averaged with the weights and handed to the next window,
  when `carry_optimizer` is on, so that training continues as one optimizer would; off, every window starts a fresh
  optimizer, as Elephas's workers do;
* its workers (`colorspark/averaging_worker.py`) keep their compiled model between windows.

Two optional knobs act on the averaged update and on the workers' rate (both off by default, which is the plain
scheme above): block momentum on the averaged update (`OuterMomentum`, `train.outer_momentum`), and a rate per
window (`window_rate`, which the train job uses for its warm-up, `training.warmup_rate`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from elephas.spark_model import SparkModel

from .averaging_worker import AveragingWorker, Window, optimizer_state, set_optimizer_state, spec_key
from .inference import architecture_json


def sync_windows(partition_rows: int, epochs: int, batch_size: int, sync_every: int, seed: int) -> list[Window]:
    """The windows of one fit over partitions of at most `partition_rows` rows: `sync_every` batches each, or one
    pass over the partition when `sync_every` is 0."""
    stream = partition_rows * epochs
    step = sync_every * batch_size if sync_every else partition_rows
    return [Window(seed, epochs, start, min(start + step, stream)) for start in range(0, stream, step)]


class OuterMomentum:
    """Block momentum on the averaged update (BMUF, Chen and Huo 2016; SlowMo, Wang et al. 2020), kept by the driver
    across windows and rounds.

    After each window, with d the mean of the workers' deltas, the buffer becomes u = m·u + d and the weights
    w − u: heavy-ball momentum whose gradient is the averaged delta, so a steady direction moves up to 1/(1 − m)
    times as far per average. m = 0 is plain averaging (w − d, exactly as without it) and keeps no buffer. `buffer`
    (one array per weight, the weights' dtypes) is what a checkpoint saved; None starts it at zero.
    """

    def __init__(self, momentum: float, buffer: list[np.ndarray] | None = None):
        self.momentum = momentum
        self.buffer = buffer if momentum else None

    def step(self, weights: list[np.ndarray], delta: list[np.ndarray]) -> list[np.ndarray]:
        """The weights after one window whose workers' mean delta is `delta`."""
        if not self.momentum:
            return [w - d for w, d in zip(weights, delta)]
        self.buffer = list(delta) if self.buffer is None else [
            (self.momentum * u + d).astype(d.dtype) for u, d in zip(self.buffer, delta)]
        return [w - u for w, u in zip(weights, self.buffer)]


def average_outcomes(weights: list[np.ndarray], outcomes: list,
                     outer: OuterMomentum) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """(the weights after this window's update, mean optimizer state or None when the workers sent none) over the
    workers that trained in this window; a worker whose window was empty (its stream ended a row early) is left out
    rather than averaged in as a zero delta. The update is the mean delta through `outer` (without momentum: the
    weights minus the mean delta, as Elephas has it). A window in which no worker trained is no step: the weights
    and the momentum buffer stay as they are, rather than the buffer being decayed or applied once more. Integer
    state (the step count) is rounded."""
    trained = [(deltas, state) for deltas, state, stats in outcomes if stats["rows"]]
    if not trained:
        return weights, None
    delta = [np.mean([t[0][i] for t in trained], axis=0, dtype=np.float64).astype(w.dtype)
             for i, w in enumerate(weights)]
    new_weights = outer.step(weights, delta)
    states = [t[1] for t in trained]
    if any(state is None for state in states):  # the optimizer is reset at every average: nothing to carry
        return new_weights, None
    return new_weights, [_mean_like(parts) for parts in zip(*states)]


def _mean_like(parts) -> np.ndarray:
    mean = np.mean(parts, axis=0, dtype=np.float64)
    dtype = np.asarray(parts[0]).dtype
    return (np.rint(mean) if np.issubdtype(dtype, np.integer) else mean).astype(dtype)


class AveragingSparkModel(SparkModel):
    """Elephas's synchronous SparkModel, averaging after every window of `sync_every` batches (module docstring).

    `sizes` are the rows of each training partition (one per worker); `seed` seeds the per-pass row orders, so a
    resumed round trains on the same windows. `outer` applies each window's mean delta (None: plain averaging); pass
    the same one to every round's model so that its buffer carries on. `window_rate(i, n)` is the workers' learning
    rate in window i of the fit's n (None: the optimizer's rate in every window); `progress_seconds`, how often each
worker logs its progress through a window (0: never). After `fit`, `syncs` holds one
    record per window: rows, loss, the workers' rate, and where the time went (driver broadcast and averaging, the
    Spark job, the workers' set-up, reading and training).
    """

    def __init__(self, model, *, custom_objects: dict, batch_size: int, sync_every: int, carry_optimizer: bool,
                 sizes: list[int], seed: int, outer: OuterMomentum | None = None,
                 window_rate: Callable[[int, int], float] | None = None, progress_seconds: float = 0.0):
        super().__init__(model, custom_objects=custom_objects, batch_size=batch_size)
        self.sync_every = sync_every
        self.carry_optimizer = carry_optimizer
        self.sizes = list(sizes)
        self.seed = seed
        self.outer = outer if outer is not None else OuterMomentum(0.0)
        self.window_rate = window_rate
        self.progress_seconds = progress_seconds  # the workers' progress line while they train a window (0: none)
        self.syncs: list[dict] = []

    def _fit(self, rdd, **kwargs):
        import keras

        model = self._master_network
        optimizer = model.optimizer
        optimizer_config = keras.optimizers.serialize(optimizer)
        model_json = architecture_json(model)
        key = spec_key(model_json, optimizer_config, self.master_loss)
        learning_rate = float(np.asarray(optimizer.learning_rate))
        weights = model.get_weights()
        state = optimizer_state(optimizer) if self.carry_optimizer else None
        batch_size = kwargs.get("batch_size", self.batch_size)
        windows = sync_windows(max(self.sizes), kwargs.get("epochs", 1), batch_size, self.sync_every, self.seed)
        for index, window in enumerate(windows):
            started = time.perf_counter()
            rate = self.window_rate(index, len(windows)) if self.window_rate else learning_rate
            parameters = rdd.context.broadcast((weights, state))
            worker = AveragingWorker(model_json, parameters, {"batch_size": batch_size}, optimizer_config,
                                     self.master_loss, self.master_metrics, self.custom_objects, key=key,
                                     window=window, sizes=self.sizes, learning_rate=rate,
                                     progress_seconds=self.progress_seconds)
            try:
                job_started = time.perf_counter()
                outcomes = rdd.mapPartitions(worker.train).collect()
                job_seconds = time.perf_counter() - job_started
            finally:
                parameters.destroy()
            weights, averaged_state = average_outcomes(weights, outcomes, self.outer)
            if self.carry_optimizer and averaged_state is not None:
                state = averaged_state
            self.syncs.append(_sync_record(outcomes, rate, time.perf_counter() - started, job_seconds))
        model.set_weights(weights)
        if self.carry_optimizer and state is not None:
            set_optimizer_state(optimizer, state)


def _sync_record(outcomes: list, rate: float, seconds: float, job_seconds: float) -> dict:
    stats = [o[2] for o in outcomes]
    return {"rows": sum(s["rows"] for s in stats), "loss_sum": sum(s["loss_sum"] for s in stats),
            "learning_rate": rate, "seconds": seconds, "job_seconds": job_seconds,
            "builds": sum(bool(s["built"]) for s in stats),
            **{key: sum(s[key] for s in stats) for key in ("setup_seconds", "read_seconds", "train_seconds")}}


def round_summary(syncs: list[dict]) -> dict:
    """A round's training loss (mean over every row trained), the workers' rate in its first and last window, and its
    time split, for the round's history entry."""
    rows = sum(s["rows"] for s in syncs)
    return {"train_loss": sum(s["loss_sum"] for s in syncs) / rows if rows else None, "syncs": len(syncs),
            "first_window_rate": syncs[0]["learning_rate"], "last_window_rate": syncs[-1]["learning_rate"],
            "model_builds": sum(s["builds"] for s in syncs),
            **{key: round(sum(s[key] for s in syncs), 3) for key in ("job_seconds", "setup_seconds", "read_seconds",
                                                                     "train_seconds")},
            "driver_seconds": round(sum(s["seconds"] - s["job_seconds"] for s in syncs), 3)}
