"""Configuration: defaults, TOML files, command-line overrides, validation.

One schema serves all three jobs, so a dataset, a model and a colorize run made with the same file agree on image
size, bins and limits. Every value is checked against the type of its default and a range rule; an unknown key or a
bad value is a `ConfigError` naming the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .labarrays import ENCODINGS as LAB_ENCODINGS
from .labarrays import FORMATS as LAB_FORMATS

EXTENSIONS = ["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif"]
VIDEO_EXTENSIONS = ["mp4", "m4v", "mov", "mkv", "avi", "webm", "mpg", "mpeg"]
GRAY_CHROMA = 5.0  # ab distance from gray below which a pixel counts as gray: training crops, references


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message names the key."""


def _positive(v):
    return v > 0


def _non_negative(v):
    return v >= 0


def _fraction(v):
    return 0.0 <= v < 1.0


def _share(v):
    return 0.0 <= v <= 1.0


def _unit_open(v):
    return 0.0 < v <= 1.0


def _one_of(*choices):
    rule = lambda v: v in choices  # noqa: E731
    rule.__doc__ = "one of " + ", ".join(map(str, choices))
    rule.choices = choices
    return rule


def _subset_of(*choices):
    rule = lambda v: len(v) > 0 and all(x in choices for x in v)  # noqa: E731
    rule.__doc__ = "a non-empty list drawn from " + ", ".join(map(str, choices))
    return rule


def _drawn_from(*choices):
    rule = lambda v: all(x in choices for x in v) and len(set(v)) == len(v)  # noqa: E731
    rule.__doc__ = "a list drawn from " + ", ".join(map(str, choices)) + " without repeats (or empty)"
    return rule


def _multiple_of_8(v):
    return v >= 16 and v % 8 == 0


def _depth(v):
    return v == [] or (len(v) == 5 and all(type(d) is int and d > 0 for d in v))


_depth.__doc__ = "empty (the preset's) or five positive integers, the convolutions of VGG blocks 1-5"
_positive.__doc__ = "> 0"
_non_negative.__doc__ = ">= 0"
_fraction.__doc__ = "in [0, 1)"
_unit_open.__doc__ = "in (0, 1]"
_share.__doc__ = "in [0, 1]"
_multiple_of_8.__doc__ = "a multiple of 8, at least 16 (the network downsamples by 8)"

# section -> key -> (default, rule). The default fixes the type.
SCHEMA: dict[str, dict[str, tuple[Any, Callable[[Any], bool] | None]]] = {
    "data": {
        "size": (64, _multiple_of_8),
        "crops": (4, _positive),
        "min_crop_scale": (0.6, _unit_open),
        "flip": (True, None),
        "val_fraction": (0.1, _fraction),
        "selection_fraction": (0.1, _fraction),
        "seed": (1, _non_negative),
        "extensions": (EXTENSIONS, lambda v: len(v) > 0),
        "gray_chroma": (GRAY_CHROMA, _non_negative),
        "partitions": (0, _non_negative),
        "balance": ("none", _one_of("none", "folder")),
    },
    "bins": {
        "neighbours": (10, _positive),
        "sigma": (5.0, _positive),
        "prior_sigma": (5.0, _positive),
        "rebalance_lambda": (0.95, _unit_open),
        "temperature": (1.0, _positive),
    },
    "limits": {
        "max_pixels": (100_000_000, _positive),
        "max_bytes": (200_000_000, _positive),
    },
    "output": {
        "formats": (["parquet", "hdf5"], _subset_of("parquet", "hdf5")),
        "lab_format": ("npy", _one_of(*LAB_FORMATS)),
        "lab_encoding": ("lab8", _one_of(*LAB_ENCODINGS)),
        "jpeg_quality": (90, lambda v: 1 <= v <= 100),
        "report_max_images": (500, _non_negative),
        "thumb_size": (160, _positive),
    },
    "train": {
        "preset": ("small", _one_of("tiny", "small", "vgg16")),
        "rounds": (10, _positive),
        "epochs_per_round": (1, _positive),
        "batch_size": (16, _positive),
        "learning_rate": (5e-4, _positive),
        "lr_schedule": ("cosine", _one_of("constant", "cosine")),
        "weight_decay": (0.0, _non_negative),
        "workers": (2, _positive),
        "sync_every": (0, _non_negative),
        "optimizer_state": ("averaged", _one_of("averaged", "reset")),
        "lr_scaling": ("linear", _one_of("none", "sqrt", "linear")),
        "outer_momentum": (0.0, _fraction),
        "warmup_rounds": (0, _non_negative),
        "seed": (1, _non_negative),
        "mode": ("synchronous", _one_of("synchronous", "asynchronous", "hogwild")),
        "source": ("parquet", _one_of("parquet", "hdf5")),
        "port": (4000, lambda v: 1024 <= v <= 65535),
        "max_val_rows": (2000, _positive),
        "freeze_blocks": (0, _non_negative),
    },
    "model": {
        # 0 / empty = take the preset's value
        "base_filters": (0, _non_negative),
        "input_size": (0, lambda v: v == 0 or _multiple_of_8(v)),
        "depth": ([], _depth),
        "dilation": (0, _non_negative),
        "dropout": (0.0, _fraction),
    },
    "colorize": {
        "batch_size": (8, _positive),
        "partitions": (0, _non_negative),
        "render_size": (0, lambda v: v == 0 or _multiple_of_8(v)),
        "temperature": (0.0, _non_negative),
        "keep_aspect": (True, None),
        "upsample": ("bilinear", _one_of("bilinear", "guided")),
        "guided_radius": (1, _positive),
        "guided_eps": (0.005, _positive),
        "reference_strength": (1.5, _non_negative),
        "reference_floor": (1e-4, _positive),
        "reference_warning": (1.0, _non_negative),
        "reference_cast": (1.0, _share),
        "guard_entropy": (0.0, _fraction),
        "guard_cast": (7.0, _non_negative),
    },
    "video": {
        "extensions": (VIDEO_EXTENSIONS, None),
        "segment_seconds": (10.0, _positive),
        "warmup_frames": (24, _non_negative),
        "temporal": ("ema", _one_of("none", "ema", "flow", "blind")),
        "temporal_alpha": (0.2, _unit_open),
        "blind_lambda": (1.0, _non_negative),
        "cut_threshold": (12.0, _positive),
        "flow_preset": ("fast", _one_of("ultrafast", "fast", "medium")),
        "encoder_preset": ("veryfast", _one_of("ultrafast", "superfast", "veryfast", "faster", "fast", "medium",
                                               "slow")),
        "crf": (18, lambda v: 0 <= v <= 51),
        "score_every": (1, _non_negative),
        "flicker": (True, None),
        "strip_frames": (6, _non_negative),
        "frames": ([], _drawn_from("jpeg", "lab")),
    },
    "log": {
        "progress_seconds": (10.0, _non_negative),
    },
}


