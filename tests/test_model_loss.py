"""colorspark.model (block spec, Keras model, presets) and colorspark.losses (the rebalanced soft cross-entropy).

TensorFlow is imported once, quietly, through colorspark.runtime; every model here is built but never trained.
"""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest

from colorspark.runtime import import_tensorflow

import_tensorflow()

import keras  # noqa: E402
from helpers_pure import squared_distances  # noqa: E402
from pyspark import cloudpickle  # noqa: E402  (the pickler Spark ships closures with; importing it starts nothing)

from colorspark.bins import gamut_centres, soft_encode  # noqa: E402
from colorspark.config import defaults  # noqa: E402
from colorspark.losses import RebalancedSoftCrossEntropy, custom_objects  # noqa: E402
from colorspark.model import PRESETS, Block, block_spec, build_model, describe, model_settings  # noqa: E402

Q = 313


def _config(preset: str = "small", **model_values) -> dict:
    config = defaults()
    config["train"]["preset"] = preset
    config["model"].update(model_values)
    return config


# --- block spec -------------------------------------------------------------------------------------------------------


def test_block_spec_vgg_layout():
    specs = block_spec(16, [2, 2, 3, 3, 3], 2)
    by_name = {b.name: b for b in specs}
    assert [b.name for b in specs] == [f"conv{i}" for i in range(1, 9)]
    assert [by_name[f"conv{i}"].convs for i in range(1, 6)] == [2, 2, 3, 3, 3]
    assert [b.name for b in specs if b.stride == 2] == ["conv1", "conv2", "conv3"]
    assert {b.name for b in specs if b.dilation > 1} == {"conv5", "conv6"}
    assert by_name["conv5"].dilation == by_name["conv6"].dilation == 2
    assert [b.name for b in specs if b.transpose] == ["conv8"]
    assert [b.filters for b in specs] == [16, 32, 64, 128, 128, 128, 128, 64]


def test_block_spec_dilation_is_configurable():
    specs = block_spec(4, [1, 1, 1, 1, 1], 4)
    assert [b.dilation for b in specs] == [1, 1, 1, 1, 4, 4, 1, 1]


# --- built models -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    return build_model(model_settings(_config("tiny")))


@pytest.fixture(scope="module")
def small_model():
    return build_model(model_settings(_config("small")))


@pytest.mark.parametrize("which", ["tiny", "small"])
def test_model_input_and_output_shapes(which, tiny_model, small_model):
    model = tiny_model if which == "tiny" else small_model
    size = PRESETS[which]["input_size"]
    assert tuple(model.input_shape) == (None, size, size, 1)
    assert tuple(model.output_shape) == (None, size // 4, size // 4, Q)
    assert model.name == f"colorspark_{which}"


def test_tiny_model_predicts_logits_of_the_right_shape(tiny_model):
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 64, 64, 1)).astype(np.float32)
    y = np.asarray(tiny_model.predict_on_batch(x))
    assert y.shape == (2, 16, 16, Q) and np.isfinite(y).all()


def test_small_model_layer_names_strides_dilations(small_model):
    names = [layer.name for layer in small_model.layers]
    expected_convs = (["conv1_1", "conv1_2", "conv2_1", "conv2_2"] + [f"conv{b}_{i}" for b in (3, 4, 5, 6, 7)
                                                                     for i in (1, 2, 3)]
                      + ["conv8_up", "conv8_2", "conv8_3", "ab_logits"])
    assert [n for n in names if n.startswith(("conv", "ab_")) and not n.endswith("_bn")] == expected_convs
    strided = [layer.name for layer in small_model.layers
               if isinstance(layer, keras.layers.Conv2D) and tuple(layer.strides) == (2, 2)]
    assert strided == ["conv1_2", "conv2_2", "conv3_3"]
    dilated = {layer.name for layer in small_model.layers
               if isinstance(layer, keras.layers.Conv2D) and tuple(layer.dilation_rate) != (1, 1)}
    assert dilated == {f"conv{b}_{i}" for b in (5, 6) for i in (1, 2, 3)}
    up = small_model.get_layer("conv8_up")
    assert isinstance(up, keras.layers.Conv2DTranspose) and tuple(up.strides) == (2, 2)
    assert small_model.get_layer("ab_logits").filters == Q
    assert small_model.get_layer("conv4_1").filters == 8 * PRESETS["small"]["base_filters"]


