"""Fine-tuning: the train job starting from a trained model (`train --init-model DIR_OR_URI`) instead of new weights.

This is how a user adapts the shipped model to an archive of their own in minutes: the network keeps what it learned
from thousands of crops and only has to learn what the new photos add. The starting model is taken as it is, so its
architecture and input size come from its `colorspark.json` (the preset and `[model]` values of the config do not
apply), its weights are loaded only if their SHA-256 matches the one recorded there, and the data's crop size must be
the model's input size. The optimizer starts fresh: the Adam moments of the old run describe another data set.
`train.freeze_blocks = N` keeps the first N blocks (conv1..convN, with their batch norms) as they are, so a very small
archive cannot wash out the low-level features learnt from the large one.
"""

from __future__ import annotations

import logging

from . import fs
from .errors import JobError
from .modeldir import MODEL_FILE, load_model_dir, read_meta

log = logging.getLogger("colorspark.train")

SHIPPED = "shipped"  # --init-model's name for the model that comes with colorspark


def init_model_uri(value: str) -> str:
    """The model directory `--init-model` names: a path or URI, or `shipped` for the model colorspark ships."""
    if value == SHIPPED:
        from .shipped import shipped_model_dir

        return fs.to_uri(shipped_model_dir())
    return fs.to_uri(value)


def check_data_size(meta: dict, manifest: dict, init_uri: str, data_dir: str) -> None:
    """The crops must be the size the model was trained at: its input layer is fixed to it."""
    if manifest["size"] != meta["settings"]["input_size"]:
        raise JobError(f"the data in {fs.display(data_dir)} has {manifest['size']} px crops but the model in "
                       f"{fs.display(init_uri)} takes {meta['settings']['input_size']} px inputs: preprocess with "
                       f"--set data.size={meta['settings']['input_size']}")


def load_init_model(init_uri: str, manifest: dict, data_dir: str, freeze_blocks: int):
    """(Keras model with its first `freeze_blocks` blocks frozen, the model's settings, what colorspark.json records
    of the start), after checking the data's crop size against the model's and the model file against its hash."""
    meta = read_meta(init_uri)
    check_data_size(meta, manifest, init_uri, data_dir)
    blocks = [block["name"] for block in meta.get("blocks", [])]
    if freeze_blocks > len(blocks):
        raise JobError(f"train.freeze_blocks = {freeze_blocks}, but the model in {fs.display(init_uri)} has "
                       f"{len(blocks)} blocks")
    model, meta = load_model_dir(init_uri)
    frozen = freeze(model, blocks[:freeze_blocks])
    log.info("starting from %s (%d rounds done, SHA-256 %s…), %d of its layers frozen (blocks %s)",
             fs.display(init_uri), meta.get("rounds_done", 0), meta["model_sha256"][:12], frozen,
             ", ".join(blocks[:freeze_blocks]) or "none")
    return model, meta["settings"], start_record(init_uri, meta, freeze_blocks)


def start_record(init_uri: str, meta: dict, freeze_blocks: int) -> dict:
    """What a fine-tuned model's colorspark.json keeps of the model it started from (`init_model`)."""
    return {"model": fs.display(init_uri), "file": MODEL_FILE, "sha256": meta["model_sha256"],
            "rounds_done": meta.get("rounds_done"), "freeze_blocks": freeze_blocks}


def freeze(model, block_names: list[str]) -> int:
    """Make the layers of the named blocks untrainable (a frozen batch norm also keeps its statistics); returns how
    many layers were frozen. Layers are named `<block>_<i>`, `<block>_up` and `<block>_bn` (`model.build_model`)."""
    prefixes = tuple(f"{name}_" for name in block_names)
    frozen = 0
    for layer in model.layers:
        if prefixes and layer.name.startswith(prefixes):
            layer.trainable = False
            frozen += 1
    return frozen
