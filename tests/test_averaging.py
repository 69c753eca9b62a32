"""Model averaging through Elephas: windows, averaging, carried optimizer state, and the worker's kept model."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from colorspark.averaging import AveragingSparkModel, average_outcomes, round_summary, sync_windows
from colorspark.averaging_worker import Window, optimizer_state, set_optimizer_state, window_rows
from colorspark.runtime import import_tensorflow

import_tensorflow(1)
import keras  # noqa: E402


@pytest.fixture(scope="module")
def sc():
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    yield spark.sparkContext
    spark.stop()


def _model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _data(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    return x, (x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32))[:, None]


@pytest.mark.parametrize("rows, epochs, sync_every", [(37, 1, 0), (37, 2, 0), (37, 3, 1), (40, 2, 5), (5, 1, 4)])
def test_windows_cover_each_pass_once_in_a_fresh_order(rows, epochs, sync_every):
    windows = sync_windows(rows, epochs, 4, sync_every, seed=9)
    assert windows[0].start == 0 and windows[-1].stop == rows * epochs
    assert all(a.stop == b.start for a, b in zip(windows, windows[1:]))
    assert all(w.stop - w.start == (sync_every * 4 or rows) for w in windows[:-1])
    stream = np.concatenate([window_rows(rows, 3, w) for w in windows])
    passes = stream.reshape(epochs, rows)
    assert all(sorted(p) == list(range(rows)) for p in passes)
    if epochs > 1:
        assert not np.array_equal(passes[0], passes[1])
    # a partition one row short of the longest ends its stream early, and its last window may be empty
    short = np.concatenate([window_rows(rows - 1, 3, w) for w in windows])
    assert len(short) == (rows - 1) * epochs


def test_averaging_matches_elephas_and_leaves_out_empty_windows():
    from elephas.utils import average_and_subtract

    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=4).astype(np.float32)]
    deltas = [[rng.normal(size=w.shape).astype(np.float32) for w in weights] for _ in range(3)]
    states = [[np.array(s, np.int64), rng.normal(size=5).astype(np.float32)] for s in (4, 4, 5)]
    outcomes = [(d, s, {"rows": 10}) for d, s in zip(deltas, states)]
    new, state = average_outcomes(weights, outcomes)
    for ours, theirs in zip(new, average_and_subtract(weights, deltas)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert state[0].dtype == np.int64 and int(state[0]) == 4  # 13/3 rounded
    np.testing.assert_allclose(state[1], np.mean([s[1] for s in states], axis=0), rtol=1e-6)
    idle = (deltas[0], states[0], {"rows": 0})
    new_with_idle, _ = average_outcomes(weights, outcomes[1:] + [idle])
    for ours, theirs in zip(new_with_idle, average_and_subtract(weights, deltas[1:])):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert average_outcomes(weights, [idle]) == (weights, None)
    reset = [(d, None, {"rows": 10}) for d in deltas]  # workers whose optimizer restarts send no state
    assert average_outcomes(weights, reset)[1] is None


def test_optimizer_state_round_trips_and_resets_without_the_learning_rate():
    model = _model()
    x, y = _data(32)
    model.train_on_batch(x, y)
    state = optimizer_state(model.optimizer)
    assert len(state) == len(model.optimizer.variables) - 1 and int(state[0]) == 1
    assert any(np.abs(s).sum() > 0 for s in state[1:])
    other = _model(seed=3)
    other.optimizer.learning_rate.assign(0.5)
    set_optimizer_state(other.optimizer, state)
    for mine, theirs in zip(optimizer_state(other.optimizer), state):
        np.testing.assert_array_equal(mine, theirs)
    assert float(other.optimizer.learning_rate) == pytest.approx(0.5)
    set_optimizer_state(other.optimizer, None)
    assert all(not np.any(s) for s in optimizer_state(other.optimizer))
    with pytest.raises(ValueError, match="optimizer state has 1 arrays"):
        set_optimizer_state(other.optimizer, state[:1])


def _spark_fit(sc, model, x, y, *, workers: int, sync_every: int, carry: bool, epochs: int = 1, seed: int = 5):
    rdd = sc.parallelize(list(zip(x, y)), workers).cache()
    sizes = rdd.glom().map(len).collect()
    spark_model = AveragingSparkModel(model, custom_objects={}, batch_size=4, sync_every=sync_every,
                                      carry_optimizer=carry, sizes=sizes, seed=seed)
    spark_model.fit(rdd, epochs=epochs, batch_size=4)
    return spark_model, sizes


def test_a_new_learning_rate_keeps_the_workers_model_keys():
    """The model JSON's compile settings hold the learning rate; the keys the workers cache by must not."""
    from colorspark.averaging_worker import spec_key
    from colorspark.inference import ModelPayload, architecture_json

    model = _model()
    keys = [(ModelPayload.from_model(model).cache_key,
             spec_key(architecture_json(model), keras.optimizers.serialize(model.optimizer), model.loss))]
    model.optimizer.learning_rate.assign(0.123)
    keys.append((ModelPayload.from_model(model).cache_key,
                 spec_key(architecture_json(model), keras.optimizers.serialize(model.optimizer), model.loss)))
    assert keys[0] == keys[1]
    assert "0.123" in model.to_json() and "0.123" not in architecture_json(model)