def test_every_block_ends_with_batch_normalization(tiny_model, small_model):
    for model in (tiny_model, small_model):
        bn = [layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        assert bn == [f"conv{i}_bn" for i in range(1, 9)]


def test_tiny_model_layer_names(tiny_model):
    names = {layer.name for layer in tiny_model.layers}
    assert {"l_code", "normalise_l", "conv1_1", "conv5_1", "conv8_up", "ab_logits"} <= names
    assert "conv1_2" not in names  # depth 1 per block


def test_rescaling_maps_l_codes_to_centred_lightness(tiny_model):
    layer = tiny_model.get_layer("normalise_l")
    assert isinstance(layer, keras.layers.Rescaling)
    out = np.asarray(layer(np.array([[0.0, 127.5, 255.0]], dtype=np.float32)))
    np.testing.assert_allclose(out, [[-0.5, 0.0, 0.5]], atol=1e-7)


def test_custom_input_size_and_width():
    model = build_model(model_settings(_config("tiny", input_size=32, base_filters=2)))
    assert tuple(model.input_shape) == (None, 32, 32, 1)
    assert tuple(model.output_shape) == (None, 8, 8, Q)
    assert model.get_layer("conv1_1").filters == 2


def test_dropout_drops_whole_feature_maps_in_training_only(tiny_model):
    model = build_model(model_settings(_config("tiny", dropout=0.5)))
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.SpatialDropout2D)]
    assert [layer.name for layer in dropouts] == [f"conv{i}_dropout" for i in range(1, 8)]  # not after the last block
    assert {layer.rate for layer in dropouts} == {0.5}
    assert not any(isinstance(layer, keras.layers.SpatialDropout2D) for layer in tiny_model.layers)
    model.set_weights(tiny_model.get_weights())  # no weights of its own: the same network otherwise
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 1)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), tiny_model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    maps = np.asarray(model.get_layer("conv1_dropout")(np.ones((8, 4, 4, 3), np.float32), training=True))
    assert set(np.unique(maps)) == {0.0, 2.0}  # dropped, or kept and scaled by 1 / (1 − rate)
    pixels = maps.reshape(8, 16, 3)
    assert (pixels == pixels[:, :1]).all()  # per image and channel, the whole map is dropped or kept


# --- settings and description -----------------------------------------------------------------------------------------


def test_model_settings_is_the_preset_by_default():
    for preset in PRESETS:
        assert model_settings(_config(preset)) == {**PRESETS[preset], "preset": preset}


def test_model_settings_applies_model_overrides_over_the_preset():
    settings = model_settings(_config("small", base_filters=8, depth=[1, 1, 2, 2, 2]))
    assert settings == {"base_filters": 8, "depth": [1, 1, 2, 2, 2], "dilation": 2, "input_size": 64,
                        "preset": "small"}
    assert model_settings(_config("vgg16", input_size=128))["input_size"] == 128
    assert model_settings(_config("vgg16", dilation=4))["base_filters"] == 64


def test_model_settings_does_not_modify_the_presets():
    before = copy.deepcopy(PRESETS)
    model_settings(_config("tiny", base_filters=9, depth=[3, 3, 3, 3, 3]))
    assert before == PRESETS


def test_describe_is_json_serialisable_and_matches_the_spec():
    settings = model_settings(_config("small"))
    text = json.dumps(describe(settings))
    blocks = json.loads(text)
    assert [Block(**b) for b in blocks] == block_spec(16, [2, 2, 3, 3, 3], 2)
    assert blocks[0] == {"name": "conv1", "filters": 16, "convs": 2, "stride": 2, "dilation": 1, "transpose": False}


