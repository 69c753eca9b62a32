"""The shared colorizing stream (job and DataFrame API): order, accounting, failures, and the pure image steps."""

from __future__ import annotations

import io

import numpy as np
import pytest
from imagefactory import colour_photo
from PIL import Image

from colorspark import colorizer, config
from colorspark.bins import gamut_centres
from colorspark.colorizer import (
    Colorized,
    Failed,
    Rendering,
    colorize_stream,
    guided_ab,
    model_input,
    recombine,
    upsample_ab,
)
from colorspark.guided import area_weights

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


def test_a_colour_input_whose_truth_is_not_asked_for_skips_its_ab_and_renders_the_same():
    """`truth_of` False (a video frame nobody scores): no Lab of the input, the same colorized image within the
    1e-4 L of rgb_to_l against rgb_to_lab, and a gray baseline that is still gray."""
    model = OneBinModel(150)
    photo = colour_photo(40, 24, seed=3)
    rendering = Rendering.from_config(CONFIG, META)
    (_, scored), (_, unscored) = colorize_stream([(True, photo), (False, photo)], lambda: model, rendering,
                                                 truth_of=bool)
    assert scored.ab_true is not None and unscored.ab_true is None
    assert scored.coloured and unscored.coloured
    np.testing.assert_allclose(unscored.lab, scored.lab, atol=1e-3)
    assert np.abs(unscored.rgb.astype(int) - scored.rgb).max() <= 1
    np.testing.assert_array_equal(unscored.gray_rgb(), scored.gray_rgb())
    gray = unscored.gray_rgb().astype(int)
    assert np.abs(gray - gray[..., :1]).max() <= 1 and np.abs(gray - photo).max() > 10


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
    assert model_input(np.full((30, 50), 40.0, np.float32), (16, 32)).shape == (16, 32)


def test_rendering_size_must_suit_the_network():
    assert Rendering.from_config(CONFIG, META, input_size=96, temperature=0.5).input_size == 96
    with pytest.raises(ValueError, match="multiple of 8"):
        Rendering.from_config(CONFIG, META, input_size=60)


def test_temperature_is_the_models_unless_the_config_or_the_caller_sets_one():
    assert Rendering.from_config(CONFIG, META).temperature == 0.38
    unset = {**CONFIG, "colorize": {"batch_size": 2, "temperature": 0.0}}
    assert Rendering.from_config(unset, META).temperature == 0.38
    configured = {**CONFIG, "colorize": {"batch_size": 2, "temperature": 0.8}}
    assert Rendering.from_config(configured, META).temperature == 0.8
    assert Rendering.from_config(configured, META, temperature=0.5).temperature == 0.5


def test_keep_aspect_shapes_follow_the_photo_at_the_squares_area():
    square = Rendering.from_config(CONFIG, {**META, "input_size": 64})
    assert square.network_shape(300, 400) == (64, 64)
    aspect = Rendering.from_config(CONFIG, {**META, "input_size": 64}, keep_aspect=True)
    assert aspect.network_shape(300, 400) == (56, 72)    # 4:3 -> 55.4 × 73.9, to the stride
    assert aspect.network_shape(400, 300) == (72, 56)
    assert aspect.network_shape(1080, 1920) == (48, 88)  # 16:9 -> 48.0 × 85.3
    assert aspect.network_shape(60, 4000) == (8, 520)    # a panorama costs about one square, not 66
    assert aspect.network_shape(64, 64) == (64, 64)
    rng = np.random.default_rng(4)
    for height, width in rng.integers(100, 5000, (200, 2)):
        rows, columns = aspect.network_shape(int(height), int(width))
        assert rows % 8 == 0 and columns % 8 == 0
        if max(height, width) <= 2 * min(height, width):  # the photos most cameras take: about a square's pixels
            assert 0.85 < rows * columns / 64 ** 2 < 1.2
            assert abs(rows / columns - height / width) < 0.15 * height / width


