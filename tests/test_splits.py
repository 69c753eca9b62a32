"""colorspark.splits: the one place that decides whether a photo is for training, validation or selection."""

from __future__ import annotations

import pytest

from colorspark.splits import SELECTION, SPLITS, TRAIN, VALIDATION, split_of

KEYS = [f"album {i % 7}/photo_{i:05d}.jpg" for i in range(10_000)]


def _split(fractions):
    return {key: split_of(key, *fractions) for key in KEYS}


def test_split_of_is_deterministic_and_names_one_of_the_three_splits():
    first = _split((0.2, 0.2))
    assert first == _split((0.2, 0.2))
    assert set(first.values()) == set(SPLITS) == {TRAIN, VALIDATION, SELECTION}
    assert (TRAIN, VALIDATION) == ("train", "val")  # the names stored datasets and the train job use


def test_split_of_known_keys():
    """Pinned answers: a change to the hash or the ranges would move photos between splits without anyone noticing."""
    assert [split_of(f"held-{i}.png", 0.3, 0.3) for i in (0, 3, 6)] == [SELECTION, TRAIN, VALIDATION]


@pytest.mark.parametrize("fractions", [(0.1, 0.1), (0.25, 0.05), (0.5, 0.3), (0.0, 0.2), (0.2, 0.0)])
def test_split_shares_match_the_fractions(fractions):
    val, selection = fractions
    splits = list(_split(fractions).values())
    assert abs(splits.count(VALIDATION) / len(KEYS) - val) <= 0.02
    assert abs(splits.count(SELECTION) / len(KEYS) - selection) <= 0.02
    assert abs(splits.count(TRAIN) / len(KEYS) - (1 - val - selection)) <= 0.02


def test_zero_fractions_put_everything_in_training():
    assert set(_split((0.0, 0.0)).values()) == {TRAIN}


def test_adding_a_selection_split_takes_photos_from_training_only():
    """The validation split of a dataset made before the selection split existed is the same photos."""
    before, after = _split((0.1, 0.0)), _split((0.1, 0.1))
    assert {k for k, s in before.items() if s == VALIDATION} == {k for k, s in after.items() if s == VALIDATION}
    assert all(before[k] == TRAIN for k, s in after.items() if s == SELECTION)


def test_a_larger_validation_fraction_only_moves_photos_into_validation():
    small, large = _split((0.1, 0.1)), _split((0.2, 0.1))
    val_small = {k for k, s in small.items() if s == VALIDATION}
    val_large = {k for k, s in large.items() if s == VALIDATION}
    assert val_small < val_large
