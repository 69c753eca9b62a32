"""Blending a fine-tuned model with its start: the weights, the description, and what is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from colorspark import blend, modeldir
from colorspark.model import PRESETS, build_model
from colorspark.runtime import import_tensorflow

import_tensorflow()


def _write(target, settings: dict, seed: int, meta_extra: dict | None = None):
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model({**settings, "preset": "tiny"})
    from colorspark.bins import gamut_centres

    meta = {"settings": settings, "centres": gamut_centres().tolist(), "prior": [1 / 313] * 313,
            "temperature": 0.5, "input_size": settings["input_size"], "rounds_done": seed, **(meta_extra or {})}
    modeldir.write_model_dir(target, model, meta, [{"round": 1}])
    return model.get_weights()


def test_the_blend_is_the_weighted_mean_of_every_array_and_names_both_parents(tmp_path):
    settings = {**PRESETS["tiny"], "input_size": 16}
    start = _write(tmp_path / "start", settings, 1)
    tuned = _write(tmp_path / "tuned", settings, 2, {"temperature": 0.7, "init_model": {"model": "start"}})
    assert blend.main(["--tuned", str(tmp_path / "tuned"), "--start", str(tmp_path / "start"), "--weight", "0.25",
                       "--output", str(tmp_path / "out")]) == 0
    model, meta = modeldir.load_model_dir(tmp_path / "out")  # verified against its own new SHA-256
    for got, a, b in zip(model.get_weights(), tuned, start, strict=True):
        np.testing.assert_allclose(got, 0.25 * a + 0.75 * b, rtol=1e-6, atol=1e-7)
    assert meta["temperature"] == 0.7 and meta["init_model"] == {"model": "start"}
    start_meta = json.loads((tmp_path / "start" / "colorspark.json").read_text())
    assert meta["blend"]["weight"] == 0.25 and meta["blend"]["start"]["sha256"] == start_meta["model_sha256"]
    assert meta["blend"]["tuned"]["rounds_done"] == 2


@pytest.mark.parametrize("weight", ["-0.1", "1.5"])
def test_a_weight_outside_0_to_1_is_a_usage_error(tmp_path, weight, capsys):
    settings = {**PRESETS["tiny"], "input_size": 16}
    _write(tmp_path / "a", settings, 1)
    assert blend.main(["--tuned", str(tmp_path / "a"), "--start", str(tmp_path / "a"), "--weight", weight,
                       "--output", str(tmp_path / "out")]) == 2
    assert "between 0 and 1" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_models_of_different_networks_or_missing_ones_do_not_blend(tmp_path, capsys):
    _write(tmp_path / "a", {**PRESETS["tiny"], "input_size": 16}, 1)
    _write(tmp_path / "b", {**PRESETS["tiny"], "input_size": 24}, 1)
    args = ["--weight", "0.5", "--output", str(tmp_path / "out")]
    assert blend.main(["--tuned", str(tmp_path / "a"), "--start", str(tmp_path / "b"), *args]) == 2
    assert "different networks" in capsys.readouterr().err
    assert blend.main(["--tuned", str(tmp_path / "a"), "--start", str(tmp_path / "nowhere"), *args]) == 2
    assert not (tmp_path / "out").exists()


def test_summaries_say_a_model_is_a_blend_or_fine_tuned():
    from colorspark.colorize import training_note

    assert training_note({"rounds_done": 13}) == "13 rounds"
    assert training_note({"rounds_done": 2, "init_model": {}}) == "2 rounds of fine-tuning"
    assert training_note({"rounds_done": 4, "init_model": {}, "blend": {"weight": 0.5}}) == \
        "4 rounds of fine-tuning, blended 0.5 with its start"