def test_keep_aspect_batches_by_shape_and_keeps_the_input_order():
    model = OneBinModel(100)
    rendering = Rendering.from_config({**CONFIG, "colorize": {"batch_size": 2}}, META, keep_aspect=True)
    sizes = [(40, 24), (24, 40), (40, 24), (16, 16), (24, 40), (80, 20), (40, 24)]
    items = [(i, _png(_gray(w, h, seed=i))) for i, (w, h) in enumerate(sizes)]
    out = list(colorize_stream(items, lambda: model, rendering))
    assert [key for key, _ in out] == list(range(len(sizes)))
    assert [(o.width, o.height) for _, o in out] == sizes
    assert sorted(model.batches) == sorted([(2, 16, 24, 1), (2, 24, 16, 1), (1, 16, 24, 1), (1, 16, 16, 1),
                                            (1, 8, 32, 1)])


def test_a_single_channel_gray_file_colorizes_as_the_same_gray_stored_as_rgb():
    model = OneBinModel(150)
    rendering = Rendering.from_config(CONFIG, META, keep_aspect=True)
    gray = _gray(45, 31, seed=9)
    single = io.BytesIO()
    Image.fromarray(gray[..., 0], mode="L").save(single, format="PNG")
    (_, as_l), (_, as_rgb) = colorize_stream([("L", single.getvalue()), ("RGB", _png(gray))], lambda: model,
                                             rendering)
    assert as_l.pixels.shape == (31, 45) and as_rgb.pixels.shape == (31, 45, 3)
    np.testing.assert_array_equal(as_l.rgb_in, as_rgb.rgb_in)
    np.testing.assert_array_equal(as_l.lab, as_rgb.lab)
    np.testing.assert_array_equal(as_l.rgb, as_rgb.rgb)
    assert as_l.ab_true is None and np.array_equal(as_l.gray_rgb(), gray)
    np.testing.assert_array_equal(as_l.gray_values(), gray[..., 0])
    np.testing.assert_array_equal(as_rgb.gray_values(), gray[..., 0])


def test_photos_of_several_shapes_fill_their_batches_within_the_memory_budget():
    model = OneBinModel(100)
    rendering = Rendering.from_config({**CONFIG, "colorize": {"batch_size": 4}}, META, keep_aspect=True)
    sizes = [(40, 24), (24, 40), (16, 16)] * 4  # three shapes, interleaved: 12 images, 9 waiting at one point
    items = [(i, _png(_gray(w, h, seed=i))) for i, (w, h) in enumerate(sizes)]
    out = list(colorize_stream(items, lambda: model, rendering))
    assert [key for key, _ in out] == list(range(len(sizes)))
    assert sorted(model.batches) == sorted([(4, 16, 24, 1), (4, 24, 16, 1), (4, 16, 16, 1)])


def test_a_budget_of_the_decoded_images_alone_fills_every_batch(monkeypatch):
    """Predicted images wait for their release as decoded pixels and L; their Lab, RGB and JPEG (three times those
    bytes) are made only when they are released, so they do not crowd the batches still filling out of the budget."""
    model = OneBinModel(100)
    rendering = Rendering.from_config({**CONFIG, "colorize": {"batch_size": 4}}, META, keep_aspect=True)
    sizes = [(40, 24), (24, 40), (16, 16)] * 4
    items = [(i, _png(_gray(w, h, seed=i))) for i, (w, h) in enumerate(sizes)]
    decoded = sum(colorizer._prepare(data, rendering).nbytes for _, data in items)
    monkeypatch.setattr(colorizer, "HELD_BYTES", decoded)
    out = list(colorize_stream(items, lambda: model, rendering))
    assert [key for key, _ in out] == list(range(len(sizes)))
    assert all(isinstance(outcome, Colorized) for _, outcome in out)
    assert sorted(model.batches) == sorted([(4, 16, 24, 1), (4, 24, 16, 1), (4, 16, 16, 1)])


def test_a_failed_batch_gives_back_its_share_of_the_budget(monkeypatch):
    rendering = Rendering.from_config({**CONFIG, "colorize": {"batch_size": 2}}, META, keep_aspect=True)
    items = [(i, _png(_gray(40, 24, seed=i))) for i in range(6)]
    one = colorizer._prepare(items[0][1], rendering).nbytes
    monkeypatch.setattr(colorizer, "HELD_BYTES", 3 * one)

    class Broken:
        def __init__(self):
            self.batches = []

        def predict_on_batch(self, x):
            self.batches.append(x.shape)
            raise MemoryError("out of memory")

    model = Broken()
    out = list(colorize_stream(items, lambda: model, rendering))
    assert [outcome.error for _, outcome in out] == ["prediction failed: MemoryError: out of memory"] * 6
    assert [shape[0] for shape in model.batches] == [2, 2, 2]  # no batch ran early for a budget never given back


