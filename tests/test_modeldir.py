"""Model directories: verified loading, refusal of tampered or code-carrying models, checkpoint fallback."""

from __future__ import annotations

import json
import logging
import os
import zipfile

import numpy as np
import pytest

from colorspark import modeldir
from colorspark.model import PRESETS, build_model
from colorspark.runtime import import_tensorflow

import_tensorflow()
import keras  # noqa: E402


def _tiny():
    return build_model({**PRESETS["tiny"], "input_size": 16, "preset": "tiny"})


def _meta():
    from colorspark.bins import gamut_centres

    return {"settings": {**PRESETS["tiny"], "input_size": 16}, "centres": gamut_centres().tolist(),
            "prior": [1 / 313] * 313, "temperature": 0.38, "input_size": 16}


@pytest.fixture()
def model_dir(tmp_path):
    target = tmp_path / "model"
    modeldir.write_model_dir(target, _tiny(), _meta(), [{"round": 1, "train_loss": 1.0, "val_loss": 2.0}])
    return target


def test_a_written_model_dir_loads(model_dir):
    model, meta = modeldir.load_model_dir(model_dir)
    assert model.output_shape == (None, 4, 4, 313)
    assert meta["model_sha256"] and meta["format"] == modeldir.FORMAT_VERSION
    assert (model_dir / "history.png").stat().st_size > 0


def test_tampered_weights_are_refused(model_dir):
    path = model_dir / "model.keras"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(modeldir.ModelError, match="SHA-256"):
        modeldir.load_model_dir(model_dir)


def test_a_model_carrying_code_is_refused_even_with_a_matching_hash(model_dir, tmp_path):
    """A Lambda layer would run its pickled bytecode on load; safe mode refuses it."""
    marker = str(tmp_path / "pwned")
    inputs = keras.Input((16, 16, 1))
    outputs = keras.layers.Lambda(lambda x: (open(marker, "w").close(), x)[1])(inputs)
    evil = keras.Model(inputs, outputs)
    evil.save(tmp_path / "evil.keras")
    os.unlink(marker)  # building the model ran the lambda once; loading must not run it again
    (model_dir / "model.keras").write_bytes((tmp_path / "evil.keras").read_bytes())
    meta = json.loads((model_dir / "colorspark.json").read_text())
    meta["model_sha256"] = modeldir.file_sha256(model_dir / "model.keras")
    (model_dir / "colorspark.json").write_text(json.dumps(meta))
    with pytest.raises(modeldir.ModelError, match="not a loadable colorspark model"):
        modeldir.load_model_dir(model_dir)
    assert not os.path.exists(marker)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 not really a zip", b"\x80\x04pickle"])
def test_garbage_model_files_are_refused(model_dir, content):
    (model_dir / "model.keras").write_bytes(content)
    meta = json.loads((model_dir / "colorspark.json").read_text())
    meta["model_sha256"] = modeldir.file_sha256(model_dir / "model.keras")
    (model_dir / "colorspark.json").write_text(json.dumps(meta))
    with pytest.raises(modeldir.ModelError):
        modeldir.load_model_dir(model_dir)


def test_missing_or_broken_description_is_refused(model_dir, tmp_path):
    with pytest.raises(modeldir.ModelError, match="not a colorspark model directory"):
        modeldir.load_model_dir(tmp_path)
    (model_dir / "colorspark.json").write_text("{not json")
    with pytest.raises(modeldir.ModelError, match="not valid JSON"):
        modeldir.load_model_dir(model_dir)
    (model_dir / "colorspark.json").write_text(json.dumps({"format": 1}))
    with pytest.raises(modeldir.ModelError, match="lacks"):
        modeldir.load_model_dir(model_dir)


