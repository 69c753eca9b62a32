"""colorspark.config and the shipped conf/colorspark.toml: defaults, files, --set overrides and validation errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from colorspark.config import EXTENSIONS, SCHEMA, ConfigError, defaults, load, merge, parse_override

SHIPPED = Path(__file__).resolve().parents[1] / "conf" / "colorspark.toml"


# --- the shipped file -------------------------------------------------------------------------------------------------


def test_shipped_toml_loads_and_equals_defaults():
    assert load(SHIPPED) == defaults()


def test_shipped_toml_documents_every_key():
    """Every schema key is spelled out in the file (it is the reference users copy), and nothing else is."""
    data = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    assert set(data) == set(SCHEMA)
    for section, keys in SCHEMA.items():
        assert set(data[section]) == set(keys), section
        for key, (default, _) in keys.items():
            assert data[section][key] == default, f"{section}.{key}"


def test_defaults_are_fresh_copies():
    first = defaults()
    first["data"]["extensions"].append("xyz")
    first["data"]["size"] = 1
    assert defaults()["data"]["extensions"] == EXTENSIONS
    assert defaults()["data"]["size"] == 64


def test_load_without_file_is_defaults():
    assert load() == defaults()
    assert load(None, []) == defaults()


# --- overrides --------------------------------------------------------------------------------------------------------


def test_int_override():
    config = load(overrides=["data.size=128"])
    assert config["data"]["size"] == 128 and isinstance(config["data"]["size"], int)
    assert {s: v for s, v in config.items() if s != "data"} == {s: v for s, v in defaults().items() if s != "data"}


def test_toml_list_override():
    assert load(overrides=['output.formats=["parquet"]'])["output"]["formats"] == ["parquet"]


def test_bare_string_override():
    assert load(overrides=["train.mode=hogwild"])["train"]["mode"] == "hogwild"
    assert load(overrides=['train.mode="asynchronous"'])["train"]["mode"] == "asynchronous"


def test_comma_string_becomes_a_list():
    assert load(overrides=["data.extensions=jpg,png"])["data"]["extensions"] == ["jpg", "png"]
    assert load(overrides=["data.extensions= jpg , png ,"])["data"]["extensions"] == ["jpg", "png"]


def test_overrides_apply_in_order_after_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[data]\nsize = 96\ncrops = 2\n", encoding="utf-8")
    config = load(path, ["data.size=128", "data.size=32"])
    assert config["data"]["size"] == 32
    assert config["data"]["crops"] == 2


def test_dict_overrides():
    config = load(overrides={"train": {"rounds": 3, "preset": "tiny"}})
    assert config["train"]["rounds"] == 3 and config["train"]["preset"] == "tiny"


def test_whitespace_around_override_parts():
    assert load(overrides=[" data.size = 128 "])["data"]["size"] == 128


def test_parse_override_shape():
    assert parse_override("bins.temperature=0.5") == {"bins": {"temperature": 0.5}}


# --- coercion ---------------------------------------------------------------------------------------------------------


def test_int_is_coerced_to_float():
    config = load(overrides=["bins.sigma=3", "data.min_crop_scale=1"])
    assert config["bins"]["sigma"] == 3.0 and isinstance(config["bins"]["sigma"], float)
    assert isinstance(config["data"]["min_crop_scale"], float)


def test_int_in_a_file_is_coerced_to_float(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[train]\nlearning_rate = 1\n", encoding="utf-8")
    assert load(path)["train"]["learning_rate"] == 1.0
    assert isinstance(load(path)["train"]["learning_rate"], float)


# --- errors -----------------------------------------------------------------------------------------------------------


def _error(overrides=None, path=None) -> str:
    with pytest.raises(ConfigError) as info:
        load(path, overrides)
    return str(info.value)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_unknown_section():
    message = _error(["dta.size=128"])
    assert "dta" in message and "[data]" in message  # names the section and suggests the right one


def test_unknown_section_in_a_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[trian]\nrounds = 2\n", encoding="utf-8")
    message = _error(path=path)
    assert "trian" in message and "did you mean [train]" in message


def test_unknown_key_with_hint():
    message = _error(["data.sise=128"])
    assert "data.sise" in message and "did you mean data.size" in message


def test_unknown_key_in_a_file_with_hint(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[bins]\nneighbors = 5\n", encoding="utf-8")
    message = _error(path=path)
    assert "bins.neighbors" in message and "did you mean bins.neighbours" in message


@pytest.mark.parametrize("override, key", [
    ('data.size="big"', "data.size"),
    ("data.size=big", "data.size"),
    ("data.size=true", "data.size"),
    ("data.size=64.0", "data.size"),
    ("data.flip=1", "data.flip"),
    ("bins.sigma=true", "bins.sigma"),
    ('train.preset=["tiny"]', "train.preset"),
    ("data.extensions=[1, 2]", "data.extensions"),
    ("model.depth=[2, 2, 3.5, 3, 3]", "model.depth"),
    ('model.depth=["a", "b", "c", "d", "e"]', "model.depth"),
], ids=["string-for-int", "bare-string-for-int", "bool-for-int", "float-for-int", "int-for-bool", "bool-for-float",
        "list-for-string", "ints-for-strings", "float-in-int-list", "strings-in-int-list"])
def test_wrong_type(override, key):
    """model.depth's default is [], so its element type (int) cannot come from the default; it must still be checked:
    a float depth would only fail later inside build_model (range(3.5)), a string one must not escape as TypeError."""
    assert key in _error([override])


@pytest.mark.parametrize("override, key", [
    ("data.size=60", "data.size"),
    ("data.size=8", "data.size"),
    ("data.val_fraction=1.0", "data.val_fraction"),
    ("data.val_fraction=-0.1", "data.val_fraction"),
    ("train.learning_rate=0", "train.learning_rate"),
    ("train.preset=huge", "train.preset"),
    ("output.formats=[]", "output.formats"),
    ('output.formats=["parquet", "csv"]', "output.formats"),
    ('output.lab_format="png"', "output.lab_format"),
    ("output.jpeg_quality=101", "output.jpeg_quality"),
    ("train.port=80", "train.port"),
    ("bins.rebalance_lambda=0", "bins.rebalance_lambda"),
    ("model.depth=[2, 2, 3]", "model.depth"),
    ("model.input_size=100", "model.input_size"),
    ("data.extensions=[]", "data.extensions"),
    ("train.sync_every=-1", "train.sync_every"),
    ("train.optimizer_state=kept", "train.optimizer_state"),
], ids=["size-60", "size-8", "val-1", "val-negative", "lr-0", "preset", "formats-empty", "formats-unknown",
        "lab-png", "jpeg-quality", "port", "lambda-0", "depth-len", "input-size", "extensions-empty", "sync-negative",
        "optimizer-state"])
def test_out_of_range(override, key):
    message = _error([override])
    assert key in message
    assert "must be" in message  # says what is allowed


def test_malformed_override_without_equals():
    message = _error(["data.size"])
    assert "data.size" in message and "section.key=value" in message


def test_malformed_override_without_section():
    assert "size=128" in _error(["size=128"])


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.toml"
    message = _error(path=missing)
    assert str(missing) in message and "does not exist" in message


def test_invalid_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[data]\nsize = = 3\n", encoding="utf-8")
    message = _error(path=path)
    assert str(path) in message and "not valid TOML" in message


def test_section_that_is_not_a_table(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('data = "x"\n', encoding="utf-8")
    assert "[data]" in _error(path=path)


def test_merge_does_not_mutate_its_input():
    base = defaults()
    merged = merge(base, {"data": {"size": 128}}, "test")
    assert base["data"]["size"] == 64 and merged["data"]["size"] == 128


def test_every_default_passes_its_own_rule():
    """The defaults are valid values (a rule that rejected its own default would break every job)."""
    for section, keys in SCHEMA.items():
        for key, (default, rule) in keys.items():
            assert rule is None or rule(default), f"{section}.{key}"


def test_held_out_splits_must_leave_a_training_share(tmp_path):
    """Validation and selection are consecutive shares of one hash range; together they must stay below 1, whether
    they come from --set, a file, or both."""
    message = _error(["data.val_fraction=0.5", "data.selection_fraction=0.5"])
    assert "data.val_fraction + data.selection_fraction must be below 1" in message and "0.5 + 0.5" in message
    path = tmp_path / "held-out.toml"
    path.write_text("[data]\nselection_fraction = 0.3\n", encoding="utf-8")
    assert "data.selection_fraction" in _error(["data.val_fraction=0.7"], path=path)
    config = load(path, ["data.val_fraction=0.6"])
    assert (config["data"]["val_fraction"], config["data"]["selection_fraction"]) == (0.6, 0.3)


@pytest.mark.parametrize("value", ["1.0", "-0.1", "true"])
def test_selection_fraction_is_a_fraction(value):
    assert "data.selection_fraction" in _error([f"data.selection_fraction={value}"])


def test_selection_split_can_be_turned_off():
    assert load(overrides=["data.selection_fraction=0"])["data"]["selection_fraction"] == 0.0


@pytest.mark.parametrize("override, expected", [
    ("train.outer_momentum=1.0", "train.outer_momentum must be in [0, 1), got 1.0"),
    ("train.outer_momentum=-0.5", "train.outer_momentum must be in [0, 1), got -0.5"),
    ("train.outer_momentum=true", "train.outer_momentum must be a number, got True"),
    ("train.warmup_rounds=-1", "train.warmup_rounds must be >= 0, got -1"),
    ("train.warmup_rounds=1.5", "train.warmup_rounds must be an integer, got 1.5"),
])
def test_outer_momentum_and_warmup_are_checked(override, expected):
    assert expected in _error([override])


def test_outer_momentum_and_warmup_default_off_and_accept_valid_values():
    assert (defaults()["train"]["outer_momentum"], defaults()["train"]["warmup_rounds"]) == (0.0, 0)
    config = load(overrides=["train.outer_momentum=0.9", "train.warmup_rounds=3"])
    assert (config["train"]["outer_momentum"], config["train"]["warmup_rounds"]) == (0.9, 3)
    assert load(overrides=["train.outer_momentum=0"])["train"]["outer_momentum"] == 0.0


def test_video_frames_default_off_and_take_the_issues_spelling(tmp_path):
    """video.frames is a list drawn from jpeg and lab; a single name, in a file or on the command line, is that
    one-element list (the issue's `video.frames = "jpeg"`)."""
    assert defaults()["video"]["frames"] == []
    (tmp_path / "c.toml").write_text('[video]\nframes = "jpeg"\n')
    assert load(tmp_path / "c.toml")["video"]["frames"] == ["jpeg"]
    assert load(overrides=["video.frames=jpeg,lab"])["video"]["frames"] == ["jpeg", "lab"]
    assert load(overrides=['video.frames=["lab"]'])["video"]["frames"] == ["lab"]
    assert load(overrides={"video": {"frames": []}})["video"]["frames"] == []


@pytest.mark.parametrize("value", ['["png"]', '["jpeg", "jpeg"]', "[1]", "jpg"])
def test_video_frames_refuse_other_names_and_repeats(value):
    assert "video.frames must be a list drawn from jpeg, lab without repeats" in _error([f"video.frames={value}"])