def test_over_the_memory_budget_the_oldest_waiting_image_runs_first(monkeypatch):
    model = OneBinModel(100)
    rendering = Rendering.from_config({**CONFIG, "colorize": {"batch_size": 4}}, META, keep_aspect=True)
    sizes = [(24, 40)] + [(40, 24)] * 7  # a rare shape first: it must not hold up the others until the end
    items = [(i, _png(_gray(w, h, seed=i))) for i, (w, h) in enumerate(sizes)]
    monkeypatch.setattr(colorizer, "HELD_BYTES", 3 * 40 * 24 * 8)  # about two decoded images
    released_before_the_end = []
    for key, outcome in colorize_stream(items, lambda: model, rendering):
        released_before_the_end.append((key, len(model.batches)))
        assert isinstance(outcome, Colorized)
    assert [key for key, _ in released_before_the_end] == list(range(len(sizes)))
    assert model.batches[0] == (1, 24, 16, 1)  # the rare image ran alone, as soon as the budget was exceeded
    assert released_before_the_end[0][1] < len(model.batches)  # and came out before the last batch ran


# --- edge-aware upsampling (colorize.upsample = "guided") -------------------------------------------------------------

def _step_photo(height=60, width=90, edge=37, dark=25.0, bright=75.0):
    """L with one sharp vertical edge that does not fall on a cell boundary, and the two colours it separates."""
    l_full = np.where(np.arange(width)[None, :] < edge, dark, bright).repeat(height, axis=0).astype(np.float32)
    truth = np.zeros((height, width, 2), np.float32)
    truth[:, :edge] = (45.0, 30.0)
    truth[:, edge:] = (-20.0, -35.0)
    return l_full, truth


