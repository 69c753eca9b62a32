#!/usr/bin/env python
"""A training run's checkpoint as a model directory of its own, to score it (bench/quality.py) or ship it.

    .venv/bin/python bench/checkpoint_model.py --run RUN_DIR --round N --data PREPROCESS_OUT --out MODEL_DIR
        [--set SECTION.KEY=VALUE ...]

A run writes colorspark.json only when it ends; checkpoints are chosen on the selection split while or after it runs.
The network comes from checkpoints/round-NNNN (its SHA-256 checked against state.json) and is re-saved without the
optimizer state; the description is what the train job would have written: the network settings of the checkpoint,
the prior and rebalancing weights of the run's data (`training.loss_and_metric_settings`), the config given with
--set (the run's own: pass the same --set values), the round's history entry as final_metrics, and a fine-tuning
run's start (`init_model`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorspark import config as config_mod  # noqa: E402
from colorspark import fs  # noqa: E402
from colorspark.finetune import init_model_uri, start_record  # noqa: E402
from colorspark.modeldir import (  # noqa: E402
    MODEL_FILE,
    STATE_FILE,
    checkpoint_dir,
    load_model_file,
    read_meta,
    write_model_dir,
)
from colorspark.training import loss_and_metric_settings, model_meta, read_manifest  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--round", type=int, required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--init-model", help="the run's --init-model, for a fine-tuning run whose checkpoints and "
                                        "directory do not record it (one stopped before it ended)")
    args = p.parse_args()
    config = config_mod.load(None, args.overrides)
    folder = checkpoint_dir(fs.to_uri(args.run), args.round)
    state = json.loads(fs.read_bytes(fs.join(folder, STATE_FILE)))
    model = load_model_file(fs.join(folder, MODEL_FILE), state["model_sha256"])
    data = fs.to_uri(args.data)
    history = state["history"][:args.round]
    meta = model_meta(state["settings"], loss_and_metric_settings(data, config), read_manifest(data), config, history)
    start = init_record(fs.to_uri(args.run), state)
    if start is None and args.init_model:
        init_uri = init_model_uri(args.init_model)
        start = start_record(init_uri, read_meta(init_uri), config["train"]["freeze_blocks"])
    meta |= {"init_model": start} if start else {}
    write_model_dir(fs.to_uri(args.out), model, meta, history)
    print(f"{args.out}: round {args.round} of {args.run}")


def init_record(run: str, state: dict) -> dict | None:
    """Where a fine-tuning run started: in its checkpoints' state, or (runs from before the state kept it) in the
    colorspark.json the run wrote when it ended."""
    if "init_model" in state:
        return state["init_model"]
    described = fs.join(run, "colorspark.json")
    return json.loads(fs.read_bytes(described)).get("init_model") if fs.is_file(described) else None


if __name__ == "__main__":
    main()