def choices(section: str, key: str) -> tuple:
    """The values a key with a fixed set of them may take: the one list that the jobs' flags offer too."""
    return SCHEMA[section][key][1].choices


_TYPE_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list"}


def defaults() -> dict[str, dict[str, Any]]:
    return {s: {k: copy.deepcopy(v[0]) for k, v in keys.items()} for s, keys in SCHEMA.items()}


def _check_key(section: str, key: str | None = None) -> None:
    if section not in SCHEMA:
        hint = difflib.get_close_matches(section, SCHEMA, n=1)
        raise ConfigError(f"unknown config section [{section}]" + (f"; did you mean [{hint[0]}]?" if hint else "")
                          + f" (sections: {', '.join(SCHEMA)})")
    if key is not None and key not in SCHEMA[section]:
        hint = difflib.get_close_matches(key, SCHEMA[section], n=1)
        raise ConfigError(f"unknown config key {section}.{key}"
                          + (f"; did you mean {section}.{hint[0]}?" if hint else "")
                          + f" (keys of [{section}]: {', '.join(SCHEMA[section])})")


def _coerce(section: str, key: str, value: Any) -> Any:
    default, rule = SCHEMA[section][key]
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is list and isinstance(value, str):
        value = [x.strip() for x in value.split(",") if x.strip()]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{section}.{key} must be {_TYPE_NAMES[expected]}, got {value!r}")
    if expected is list and default and not all(isinstance(x, type(default[0])) for x in value):
        raise ConfigError(f"{section}.{key} must be a list of {_TYPE_NAMES[type(default[0])]}, got {value!r}")
    if rule is not None and not rule(value):
        raise ConfigError(f"{section}.{key} must be {rule.__doc__}, got {value!r}")
    return value


def merge(config: dict, updates: dict, origin: str) -> dict:
    """Return `config` with a nested {section: {key: value}} mapping applied, each value validated."""
    merged = copy.deepcopy(config)
    for section, values in updates.items():
        _check_key(section)
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table of keys")
        for key, value in values.items():
            _check_key(section, key)
            merged[section][key] = _coerce(section, key, value)
    _check_held_out_shares(merged["data"])
    return merged


def _check_held_out_shares(data: dict) -> None:
    """The validation and selection splits are consecutive shares of one hash range, so together they must leave
    some of it for training."""
    held_out = data["val_fraction"] + data["selection_fraction"]
    if held_out >= 1.0:
        raise ConfigError(f"data.val_fraction + data.selection_fraction must be below 1 (the rest is the training "
                          f"split), got {data['val_fraction']} + {data['selection_fraction']} = {held_out:g}")


def parse_override(text: str) -> dict:
    """Turn 'section.key=value' into {section: {key: value}}; the value is read as TOML, else as a bare string."""
    name, sep, raw = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not key:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. data.size=128")
    _check_key(section, key)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return {section: {key: value}}


def load(path: str | Path | None = None, overrides: list[str] | dict | None = None,
         flags: dict | None = None) -> dict:
    """Defaults, then the TOML file (if any), then overrides ('section.key=value' strings or a nested dict), then a
    job's own command-line flags (a nested dict). Values that only conflict together are checked on the result."""
    from . import fs

    config = defaults()
    if path is not None:
        path = str(path)
        if not fs.is_file(path):
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = tomllib.loads(fs.read_bytes(path).decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        config = merge(config, data, path)
    if isinstance(overrides, dict):
        config = merge(config, overrides, "override")
    else:
        for text in overrides or []:
            config = merge(config, parse_override(text), "override")
    if flags:
        config = merge(config, flags, "command line")
    _check_combinations(config)
    return config


def _check_combinations(config: dict) -> None:
    """Values that are valid alone but not together."""
    from .labarrays import check_combination

    problem = check_combination(config["output"]["lab_encoding"], config["output"]["lab_format"])
    if problem:
        raise ConfigError(problem)