def test_checkpoints_fall_back_past_corrupt_ones(tmp_path, caplog):
    model = _tiny()
    for number in (1, 2, 3):
        modeldir.write_checkpoint(tmp_path, number, model, {"history": [{"round": r} for r in range(1, number + 1)]})
    (tmp_path / "checkpoints" / "round-0003" / "state.json").write_text("{trunc")
    keras_file = tmp_path / "checkpoints" / "round-0002" / "model.keras"
    keras_file.write_bytes(keras_file.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="colorspark.model"):
        number, loaded, state, optimizer, momentum = modeldir.latest_checkpoint(tmp_path)
    assert number == 1 and [h["round"] for h in state["history"]] == [1] and optimizer is None and momentum is None
    assert "round-0003 is unusable" in caplog.text and "round-0002 is unusable" in caplog.text
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])
    assert zipfile.is_zipfile(tmp_path / "checkpoints" / "round-0001" / "model.keras")  # round 1 was left alone


def test_checkpoint_keeps_the_optimizer_state_and_refuses_a_changed_one(tmp_path, caplog):
    model = _tiny()
    state = [np.array(7, np.int64), np.arange(6, dtype=np.float32).reshape(2, 3)]
    modeldir.write_checkpoint(tmp_path, 1, model, {"history": [{"round": 1}]}, state)
    modeldir.write_checkpoint(tmp_path, 2, model, {"history": [{"round": 1}, {"round": 2}]}, state)
    number, _, _, restored, _ = modeldir.latest_checkpoint(tmp_path)
    assert number == 2 and len(restored) == 2 and restored[0].dtype == np.int64
    np.testing.assert_array_equal(restored[1], state[1])
    stored = tmp_path / "checkpoints" / "round-0002" / "optimizer.npz"
    stored.write_bytes(stored.read_bytes()[:-1] + b"x")
    with caplog.at_level(logging.WARNING, logger="colorspark.model"):
        number, _, _, _, _ = modeldir.latest_checkpoint(tmp_path)
    assert number == 1 and "round-0002 is unusable" in caplog.text and "SHA-256" in caplog.text


def test_checkpoint_keeps_the_momentum_buffer_under_the_same_hash_check(tmp_path, caplog):
    """The outer-momentum buffer round-trips exactly next to the optimizer state; a changed file makes the checkpoint
    unusable like a changed model; a checkpoint written without one (momentum off, or older) gives None."""
    model = _tiny()
    buffer = [np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2), np.float32([1e-7, -3.5])]
    optimizer = [np.array(3, np.int64)]
    modeldir.write_checkpoint(tmp_path, 1, model, {"history": [{"round": 1}]}, optimizer)
    modeldir.write_checkpoint(tmp_path, 2, model, {"history": [{"round": 1}, {"round": 2}]}, optimizer, buffer)
    number, _, state, restored_optimizer, restored = modeldir.latest_checkpoint(tmp_path)
    assert number == 2 and state["momentum_sha256"] and len(restored) == 2 and int(restored_optimizer[0]) == 3
    for mine, saved in zip(restored, buffer):
        assert mine.dtype == saved.dtype
        np.testing.assert_array_equal(mine, saved)
    stored = tmp_path / "checkpoints" / "round-0002" / "momentum.npz"
    stored.write_bytes(stored.read_bytes()[:-1] + b"x")
    with caplog.at_level(logging.WARNING, logger="colorspark.model"):
        number, _, _, _, restored = modeldir.latest_checkpoint(tmp_path)
    assert number == 1 and restored is None
    assert "round-0002 is unusable" in caplog.text and "momentum.npz does not match the SHA-256" in caplog.text


def test_no_checkpoint_means_none(tmp_path):
    assert modeldir.latest_checkpoint(tmp_path) is None


@pytest.mark.parametrize("validated", [True, False])
def test_history_plot_is_a_png_without_warnings(tmp_path, validated, recwarn):
    history = [{"round": r, "train_loss": 4.0 - r / 10} for r in (1, 2)]
    if validated:
        history = [{**h, "val_loss": 4.1, "val_auc_rebal": 0.8, "val_auc_rebal_gray": 0.79, "val_psnr": 22.0,
                    "val_psnr_gray": 21.7} for h in history]
    modeldir.plot_history(history, str(tmp_path / "history.png"))
    assert (tmp_path / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [str(w.message) for w in recwarn] == []