def _cells(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Each cell's mean of an H×W×C image on a rows×cols grid (what a perfect coarse prediction would hold)."""
    row_w, col_w = area_weights(image.shape[0], rows), area_weights(image.shape[1], cols)
    return np.stack([row_w @ image[..., c] @ col_w.T for c in range(image.shape[2])], axis=-1)


def test_bilinear_stays_exactly_what_it_was():
    rng = np.random.default_rng(5)
    l_full = rng.uniform(0, 100, (33, 47)).astype(np.float32)
    ab_small = rng.uniform(-80, 80, (8, 12, 2)).astype(np.float32)
    lab = recombine(l_full, ab_small)
    np.testing.assert_array_equal(lab[..., 1:], upsample_ab(ab_small, 47, 33))
    np.testing.assert_array_equal(recombine(l_full, ab_small, upsample="bilinear"), lab)
    assert Rendering.from_config(CONFIG, META).upsample == "bilinear"
    assert config.defaults()["colorize"]["upsample"] == "bilinear"


def test_guided_keeps_colour_on_its_side_of_a_sharp_edge():
    l_full, truth = _step_photo()
    ab_small = _cells(truth, 6, 9)  # cells of 10×10 px; the edge crosses the fourth column of cells
    bilinear = recombine(l_full, ab_small)[..., 1:]
    guided = recombine(l_full, ab_small, upsample="guided", radius=1, eps=5e-3)[..., 1:]
    bilinear_error, guided_error = (np.abs(x - truth).mean() for x in (bilinear, guided))
    assert guided_error < 0.4 * bilinear_error
    # colour that crossed the edge: bilinear carries it for a cell on either side, guided hardly at all
    beside = np.r_[30:37, 37:44]
    bilinear_bleed, guided_bleed = (np.abs(x[:, beside] - truth[:, beside]) for x in (bilinear, guided))
    assert bilinear_bleed.max() > 20 and guided_bleed.mean() < 0.4 * bilinear_bleed.mean()


def test_guided_is_bilinear_where_the_lightness_is_flat_and_never_leaves_the_predicted_range():
    rng = np.random.default_rng(6)
    ab_small = rng.uniform(-60, 60, (6, 8, 2)).astype(np.float32)
    flat = np.full((30, 41), 55.0, np.float32)
    np.testing.assert_allclose(recombine(flat, ab_small, upsample="guided"), recombine(flat, ab_small), atol=1e-4)
    busy = rng.uniform(0, 100, (30, 41)).astype(np.float32)  # lightness unrelated to the cells: the fit extrapolates
    guided = guided_ab(busy, ab_small, 1, 1e-4)
    assert (guided >= ab_small.min(axis=(0, 1)) - 1e-4).all() and (guided <= ab_small.max(axis=(0, 1)) + 1e-4).all()
    assert guided.shape == (30, 41, 2) and guided.dtype == np.float32


class LightnessModel(OneBinModel):
    """Paints each output cell by the lightness the network sees there: one bin for bright cells, another for dark."""

    def __init__(self, bright_bin: int, dark_bin: int):
        super().__init__(bright_bin)
        self.dark_bin = dark_bin

    def predict_on_batch(self, x):
        n, h, w = x.shape[:3]
        cells = x[..., 0].reshape(n, h // 4, 4, w // 4, 4).mean(axis=(2, 4))
        logits = np.full((n, h // 4, w // 4, 313), -50.0, dtype=np.float32)
        logits[cells >= 127.5, self.bin_index] = 50.0
        logits[cells < 127.5, self.dark_bin] = 50.0
        return logits


def test_the_guided_option_reaches_the_colorized_image_and_bleeds_less():
    centres = gamut_centres()
    bright_bin = int(np.argmin(np.linalg.norm(centres - (-20, -30), axis=1)))
    dark_bin = int(np.argmin(np.linalg.norm(centres - (40, 30), axis=1)))
    rgb = np.full((96, 150, 3), 40, np.uint8)
    rgb[:, 67:] = 200  # a sharp edge inside a cell of the 6×10-cell output (cells of 15-16 px): the model paints it
    # all in one colour, so the colour still misses the edge by part of a cell, but far less than bilinear's ramp
    model = LightnessModel(bright_bin, dark_bin)
    outcomes = {}
    for upsample in ("bilinear", "guided"):
        settings = {**CONFIG, "colorize": {"batch_size": 2, "upsample": upsample, "guided_radius": 1,
                                           "guided_eps": 0.005}}
        rendering = Rendering.from_config(settings, META, input_size=32, keep_aspect=True)
        assert rendering.upsample == upsample
        [(_, outcomes[upsample])] = colorize_stream([("edge", _png(rgb))], lambda: model, rendering)
    ideal = np.where((np.arange(150) < 67)[None, :, None], centres[dark_bin], centres[bright_bin])
    errors = {mode: np.abs(out.lab[..., 1:] - ideal).mean() for mode, out in outcomes.items()}
    assert errors["guided"] < 0.6 * errors["bilinear"]
    assert outcomes["guided"].jpeg != outcomes["bilinear"].jpeg
    np.testing.assert_array_equal(outcomes["guided"].lab[..., 0], outcomes["bilinear"].lab[..., 0])


@pytest.mark.parametrize("override, message", [("colorize.upsample=nearest", "one of bilinear, guided"),
                                               ("colorize.guided_radius=0", "> 0"),
                                               ("colorize.guided_radius=1.5", "an integer"),
                                               ("colorize.guided_eps=0", "> 0"),
                                               ("colorize.guided_eps=-0.01", "> 0")])
def test_bad_upsampling_settings_are_config_errors(override, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(overrides=[override])


def test_upsampling_settings_travel_in_the_rendering():
    settings = config.load(overrides=["colorize.upsample=guided", "colorize.guided_radius=2",
                                      "colorize.guided_eps=0.02"])
    rendering = Rendering.from_config(settings, META)
    assert (rendering.upsample, rendering.guided_radius, rendering.guided_eps) == ("guided", 2, 0.02)
    with pytest.raises(ValueError, match="upsample must be one of"):
        Rendering.from_config({**CONFIG, "colorize": {"batch_size": 2, "upsample": "bicubic"}}, META)
    with pytest.raises(ValueError, match="upsample must be one of"):
        recombine(np.zeros((4, 4), np.float32), np.zeros((1, 1, 2), np.float32), upsample="bicubic")
