"""The shared colorizing stream (job and DataFrame API): order, accounting, failures, and the pure image steps."""

from __future__ import annotations

import io

import numpy as np
import pytest
from imagefactory import colour_photo
from PIL import Image

from colorspark.bins import gamut_centres
from colorspark.colorizer import Colorized, Failed, Rendering, colorize_stream, model_input, recombine, upsample_ab

CONFIG = {"colorize": {"batch_size": 2}, "output": {"jpeg_quality": 90},
          "limits": {"max_pixels": 10_000_000, "max_bytes": 10_000_000}}
META = {"input_size": 16, "temperature": 0.38}


class OneBinModel:
    """Stands in for a Keras model: every pixel is sure of one ab bin, so the colorized ab is that bin's centre."""

    def __init__(self, bin_index: int):
        self.bin_index, self.batches = bin_index, []

    def predict_on_batch(self, x):
        self.batches.append(x.shape)
        logits = np.full((x.shape[0], x.shape[1] // 4, x.shape[2] // 4, 313), -50.0, dtype=np.float32)
        logits[..., self.bin_index] = 50.0
        return logits


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _gray(width=40, height=24, seed=0) -> np.ndarray:
    values = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    return np.repeat(values[..., None], 3, axis=-1)


def test_every_input_comes_out_once_in_order_with_its_reason():
    model = OneBinModel(200)
    rendering = Rendering.from_config(CONFIG, META)
    items = [("gray", _png(_gray())), ("null", None), ("empty", b""), ("colour", _png(colour_photo(33, 21, seed=1))),
             ("corrupt", b"\x89PNG not really"), ("unread", Failed("could not read the file: gone")),
             ("gray2", _png(_gray(17, 50, seed=2))), ("gray3", _png(_gray(8, 8, seed=3)))]
    out = list(colorize_stream(items, lambda: model, rendering))
    assert [key for key, _ in out] == [key for key, _ in items]
    outcome = dict(out)
    assert outcome["null"].error == "no image bytes (null)"
    assert "empty" in outcome["empty"].error
    assert isinstance(outcome["corrupt"], Failed) and outcome["unread"].error == "could not read the file: gone"
    for key, (width, height) in {"gray": (40, 24), "colour": (33, 21), "gray2": (17, 50), "gray3": (8, 8)}.items():
        image = outcome[key]
        assert isinstance(image, Colorized) and (image.width, image.height) == (width, height)
        np.testing.assert_allclose(image.lab[..., 1:], np.broadcast_to(gamut_centres()[200], image.lab[..., 1:].shape),
                                   atol=1e-3)
        assert Image.open(io.BytesIO(image.jpeg)).size == (width, height)
    assert outcome["colour"].ab_true is not None and outcome["gray"].ab_true is None
    assert [shape[0] for shape in model.batches] == [2, 2]  # batches of batch_size decoded images
    assert model.batches[0][1:] == (16, 16, 1)


def test_no_model_is_loaded_for_a_partition_of_bad_files():
    def never():
        raise AssertionError("the model was loaded")

    out = list(colorize_stream([("a", None), ("b", b"xx")], never, Rendering.from_config(CONFIG, META)))
    assert [type(o) for _, o in out] == [Failed, Failed]


def test_a_failed_prediction_fails_its_batch_only():
    class FlakyModel(OneBinModel):
        def predict_on_batch(self, x):
            if not self.batches:
                self.batches.append(x.shape)
                raise MemoryError("out of memory")
            return super().predict_on_batch(x)

    items = [(i, _png(_gray(seed=i))) for i in range(4)]
    model = FlakyModel(10)
    out = dict(colorize_stream(items, lambda: model, Rendering.from_config(CONFIG, META)))
    assert [out[i].error for i in (0, 1)] == ["prediction failed: MemoryError: out of memory"] * 2
    assert all(isinstance(out[i], Colorized) for i in (2, 3))


def test_gray_baseline_of_a_gray_input_is_the_input_itself():
    model = OneBinModel(5)
    image = _gray()
    [(_, out)] = colorize_stream([("g", _png(image))], lambda: model, Rendering.from_config(CONFIG, META))
    np.testing.assert_array_equal(out.gray_rgb(), image)


@pytest.mark.parametrize("small, size", [((16, 16), (400, 330)), ((16, 16), (64, 64)), ((4, 4), (4000, 60)),
                                         ((16, 16), (7, 3)), ((32, 24), (97, 1))])
def test_upsampling_equals_pillows_bilinear_resize(small, size):
    ab_small = np.random.default_rng(0).uniform(-110, 110, (*small, 2)).astype(np.float32)
    width, height = size
    expected = np.stack([np.asarray(Image.fromarray(ab_small[..., c], mode="F").resize((width, height),
                                                                                        Image.BILINEAR))
                         for c in range(2)], axis=-1)
    np.testing.assert_allclose(upsample_ab(ab_small, width, height), expected, atol=2e-3)


def test_recombine_keeps_the_original_lightness_exactly():
    l_full = np.random.default_rng(1).uniform(0, 100, (21, 34)).astype(np.float32)
    lab = recombine(l_full, np.zeros((4, 4, 2), np.float32))
    assert lab.dtype == np.float32 and lab.shape == (21, 34, 3)
    np.testing.assert_array_equal(lab[..., 0], l_full)


def test_model_input_is_the_l_code_at_the_rendering_size():
    x = model_input(np.full((30, 50), 40.0, np.float32), (24, 24))
    assert x.shape == (24, 24)
    np.testing.assert_allclose(x, 40.0 * 2.55, rtol=1e-6)
    ramp = np.tile(np.linspace(0, 100, 50, dtype=np.float32), (30, 1))
    padded = model_input(ramp, (16, 27), (16, 32))
    assert padded.shape == (16, 32)
    np.testing.assert_array_equal(padded[:, 27:], np.repeat(padded[:, 26:27], 5, axis=1))  # the edge, repeated


def test_rendering_size_must_suit_the_network():
    assert Rendering.from_config(CONFIG, META, input_size=96, temperature=0.5).input_size == 96
    with pytest.raises(ValueError, match="multiple of 8"):
        Rendering.from_config(CONFIG, META, input_size=60)


def test_keep_aspect_shapes_follow_the_photo():
    square = Rendering.from_config(CONFIG, {**META, "input_size": 64})
    assert square.network_shape(300, 400) == ((64, 64), (64, 64))
    aspect = Rendering.from_config(CONFIG, {**META, "input_size": 64}, keep_aspect=True)
    assert aspect.network_shape(300, 400) == ((64, 85), (64, 88))
    assert aspect.network_shape(400, 300) == ((85, 64), (88, 64))
    assert aspect.network_shape(60, 4000) == ((64, 4267), (64, 4272))
    assert aspect.network_shape(64, 64) == ((64, 64), (64, 64))


def test_upsampling_of_a_padded_output_uses_only_the_cells_that_show_the_photo():
    ab_small = np.random.default_rng(3).uniform(-110, 110, (16, 22, 2)).astype(np.float32)
    expected = np.stack([np.asarray(Image.fromarray(ab_small[..., c], mode="F").resize(
        (400, 300), Image.BILINEAR, box=(0, 0, 21.25, 16))) for c in range(2)], axis=-1)
    np.testing.assert_allclose(upsample_ab(ab_small, 400, 300, used=(16, 21.25)), expected, atol=2e-3)


def test_keep_aspect_batches_by_shape_and_keeps_the_input_order():
    model = OneBinModel(100)
    rendering = Rendering.from_config({**CONFIG, "colorize": {"batch_size": 2}}, META, keep_aspect=True)
    sizes = [(40, 24), (24, 40), (40, 24), (16, 16), (24, 40), (80, 20), (40, 24)]
    items = [(i, _png(_gray(w, h, seed=i))) for i, (w, h) in enumerate(sizes)]
    out = list(colorize_stream(items, lambda: model, rendering))
    assert [key for key, _ in out] == list(range(len(sizes)))
    assert [(o.width, o.height) for _, o in out] == sizes
    assert sorted(model.batches) == sorted([(2, 16, 32, 1), (2, 32, 16, 1), (1, 16, 32, 1), (1, 16, 16, 1),
                                            (1, 16, 64, 1)])