# --- the loss against a numpy reference -------------------------------------------------------------------------------


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    shifted = z - z.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def reference_loss(ab: np.ndarray, logits: np.ndarray, class_weights: np.ndarray, k: int, sigma: float,
                   gray_chroma: float) -> float:
    """Zhang et al. eq. 2-4 from first principles, one pixel at a time, in float64."""
    centres = gamut_centres().astype(np.float64)
    log_p = _log_softmax(logits)
    per_sample = []
    for b in range(ab.shape[0]):
        pixel_losses = []
        for i in range(ab.shape[1]):
            for j in range(ab.shape[2]):
                d2 = squared_distances(ab[b, i, j], centres)
                nearest = np.argsort(d2, kind="stable")[:k]
                q = np.exp(-d2[nearest] / (2 * sigma ** 2))
                q /= q.sum()
                cross_entropy = -(q * log_p[b, i, j, nearest]).sum()
                pixel_losses.append(class_weights[nearest[0]] * cross_entropy)
        chroma = np.hypot(ab[b, ..., 0], ab[b, ..., 1]).max()
        per_sample.append(np.mean(pixel_losses) if chroma >= gray_chroma else 0.0)
    return float(np.mean(per_sample))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(42)
    colourful = np.array([[[35.3, -12.7], [-48.2, 60.1]], [[5.5, 70.4], [20.2, 20.9]]])
    near_gray = np.array([[[1.2, -0.7], [3.0, 2.5]], [[-2.2, 1.9], [0.4, 4.1]]])  # max chroma 4.12 < 5
    ab = np.stack([colourful, near_gray]).astype(np.float32)
    logits = rng.normal(0, 2, size=(2, 2, 2, Q)).astype(np.float32)
    weights = rng.uniform(0.2, 5.0, size=Q)
    return ab, logits, weights


def test_loss_matches_numpy_reference(batch):
    ab, logits, weights = batch
    loss = RebalancedSoftCrossEntropy(weights, neighbours=10, sigma=5.0, gray_chroma=5.0)
    got = float(loss(ab, logits))
    expected = reference_loss(ab, logits, weights, 10, 5.0, 5.0)
    assert got == pytest.approx(expected, abs=1e-5, rel=1e-6)
    assert expected > 0


def test_near_gray_sample_contributes_zero(batch):
    ab, logits, weights = batch
    loss = RebalancedSoftCrossEntropy(weights)
    colourful_only = reference_loss(ab[:1], logits[:1], weights, 10, 5.0, 5.0)
    assert float(loss(ab, logits)) == pytest.approx(colourful_only / 2, abs=1e-5, rel=1e-6)  # mean over B = 2
    assert float(loss(ab[1:], logits[1:])) == 0.0
    # with the gray threshold at 0 the second sample counts
    unmasked = RebalancedSoftCrossEntropy(weights, gray_chroma=0.0)
    expected = reference_loss(ab, logits, weights, 10, 5.0, 0.0)
    assert float(unmasked(ab, logits)) == pytest.approx(expected, abs=1e-5, rel=1e-6)
    assert expected > colourful_only / 2


@pytest.mark.filterwarnings("ignore:You are using a softmax over axis -1:UserWarning")  # k = 1: one neighbour
@pytest.mark.parametrize("k, sigma", [(1, 5.0), (5, 2.5), (20, 10.0)])
def test_loss_matches_reference_for_other_neighbourhoods(batch, k, sigma):
    ab, logits, weights = batch
    loss = RebalancedSoftCrossEntropy(weights, neighbours=k, sigma=sigma, gray_chroma=5.0)
    assert float(loss(ab, logits)) == pytest.approx(reference_loss(ab, logits, weights, k, sigma, 5.0),
                                                    abs=1e-5, rel=1e-6)


def test_int8_targets_as_stored_give_the_same_loss(batch):
    ab, logits, weights = batch
    stored = np.rint(ab).astype(np.int8)
    loss = RebalancedSoftCrossEntropy(weights)
    assert float(loss(stored, logits)) == pytest.approx(float(loss(stored.astype(np.float32), logits)), abs=1e-6)


