"""Balanced training data (`data.balance = "folder"`): each top-level folder below the input contributes about
equally to every round's samples, whatever its photo count.

An archive is often a large collection of one kind of picture beside small ones of others (here 651 pictures from
educational software and 320 photos, mostly food, beside 122 outdoor scenes). Trained on the crops as they come, the
network learns the large folder's colours and paints them on everything. Balancing gives each folder's training
photos more or fewer random crops, so every folder has about the same number of training crops: a small folder's
photos are seen from more crops (new random squares and flips, not repeats of the same ones), a large folder's from
fewer, and the total stays about what `data.crops` per photo gives. It is decided once, on the driver, from the
listing: the splits (a hash of each photo's key) do not move, and the held-out splits keep `data.crops` per photo,
so the validation crops keep the data's own mix. A photo directly in the input folder counts as folder ".".
"""

from __future__ import annotations

from collections import Counter

from .splits import TRAIN, split_of

BALANCES = ("none", "folder")


def folder_of(key: str) -> str:
    """The top-level folder of a photo's key (its path relative to the input), "." for a photo directly in it."""
    return key.split("/", 1)[0] if "/" in key else "."


def crops_per_folder(keys: list[str], data: dict) -> dict[str, int]:
    """{folder: crops per training photo}: `data.crops` for every folder unless `data.balance` is "folder"; then
    data.crops × (mean training photos per folder) / (the folder's training photos), rounded, at least 1."""
    train = Counter(folder_of(k) for k in keys
                    if split_of(k, data["val_fraction"], data["selection_fraction"]) == TRAIN)
    if data["balance"] == "none" or not train:
        return {folder: data["crops"] for folder in train}
    mean = sum(train.values()) / len(train)
    return {folder: max(1, round(data["crops"] * mean / count)) for folder, count in sorted(train.items())}