def test_one_worker_with_carried_state_trains_exactly_like_one_optimizer(sc):
    """With one worker, averaging is the identity: carrying Adam's state across windows must give the weights of
    a single uninterrupted Adam over the same rows in the same order; restarting it each window must not."""
    x, y = _data(40)
    carried, sizes = _spark_fit(sc, _model(), x, y, workers=1, sync_every=2, carry=True, epochs=2)
    assert len(carried.syncs) == 10 and sum(s["rows"] for s in carried.syncs) == 80
    reference = _model()
    order = np.concatenate([window_rows(sizes[0], 0, w) for w in sync_windows(40, 2, 4, 2, seed=5)])
    for start in range(0, len(order), 4):
        rows = order[start:start + 4]
        reference.train_on_batch(x[rows], y[rows])
    for ours, plain in zip(carried.master_network.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(ours, plain, rtol=1e-4, atol=1e-5)
    assert int(optimizer_state(carried.master_network.optimizer)[0]) == 20
    reset, _ = _spark_fit(sc, _model(), x, y, workers=1, sync_every=2, carry=False, epochs=2)
    assert not np.allclose(reset.master_network.get_weights()[0], reference.get_weights()[0], atol=1e-4)


def test_workers_keep_their_model_and_every_window_is_averaged(sc):
    x, y = _data(64)
    before = _model().get_weights()
    spark_model, sizes = _spark_fit(sc, _model(), x, y, workers=4, sync_every=1, carry=True)
    assert sizes == [16] * 4 and len(spark_model.syncs) == 4
    assert all(s["rows"] == 16 for s in spark_model.syncs)
    # 4 windows of 4 tasks on 2 Python workers: the model is built at most once per worker (twice per spec in all)
    assert 1 <= sum(s["builds"] for s in spark_model.syncs) <= 2
    assert not np.allclose(spark_model.master_network.get_weights()[0], before[0])
    summary = round_summary(spark_model.syncs)
    assert summary["syncs"] == 4 and summary["model_builds"] <= 2 and summary["train_loss"] > 0
    assert summary["train_seconds"] > 0
    assert summary["job_seconds"] >= summary["train_seconds"] / 2  # local[2]: at most two tasks train at once
    # the next round, at another learning rate, trains on the models the workers kept
    spark_model.master_network.optimizer.learning_rate.assign(0.003)
    next_round = AveragingSparkModel(spark_model.master_network, custom_objects={}, batch_size=4, sync_every=1,
                                     carry_optimizer=True, sizes=sizes, seed=6)
    next_round.fit(sc.parallelize(list(zip(x, y)), 4), epochs=1, batch_size=4)
    assert sum(s["builds"] for s in next_round.syncs) == 0


def test_windows_in_the_worker_are_exactly_the_windows_rows():
    w = Window(seed=1, epochs=2, start=3, stop=9)
    rows = window_rows(5, 0, w)
    assert len(rows) == 6 and set(rows) <= set(range(5))
    assert len(window_rows(5, 0, Window(1, 2, 10, 14))) == 0