def test_uniform_weights_give_plain_soft_cross_entropy(batch):
    """With w ≡ 1 the loss is Keras's categorical cross-entropy against bins.soft_encode's 313-vector targets."""
    ab, logits, _ = batch
    ab = ab[:1]
    logits = logits[:1]
    idx, w = soft_encode(ab, k=10, sigma=5.0)
    target = np.zeros(ab.shape[:-1] + (Q,), dtype=np.float32)
    np.put_along_axis(target, idx.astype(np.int64), w, axis=-1)
    plain = keras.losses.categorical_crossentropy(target, logits, from_logits=True)
    expected = float(np.mean(np.asarray(plain)))
    loss = RebalancedSoftCrossEntropy(np.ones(Q))
    assert float(loss(ab, logits)) == pytest.approx(expected, abs=1e-5, rel=1e-6)
    assert float(loss(ab, logits)) == pytest.approx(reference_loss(ab, logits, np.ones(Q), 10, 5.0, 5.0), abs=1e-5)


def test_loss_is_lowest_for_logits_peaked_at_the_target(batch):
    ab, _, weights = batch
    centres = gamut_centres()
    good = np.full(ab.shape[:-1] + (Q,), -10.0, dtype=np.float32)
    nearest = squared_distances(ab, centres).argmin(-1)
    np.put_along_axis(good, nearest[..., None], 10.0, axis=-1)
    bad = np.roll(good, 50, axis=-1)
    loss = RebalancedSoftCrossEntropy(weights)
    assert float(loss(ab, good)) < float(loss(ab, bad))


# --- serialisation ----------------------------------------------------------------------------------------------------


def _same_loss(a: RebalancedSoftCrossEntropy, b: RebalancedSoftCrossEntropy, batch) -> None:
    ab, logits, _ = batch
    assert type(b) is RebalancedSoftCrossEntropy
    assert (b.class_weights, b.neighbours, b.sigma, b.gray_chroma, b.name) == \
        (a.class_weights, a.neighbours, a.sigma, a.gray_chroma, a.name)
    assert float(a(ab, logits)) == float(b(ab, logits))


@pytest.fixture(scope="module")
def custom_loss(batch):
    return RebalancedSoftCrossEntropy(batch[2], neighbours=7, sigma=4.0, gray_chroma=3.0)


def test_loss_round_trips_through_keras_serialization(custom_loss, batch):
    config = keras.saving.serialize_keras_object(custom_loss)
    json.dumps(config)  # the serialised form is plain JSON
    _same_loss(custom_loss, keras.saving.deserialize_keras_object(config), batch)
    _same_loss(custom_loss, keras.saving.deserialize_keras_object(config, custom_objects=custom_objects()), batch)


@pytest.mark.parametrize("pickler", [pickle, cloudpickle], ids=["pickle", "cloudpickle"])
def test_loss_round_trips_through_pickle(custom_loss, batch, pickler):
    _same_loss(custom_loss, pickler.loads(pickler.dumps(custom_loss)), batch)


