"""Model averaging through Elephas: windows, averaging, carried optimizer state, the worker's kept model, outer
momentum on the averaged update and the per-window warm-up of the workers' rate."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from colorspark.averaging import AveragingSparkModel, OuterMomentum, average_outcomes, round_summary, sync_windows
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
    new, state = average_outcomes(weights, outcomes, OuterMomentum(0.0))
    for ours, theirs in zip(new, average_and_subtract(weights, deltas)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert state[0].dtype == np.int64 and int(state[0]) == 4  # 13/3 rounded
    np.testing.assert_allclose(state[1], np.mean([s[1] for s in states], axis=0), rtol=1e-6)
    idle = (deltas[0], states[0], {"rows": 0})
    new_with_idle, _ = average_outcomes(weights, outcomes[1:] + [idle], OuterMomentum(0.0))
    for ours, theirs in zip(new_with_idle, average_and_subtract(weights, deltas[1:])):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert average_outcomes(weights, [idle], OuterMomentum(0.0)) == (weights, None)
    reset = [(d, None, {"rows": 10}) for d in deltas]  # workers whose optimizer restarts send no state
    assert average_outcomes(weights, reset, OuterMomentum(0.0))[1] is None


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


def _spark_fit(sc, model, x, y, *, workers: int, sync_every: int, carry: bool, epochs: int = 1, seed: int = 5,
               outer=None, window_rate=None):
    rdd = sc.parallelize(list(zip(x, y)), workers).cache()
    sizes = rdd.glom().map(len).collect()
    spark_model = AveragingSparkModel(model, custom_objects={}, batch_size=4, sync_every=sync_every,
                                      carry_optimizer=carry, sizes=sizes, seed=seed, outer=outer,
                                      window_rate=window_rate)
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


def test_a_worker_builds_its_model_once_and_releases_the_freeze_before_replacing_it(monkeypatch):
    """A cached model frozen by runtime.freeze_imports would never be collected once replaced."""
    from colorspark import inference

    released = []
    monkeypatch.setattr(inference, "_cache", {})
    monkeypatch.setattr(inference, "release_frozen", lambda: released.append(len(inference._cache)))

    class Payload:
        def __init__(self, key):
            self.cache_key, self.builds = key, 0

        def build(self):
            self.builds += 1
            return keras.Sequential(name=f"m{self.cache_key}")

    first, second = Payload(1), Payload(2)
    model = inference.worker_model(first)
    assert inference.worker_model(first) is model and first.builds == 1 and released == []
    assert inference.worker_model(second) is not model and second.builds == 1
    assert released == [2]  # released while the old model was still cached, before it was dropped


@pytest.mark.spark
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


@pytest.mark.spark
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


# --- outer momentum ---------------------------------------------------------------------------------------------------

def _window_outcomes(rng, weights, workers: int, idle: int | None = None):
    """One window's worker outcomes with random deltas; worker `idle` trained no row."""
    return [([rng.normal(size=w.shape).astype(np.float32) for w in weights], None, {"rows": 0 if k == idle else 8})
            for k in range(workers)]


def test_zero_outer_momentum_is_plain_averaging_bit_for_bit():
    """m = 0 must leave the averaging exactly as it was before the knob existed: weights minus the float64 mean of the
    deltas cast to the weights' dtype, with no buffer kept."""
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)]
    outer = OuterMomentum(0.0, buffer=[np.ones_like(w) for w in weights])  # e.g. a checkpoint's, from an m > 0 run
    assert outer.buffer is None
    for _ in range(3):
        outcomes = _window_outcomes(rng, weights, 3)
        expected = [w - np.mean([o[0][i] for o in outcomes], axis=0, dtype=np.float64).astype(w.dtype)
                    for i, w in enumerate(weights)]
        weights, _ = average_outcomes(weights, outcomes, outer)
        for ours, theirs in zip(weights, expected):
            assert ours.dtype == np.float32
            np.testing.assert_array_equal(ours, theirs)
        assert outer.buffer is None


