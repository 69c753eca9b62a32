"""A fine-tuned model blended back with the model it started from: every weight w = t·w_tuned + (1 − t)·w_start.

Fine-tuning on one kind of photo teaches the network that kind and makes it forget some of the rest (the card,
models/README.md). Averaging the weights of the fine-tuned network with those of its start (Wortsman et al. 2022,
"Robust fine-tuning of zero-shot models", WiSE-FT) keeps most of both: the two networks lie in one basin, since one
grew out of the other, so their average is a network of its own and not a blur of two. The shipped model is such a
blend (its card says how its weight was chosen on the selection split). Batch-norm statistics are blended like the
weights.

    colorspark blend --tuned DIR_OR_URI --start DIR_OR_URI|shipped --weight 0.5 --output DIR_OR_URI

The blend keeps the tuned model's description (its prior, rebalancing weights and temperature: those of the data it
was fine-tuned on) and records both parents in `blend`. Only models of the same architecture blend.
"""

from __future__ import annotations

import argparse
import sys

from . import fs
from .errors import JobError
from .finetune import init_model_uri
from .modeldir import load_model_dir, write_model_dir

EXIT_USAGE = 2


def blend_weights(tuned: list, start: list, weight: float) -> list:
    """weight·tuned + (1 − weight)·start, array by array."""
    return [weight * a + (1.0 - weight) * b for a, b in zip(tuned, start, strict=True)]


def parent_record(uri: str, meta: dict) -> dict:
    return {"model": fs.display(uri), "sha256": meta["model_sha256"], "rounds_done": meta.get("rounds_done")}


def blend_models(tuned_uri: str, start_uri: str, weight: float, output_uri: str) -> dict:
    """Write the blend of two model directories to `output_uri`; returns its description."""
    if not 0.0 <= weight <= 1.0:
        raise JobError(f"--weight must be between 0 and 1, got {weight}")
    tuned, tuned_meta = load_model_dir(tuned_uri)
    start, start_meta = load_model_dir(start_uri)
    if tuned_meta["settings"] != start_meta["settings"]:
        raise JobError(f"{fs.display(tuned_uri)} and {fs.display(start_uri)} have different networks "
                       "(their colorspark.json settings differ): only a model and its fine-tuned copy blend")
    tuned.set_weights(blend_weights(tuned.get_weights(), start.get_weights(), weight))
    meta = {key: value for key, value in tuned_meta.items() if key != "model_sha256"}
    meta["blend"] = {"weight": weight, "tuned": parent_record(tuned_uri, tuned_meta),
                     "start": parent_record(start_uri, start_meta)}
    history = fs.read_json(fs.join(tuned_uri, "history.json")) if fs.is_file(fs.join(tuned_uri, "history.json")) \
        else []
    write_model_dir(output_uri, tuned, meta, history)
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="colorspark blend", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tuned", required=True, help="the fine-tuned model directory (path or URI)")
    p.add_argument("--start", required=True, help="the model it was fine-tuned from, or 'shipped'")
    p.add_argument("--weight", type=float, required=True, help="the tuned model's share, 0..1")
    p.add_argument("--output", required=True, help="where to write the blended model directory")
    args = p.parse_args(argv)
    from .runtime import import_tensorflow

    import_tensorflow(1)
    try:
        meta = blend_models(fs.to_uri(args.tuned), init_model_uri(args.start), args.weight, fs.to_uri(args.output))
    except (JobError, OSError) as exc:  # a missing or changed model file too (modeldir.ModelError)
        print(f"colorspark blend: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"colorspark blend: {args.output}: {args.weight:g} × {args.tuned} + {1 - args.weight:g} × "
          f"{meta['blend']['start']['model']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