def test_compiled_model_round_trips_through_json(tiny_model, custom_loss, batch):
    model = keras.models.clone_model(tiny_model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=custom_loss)
    restored = keras.models.model_from_json(model.to_json(), custom_objects=custom_objects())
    assert [layer.name for layer in restored.layers] == [layer.name for layer in model.layers]
    restored.set_weights(model.get_weights())
    x = np.random.default_rng(1).uniform(0, 255, size=(1, 64, 64, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(restored.predict_on_batch(x)), np.asarray(model.predict_on_batch(x)),
                               atol=1e-6)
    assert isinstance(restored.loss, RebalancedSoftCrossEntropy)
    _same_loss(custom_loss, restored.loss, batch)


def test_custom_objects_names_the_loss():
    objects = custom_objects()
    assert objects["RebalancedSoftCrossEntropy"] is RebalancedSoftCrossEntropy
    assert objects["colorspark>RebalancedSoftCrossEntropy"] is RebalancedSoftCrossEntropy
    assert keras.saving.get_registered_object("colorspark>RebalancedSoftCrossEntropy") is RebalancedSoftCrossEntropy


def test_scaled_learning_rate_grows_with_the_workers():
    from colorspark.training import scaled_learning_rate

    assert [scaled_learning_rate(1e-3, rule, 16) for rule in ("none", "sqrt", "linear")] == \
        pytest.approx([1e-3, 4e-3, 1.6e-2])


def test_round_learning_rate_follows_the_schedule():
    from colorspark.training import COSINE_FLOOR, round_learning_rate

    assert [round_learning_rate(1e-3, "constant", r, 5) for r in (1, 3, 5)] == [1e-3] * 3
    cosine = [round_learning_rate(1e-3, "cosine", r, 5) for r in range(1, 6)]
    assert cosine[0] == pytest.approx(1e-3)
    assert cosine[2] == pytest.approx(1e-3 * (1 + COSINE_FLOOR) / 2)  # half way: the mean of start and floor
    assert cosine[-1] == pytest.approx(1e-3 * COSINE_FLOOR)
    assert all(a > b for a, b in zip(cosine, cosine[1:]))
    assert round_learning_rate(1e-3, "cosine", 1, 1) == 1e-3


UNWEIGHTED_LOSS = {"class_weights": [1.0] * Q, "neighbours": 10, "sigma": 5.0, "gray_chroma": 5.0}


def _new_network(config: dict) -> dict:
    """`training.starting_point` of a run with neither a checkpoint nor --init-model."""
    return {"checkpoint": None, "initial": None, "settings": model_settings(config), "record": {}}


def test_a_new_network_starts_from_the_seeded_weights(tmp_path):
    """train.seed fixes the initial weights, so runs that differ only in how they train start from the same point."""
    from colorspark.training import start_or_resume

    config = copy.deepcopy(_config("tiny"))
    starts = []
    for seed in (1, 1, 2):
        config["train"]["seed"] = seed
        model, history, buffer = start_or_resume(str(tmp_path), _new_network(config), UNWEIGHTED_LOSS, config)
        starts.append(model.get_weights()[0])
        assert history == [] and buffer is None and model.optimizer.iterations.numpy() == 0
    np.testing.assert_array_equal(starts[0], starts[1])
    assert not np.array_equal(starts[0], starts[2])


def test_weight_decay_shrinks_every_weight_besides_the_adam_step(tmp_path):
    """train.weight_decay makes the optimizer AdamW: one step lands exactly rate × decay × w below Adam's step from
    the same weights and batch, and its state has Adam's layout, so averaging and checkpoints carry it unchanged."""
    from colorspark.averaging_worker import optimizer_state, spec_key
    from colorspark.training import start_or_resume

    config = copy.deepcopy(_config("tiny"))
    config["train"]["learning_rate"] = 1e-2
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 255, size=(2, 64, 64, 1)).astype(np.float32)
    y = rng.integers(-60, 60, size=(2, 16, 16, 2)).astype(np.int8)
    stepped = {}
    for decay in (0.0, 0.5):
        config["train"]["weight_decay"] = decay
        model, _, _ = start_or_resume(str(tmp_path), _new_network(config), UNWEIGHTED_LOSS, config)
        start = model.get_weights()[0]
        model.train_on_batch(x, y)
        stepped[decay] = (model, start, model.get_weights()[0])
    (adam, start, plain), (adamw, same_start, decayed) = stepped[0.0], stepped[0.5]
    assert type(adam.optimizer) is keras.optimizers.Adam and type(adamw.optimizer) is keras.optimizers.AdamW
    np.testing.assert_array_equal(start, same_start)
    np.testing.assert_allclose(plain - decayed, start * 1e-2 * 0.5, atol=1e-6)
    assert [s.shape for s in optimizer_state(adamw.optimizer)] == [s.shape for s in optimizer_state(adam.optimizer)]
    keys = {spec_key(m.to_json(), keras.optimizers.serialize(m.optimizer), m.loss) for m in (adam, adamw)}
    assert len(keys) == 2  # a worker's kept Adam model is not reused for AdamW
