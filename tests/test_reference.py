"""References as distributions over the bins, and decoding steered by them (no Spark)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from colorspark import reference
from colorspark.bins import annealed_mean, gamut_centres, smooth_prior, soft_encode
from colorspark.colorizer import Rendering, colorize_stream
from colorspark.colorspace import rgb_to_lab
from colorspark.reference import Reference, UnusableReference

RED, BLUE, GRAY = (200, 30, 30), (30, 60, 200), (128, 128, 128)
LIMITS = {"max_pixels": 10_000_000, "max_bytes": 10_000_000}


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def _flat(colour, height=32, width=32) -> np.ndarray:
    return np.full((height, width, 3), colour, np.uint8)


def _encoded(colour) -> np.ndarray:
    """The soft target of one sRGB colour as a 313-vector: what its reference distribution must be."""
    ab = rgb_to_lab(np.asarray([[colour]], np.uint8))[0, :, 1:]
    indices, weights = soft_encode(ab)
    return np.bincount(indices.ravel(), weights.ravel(), minlength=313)


def test_a_one_colour_palette_is_that_colours_soft_target():
    distribution = reference.palette_distribution([RED])
    np.testing.assert_allclose(distribution, _encoded(RED), atol=1e-6)
    assert distribution.sum() == pytest.approx(1.0)


def test_a_palette_weighs_its_colours_equally_and_parses_hex():
    colours = reference.parse_palette("palette:#c81e1e, 1e3cc8")
    assert colours == [RED, BLUE]
    np.testing.assert_allclose(reference.palette_distribution(colours), (_encoded(RED) + _encoded(BLUE)) / 2,
                               atol=1e-6)


@pytest.mark.parametrize("text", ["palette:", "palette:#12345", "palette:red"])
def test_a_malformed_palette_is_a_reference_error(text):
    with pytest.raises(UnusableReference, match="palette"):
        reference.parse_palette(text)


def test_an_image_counts_its_colours_by_area():
    image = np.concatenate([_flat(RED, 24, 32), _flat(BLUE, 8, 32)])
    distribution = reference.images_distribution([image])
    np.testing.assert_allclose(distribution, 0.75 * _encoded(RED) + 0.25 * _encoded(BLUE), atol=1e-5)


def test_near_gray_pixels_count_unless_left_out():
    image = np.concatenate([_flat(RED, 16, 32), _flat(GRAY, 16, 32)])
    np.testing.assert_allclose(reference.images_distribution([image]), 0.5 * _encoded(RED) + 0.5 * _encoded(GRAY),
                               atol=1e-4)
    np.testing.assert_allclose(reference.images_distribution([image], gray_chroma=5.0), _encoded(RED), atol=1e-5)


def test_an_image_needs_one_percent_colourful_pixels():
    image = _flat(GRAY, 100, 100)
    image[:2, :] = RED  # 2 % red
    assert reference.images_distribution([image]) is not None
    assert reference.images_distribution([_flat(GRAY, 100, 100)]) is None


def test_several_images_weigh_the_same_whatever_their_size():
    distribution = reference.images_distribution([_flat(RED, 64, 64), _flat(BLUE, 8, 8)])
    np.testing.assert_allclose(distribution, (_encoded(RED) + _encoded(BLUE)) / 2, atol=1e-5)


def test_a_gray_image_is_refused_and_a_colour_one_accepted():
    with pytest.raises(UnusableReference, match="no colour"):
        reference.from_images("gray.png", [_png(_flat(GRAY))], **LIMITS)
    assert reference.from_images("red.png", [_png(_flat(RED))], **LIMITS).name == "red.png"


def test_an_undecodable_too_large_or_empty_reference_is_refused(tmp_path, monkeypatch):
    with pytest.raises(UnusableReference, match="bad.png"):
        reference.from_images("bad.png", [b"not an image"], **LIMITS)
    (tmp_path / "red.png").write_bytes(_png(_flat(RED)))
    with pytest.raises(UnusableReference, match="max_bytes"):
        reference.load_reference(str(tmp_path / "red.png"), max_pixels=10_000, max_bytes=10)
    with pytest.raises(UnusableReference, match="no such image"):
        reference.load_reference(str(tmp_path / "missing.png"), **LIMITS)
    with pytest.raises(UnusableReference, match="no filesystem here serves"):
        reference.load_reference("foo://bucket/day.jpg", **LIMITS)
    monkeypatch.chdir(tmp_path)  # a folder with an image: an empty string must not take it as the reference
    for empty in ("", " "):
        with pytest.raises(UnusableReference, match="empty string"):
            reference.load_reference(empty, **LIMITS)


def test_a_folder_of_images_is_one_reference(tmp_path):
    (tmp_path / "a.png").write_bytes(_png(_flat(RED)))
    (tmp_path / "b.png").write_bytes(_png(_flat(BLUE)))
    (tmp_path / "notes.txt").write_text("not an image")
    loaded = reference.load_reference(str(tmp_path), **LIMITS)
    np.testing.assert_allclose(loaded.distribution, (_encoded(RED) + _encoded(BLUE)) / 2, atol=1e-5)


def test_the_training_marginal_is_the_smoothed_prior_tilted_by_the_class_weights():
    prior = np.random.default_rng(0).random(313)
    np.testing.assert_allclose(reference.training_marginal(prior, np.ones(313)), smooth_prior(prior))
    weights = np.linspace(1, 2, 313)
    tilted = smooth_prior(prior) * weights
    np.testing.assert_allclose(reference.training_marginal(prior, weights), tilted / tilted.sum())


def test_a_reference_equal_to_the_training_marginal_or_no_strength_changes_nothing():
    marginal = reference.training_marginal(np.random.default_rng(1).random(313), np.ones(313))
    assert np.abs(reference.logit_shift(marginal, marginal, 1.0, 1e-4)).max() < 1e-5
    assert np.abs(reference.logit_shift(reference.palette_distribution([RED]), marginal, 0.0, 1e-4)).max() == 0


def test_steering_pulls_an_undecided_prediction_to_the_references_colour():
    logits = np.zeros((2, 2, 313), np.float32)  # every colour equally likely: decodes to the centres' mean
    red = Reference("red", reference.palette_distribution([RED]))
    shift = reference.logit_shift(red.distribution, np.full(313, 1 / 313), 1.0, 1e-4)
    ab, divergence = reference.steered_decode(logits, 1.0, red, shift, 1e-4)
    red_ab = rgb_to_lab(np.asarray([[RED]], np.uint8))[0, 0, 1:]
    assert np.abs(ab - red_ab).max() < 5
    assert divergence > 1.0  # the model spread its mass over colours the reference lacks
    plain, none = reference.steered_decode(logits, 1.0, None, None, 1e-4)
    np.testing.assert_array_equal(plain, annealed_mean(logits, 1.0))
    assert none is None


def test_the_divergence_is_near_zero_when_the_prediction_is_the_reference():
    distribution = reference.palette_distribution([RED, BLUE])
    probabilities = np.broadcast_to(distribution, (3, 3, 313))
    assert reference.divergence(distribution, probabilities, 1e-4) < 0.05  # the floor's mass alone
    assert reference.divergence(distribution, np.broadcast_to(reference.palette_distribution([GRAY]), (3, 3, 313)),
                                1e-4) > 3


class UndecidedModel:
    """Stands in for a Keras model: all logits 0, so only a reference gives colour."""

    def predict_on_batch(self, x):
        return np.zeros((x.shape[0], x.shape[1] // 4, x.shape[2] // 4, 313), np.float32)


def test_the_stream_steers_each_input_by_its_own_reference_and_says_which():
    config = {"colorize": {"batch_size": 4}, "output": {"jpeg_quality": 90}, "limits": LIMITS}
    rendering = Rendering.from_config(config, {"input_size": 16, "temperature": 1.0})
    references = {0: Reference("red", reference.palette_distribution([RED])),
                  1: Reference("blue", reference.palette_distribution([BLUE])), 2: None}
    gray = _png(_flat(GRAY, 16, 16))
    out = dict(colorize_stream(((key, gray) for key in references), UndecidedModel, rendering, references.get))
    hues = {key: out[key].lab[..., 1:].mean((0, 1)) for key in out}
    assert hues[0][0] > 30 and hues[1][1] < -30 and np.abs(hues[2]).max() < np.abs(hues[0]).max()
    assert [out[key].reference for key in out] == ["red", "blue", None]
    assert out[0].divergence > 0 and out[2].divergence is None


def test_gamut_is_what_the_distributions_index():
    assert reference.palette_distribution([RED]).shape == (len(gamut_centres()),)


def test_the_most_specific_table_entry_wins_then_the_default():
    red, blue, green = (Reference(name, reference.palette_distribution([c])) for name, c in
                        (("red", RED), ("blue", BLUE), ("green", (30, 160, 40))))
    references = reference.ReferenceMap(green, (("street", red), ("street/night/b.jpg", blue)))
    assert references.for_path("street/a.jpg") is red
    assert references.for_path("street/night/a.jpg") is red
    assert references.for_path("street/night/b.jpg") is blue
    assert references.for_path("streetcar/a.jpg") is green  # a prefix is a folder, not a string prefix
    assert reference.ReferenceMap().for_path("a.jpg") is None
    assert [ref.name for ref in references.references()] == ["green", "red", "blue"]


def test_a_references_table_in_csv_or_parquet_resolves_relative_references(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "refs.csv").write_text("path,reference\nstreet/,day.jpg\na.jpg,palette:#ff0000\n")
    pq.write_table(pa.table({"path": ["street"], "reference": ["/data/day.jpg"]}), tmp_path / "refs.parquet")
    pairs = reference.read_reference_table(str(tmp_path / "refs.csv"))
    assert pairs[0][0] == "street" and pairs[0][1].endswith(str(tmp_path / "day.jpg"))
    assert pairs[1] == ("a.jpg", "palette:#ff0000")
    assert reference.read_reference_table(str(tmp_path / "refs.parquet")) == [("street", "/data/day.jpg")]
    (tmp_path / "years.csv").write_text("path,reference\n2019,2019\n")
    pq.write_table(pa.table({"path": [2019], "reference": [2019]}), tmp_path / "years.parquet")
    for table in ("years.csv", "years.parquet"):  # folders named like numbers stay names
        [(path, ref)] = reference.read_reference_table(str(tmp_path / table))
        assert path == "2019" and ref.endswith(str(tmp_path / "2019")), table
    (tmp_path / "bad.csv").write_text("file,colour\na.jpg,x\n")
    with pytest.raises(UnusableReference, match="columns path and reference"):
        reference.read_reference_table(str(tmp_path / "bad.csv"))
    with pytest.raises(UnusableReference, match="cannot be read"):
        reference.read_reference_table(str(tmp_path / "missing.csv"))


def test_each_distinct_reference_of_the_job_is_loaded_once(tmp_path, monkeypatch):
    (tmp_path / "red.png").write_bytes(_png(_flat(RED)))
    (tmp_path / "refs.csv").write_text("path,reference\na,red.png\nb,red.png\nc,palette:#2050e0\n")
    loads = []
    real = reference.load_reference
    monkeypatch.setattr(reference, "load_reference",
                        lambda location, **kw: loads.append(location) or real(location, **kw))
    references = reference.reference_map(str(tmp_path / "red.png"), str(tmp_path / "refs.csv"), **LIMITS)
    assert len(loads) == 3 and len(references.references()) == 2
    assert references.for_path("a/x.png") is references.for_path("b/y.png")


def test_a_task_reads_each_reference_once_and_a_stream_makes_each_shift_once(tmp_path, monkeypatch):
    from colorspark import api_tasks

    (tmp_path / "red.png").write_bytes(_png(_flat(RED)))
    reads, shifts = [], []
    real_load, real_shift = api_tasks.load_reference, Rendering.shift
    monkeypatch.setattr(api_tasks, "load_reference", lambda location, **kw: reads.append(location)
                        or real_load(location, **kw))
    monkeypatch.setattr(Rendering, "shift", lambda self, ref: shifts.append(ref.name) or real_shift(self, ref))
    config = {"colorize": {"batch_size": 2}, "output": {"jpeg_quality": 90}, "limits": LIMITS}
    rendering = Rendering.from_config(config, {"input_size": 16, "temperature": 1.0})
    task = api_tasks.TaskReferences(rendering)
    values = [str(tmp_path / "red.png"), "palette:#1e3cc8", str(tmp_path / "red.png"), "palette:#1e3cc8", None,
              str(tmp_path / "missing.png"), str(tmp_path / "missing.png")]
    steering = [task.get(value) for value in values]
    assert sorted(reads) == sorted({v for v in values if v})  # each distinct value once
    assert steering[0] is steering[2] and steering[5] is steering[6] and isinstance(steering[5], UnusableReference)
    gray = _png(_flat(GRAY, 16, 16))
    out = api_tasks.colorized_columns([gray] * len(values), UndecidedModel, rendering, None, steering)
    assert out["status"] == ["ok"] * 5 + ["error"] * 2 and "no such image" in out["error"][5]
    assert sorted(shifts) == sorted({steering[0].name, steering[1].name})  # 4 steered images, batches of 2


def test_the_dataframe_api_range_checks_its_rendering_arguments():
    from colorspark.api import _rendering
    from colorspark.config import ConfigError

    meta = {"input_size": 16, "temperature": 1.0}
    assert _rendering(meta, None, None, 3, 80, reference_strength=2).reference_strength == 2.0
    with pytest.raises(ConfigError, match="reference_strength"):
        _rendering(meta, None, None, None, None, reference_strength=-1.0)
    with pytest.raises(ConfigError, match="jpeg_quality"):
        _rendering(meta, None, None, None, 101)


def test_a_reference_scene_sets_the_cast_and_a_palette_does_not():
    scene = Reference("scene", reference.palette_distribution([(200, 80, 40)]))
    target = scene.cast_target
    assert target[0] > 20 and target[1] > 20  # an orange scene's mean ab
    assert Reference("p", scene.distribution, scene=False).cast_target is None
    rng = np.random.default_rng(0)
    ab = rng.normal([-10.0, 5.0], 8.0, (6, 5, 2)).astype(np.float32)
    moved = reference.match_cast(ab, target, 1.0)
    np.testing.assert_allclose(moved.reshape(-1, 2).mean(0), target, atol=1e-4)
    np.testing.assert_allclose(moved - moved.reshape(-1, 2).mean(0), ab - ab.reshape(-1, 2).mean(0), atol=1e-4)
    half = reference.match_cast(ab, target, 0.5).reshape(-1, 2).mean(0)
    np.testing.assert_allclose(half, (ab.reshape(-1, 2).mean(0) + target) / 2, atol=1e-4)
    assert reference.match_cast(ab, target, 0.0) is ab


def test_the_job_path_moves_the_cast_to_a_reference_photos_but_not_to_a_palettes():
    """A weak strength steers little, so only the cast matching brings the photo's mean colour all the way."""
    config = {"colorize": {"batch_size": 2, "reference_strength": 0.2}, "output": {"jpeg_quality": 90},
              "limits": LIMITS}
    rendering = Rendering.from_config(config, {"input_size": 16, "temperature": 1.0})
    assert rendering.reference_cast == 1.0  # the default
    photo = reference.from_images("photo", [_png(np.full((32, 32, 3), (40, 90, 200), np.uint8))],
                                  max_pixels=10_000, max_bytes=1 << 20)
    palette = reference.from_palette("palette:#2858c8")
    gray = _png(np.full((32, 32, 3), 128, np.uint8))
    means = {}
    for ref in (photo, palette):
        [(_, out)] = colorize_stream([("g", gray)], UndecidedModel, rendering,
                                     reference_of=lambda key, ref=ref: ref)
        means[ref.name] = out.lab[..., 1:].reshape(-1, 2).mean(0)
    np.testing.assert_allclose(means["photo"], photo.cast_target, atol=1.5)
    assert np.linalg.norm(means["palette:#2858c8"] - photo.cast_target) > 10