def test_outer_momentum_after_two_windows_is_the_hand_computation_and_idle_windows_are_no_step():
    rng = np.random.default_rng(4)
    m = 0.6
    w0 = [rng.normal(size=(4, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)]
    first, second = _window_outcomes(rng, w0, 3), _window_outcomes(rng, w0, 3, idle=1)
    d1 = [np.mean([o[0][i] for o in first], axis=0) for i in range(2)]
    d2 = [np.mean([o[0][i] for k, o in enumerate(second) if k != 1], axis=0) for i in range(2)]  # the idle one is out
    # u1 = d1, w1 = w0 - d1; u2 = m·d1 + d2, w2 = w1 - u2 = w0 - (1 + m)·d1 - d2
    expected = [w - (1 + m) * a - b for w, a, b in zip(w0, d1, d2)]
    outer = OuterMomentum(m)
    w1, _ = average_outcomes(w0, first, outer)
    for ours, a in zip(outer.buffer, d1):
        np.testing.assert_allclose(ours, a, rtol=1e-6)
    # a window where no worker trained (every stream ended) neither decays nor applies the buffer
    still, _ = average_outcomes(w1, _window_outcomes(rng, w0, 3, idle=0)[:1], outer)
    assert still is w1
    for ours, a in zip(outer.buffer, d1):
        np.testing.assert_allclose(ours, a, rtol=1e-6)
    w2, _ = average_outcomes(w1, second, outer)
    for ours, theirs in zip(w2, expected):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    for ours, a, b in zip(outer.buffer, d1, d2):
        np.testing.assert_allclose(ours, m * a + b, rtol=1e-5, atol=1e-6)


def _by_hand(parts, sizes, windows, weights, rates, outer_momentum, buffer=None):
    """What the driver and the workers compute, done in this process: in each window every worker trains a fresh
    Adam (optimizer state reset) at that window's rate on its window's rows from the weights, then
    u = m·u + mean delta and the weights become weights − u."""
    model = _model()
    for window, rate in zip(windows, rates):
        deltas = []
        for p, rows in enumerate(parts):
            wanted = window_rows(sizes[p], p, window)
            if not len(wanted):
                continue
            x = np.stack([rows[i][0] for i in wanted])
            y = np.stack([rows[i][1] for i in wanted])
            model.set_weights(weights)
            set_optimizer_state(model.optimizer, None)
            model.optimizer.learning_rate.assign(rate)
            for start in range(0, len(x), 4):
                model.train_on_batch(x[start:start + 4], y[start:start + 4])
            deltas.append([b - a for b, a in zip(weights, model.get_weights())])
        mean = [np.mean(d, axis=0) for d in zip(*deltas)]
        buffer = mean if buffer is None else [outer_momentum * u + d for u, d in zip(buffer, mean)]
        weights = [w - u for w, u in zip(weights, buffer)]
    return weights, buffer


@pytest.mark.spark
def test_spark_fit_with_outer_momentum_and_window_rates_matches_the_hand_computation_across_rounds(sc):
    """Two workers, two windows per round at their own rates, m = 0.5; then a second round (a new model, as the train
    job makes one per round) with the same momentum object: the buffer carries on across rounds."""
    x, y = _data(16)
    rates, asked = [0.004, 0.012], []
    outer = OuterMomentum(0.5)
    first, sizes = _spark_fit(sc, _model(), x, y, workers=2, sync_every=1, carry=False, outer=outer,
                              window_rate=lambda i, n: asked.append((i, n)) or rates[i])
    assert sizes == [8, 8] and asked == [(0, 2), (1, 2)] and [s["learning_rate"] for s in first.syncs] == rates
    summary = round_summary(first.syncs)
    assert (summary["first_window_rate"], summary["last_window_rate"]) == (0.004, 0.012)
    parts = sc.parallelize(list(zip(x, y)), 2).glom().collect()  # the rows each worker holds, in its order
    round_one, buffer_one = _by_hand(parts, sizes, sync_windows(8, 1, 4, 1, seed=5), _model().get_weights(), rates,
                                     0.5)
    for ours, theirs in zip(first.master_network.get_weights(), round_one):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    for ours, theirs in zip(outer.buffer, buffer_one):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    model = first.master_network
    model.optimizer.learning_rate.assign(0.008)  # no window_rate: every window at the optimizer's rate
    second = AveragingSparkModel(model, custom_objects={}, batch_size=4, sync_every=1, carry_optimizer=False,
                                 sizes=sizes, seed=6, outer=outer)
    second.fit(sc.parallelize(list(zip(x, y)), 2), epochs=1, batch_size=4)
    assert [s["learning_rate"] for s in second.syncs] == [pytest.approx(0.008)] * 2
    windows = sync_windows(8, 1, 4, 1, seed=6)
    expected, _ = _by_hand(parts, sizes, windows, round_one, [0.008] * 2, 0.5, buffer_one)
    for ours, theirs in zip(second.master_network.get_weights(), expected):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    # had the buffer restarted at zero, the second round would have ended elsewhere
    restarted, _ = _by_hand(parts, sizes, windows, round_one, [0.008] * 2, 0.5)
    assert not np.allclose(restarted[0], expected[0], rtol=1e-4, atol=1e-5)


# --- warm-up ----------------------------------------------------------------------------------------------------------

def test_warmup_ramps_linearly_per_window_and_reaches_the_scaled_rate_where_it_ends():
    from colorspark.training import warmup_rate

    rate, scaled, windows = 1e-3, 8e-3, 4

    def rates(round_number, warmup_rounds):
        return [warmup_rate(rate, scaled, round_number, k, windows, warmup_rounds=warmup_rounds)
                for k in range(windows)]

    ramp = rates(1, 2) + rates(2, 2)  # N = 2 rounds × 4 windows = 8 warm-up windows
    assert ramp == pytest.approx([rate + (scaled - rate) * j / 8 for j in range(8)], rel=1e-12)
    assert ramp[0] == rate and all(b - a == pytest.approx((scaled - rate) / 8) for a, b in zip(ramp, ramp[1:]))
    assert rates(3, 2) == [scaled] * windows and rates(7, 2) == [scaled] * windows  # exactly, after the warm-up
    assert rates(1, 0) == [scaled] * windows  # no warm-up: today's rate in every window
    # one window per round (sync_every = 0): the ramp steps once per round
    assert [warmup_rate(rate, scaled, r, 0, 1, warmup_rounds=3) for r in (1, 2, 3, 4)] == pytest.approx(
        [rate, rate + (scaled - rate) / 3, rate + 2 * (scaled - rate) / 3, scaled])
    # a rate only of the round and the window: what a resumed run computes for round 2 is what the first run did
    assert rates(2, 2) == ramp[4:]
