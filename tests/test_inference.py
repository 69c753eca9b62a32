"""colorspark.inference.forward_pass: the one graph that colorize runs for photos of every shape."""

from __future__ import annotations

import tempfile

import numpy as np

from colorspark.inference import forward_pass
from colorspark.model import PRESETS, build_model
from colorspark.runtime import import_tensorflow

import_tensorflow(1)


def test_the_forward_pass_matches_keras_for_each_shape_and_leaves_no_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where AutoGraph would write its converted source
    model = build_model({**PRESETS["tiny"], "input_size": 16, "preset": "tiny"})
    run = forward_pass(model)
    rng = np.random.default_rng(0)
    for shape in [(2, 16, 16, 1), (1, 24, 40, 1), (3, 8, 32, 1)]:
        x = rng.uniform(0, 255, shape).astype(np.float32)
        np.testing.assert_allclose(run(x), model.predict_on_batch(x), rtol=1e-5, atol=1e-5)
    assert forward_pass(model) is run  # cached per model: traced once, not per call
    assert list(tmp_path.iterdir()) == []
