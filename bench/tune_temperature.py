"""Score a trained model's checkpoints on the selection split at several annealed-mean temperatures.

    .venv/bin/python bench/tune_temperature.py --model MODEL_DIR --data PREPROCESS_OUT [--temperatures 0.2,0.38,1]
        [--split selection]

Choosing a checkpoint and a temperature is tuning, so it reads the selection split (never trained on, and not the
validation split whose figures are reported); --split val is there for data preprocessed before the selection split
existed. Reads the split with pyarrow (no Spark), runs each checkpoint once, and decodes its logits at every
temperature with the same metric code the training job uses (colorspark.training_tasks.validation_sums). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorspark.modeldir import MODEL_FILE, STATE_FILE, load_model_file  # noqa: E402
from colorspark.training import mean_metrics  # noqa: E402
from colorspark.training_tasks import VAL_KEYS, loss_from_settings, validation_sums  # noqa: E402


def split_rows(data: Path, size: int, split: str):
    import pyarrow.parquet as pq

    table = pq.read_table(data / "parquet" / f"split={split}", filters=[("colorful", "=", True)])
    x = np.stack([np.frombuffer(v, np.uint8).reshape(size, size, 1) for v in table["l"].to_pylist()]).astype(
        np.float32)
    y = np.stack([np.frombuffer(v, np.int8).reshape(size // 4, size // 4, 2) for v in table["ab"].to_pylist()])
    return x, y


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="model dir (with checkpoints/)")
    p.add_argument("--data", required=True, type=Path, help="preprocess output the model was trained on")
    p.add_argument("--temperatures", default="0.2,0.38,0.5,0.7,1.0")
    p.add_argument("--split", default="selection", choices=["selection", "val"])
    p.add_argument("--every", type=int, default=1, help="score every Nth checkpoint (the last is always scored)")
    args = p.parse_args()
    meta = json.loads((args.model / "colorspark.json").read_text())
    x, y = split_rows(args.data, meta["input_size"], args.split)
    settings = {"class_weights": meta["class_weights"], "prior": meta["prior"], "neighbours": 10, "sigma": 5.0,
                "gray_chroma": meta["config"]["data"]["gray_chroma"]}
    loss_fn = loss_from_settings(settings)
    checkpoints = sorted((args.model / "checkpoints").glob("round-*"))
    chosen = [c for i, c in enumerate(checkpoints) if (i + 1) % args.every == 0 or c == checkpoints[-1]]
    print(f"{len(x)} val crops\n")
    print("| round | T | val loss | AuC | AuC gray | rebal. AuC | rebal. AuC gray | PSNR | PSNR gray |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ckpt in chosen:
        state = json.loads((ckpt / STATE_FILE).read_text())
        model = load_model_file(ckpt / MODEL_FILE, state["model_sha256"])
        logits = np.concatenate([np.asarray(model.predict_on_batch(x[i:i + 64])) for i in range(0, len(x), 64)])
        for t in map(float, args.temperatures.split(",")):
            total = dict.fromkeys(VAL_KEYS, 0.0)
            for i in range(0, len(x), 64):
                sums = validation_sums(logits[i:i + 64], x[i:i + 64], y[i:i + 64], {**settings, "temperature": t},
                                       loss_fn)
                total = {k: total[k] + sums[k] for k in VAL_KEYS}
            m = mean_metrics(total)
            print(f"| {state['round']} | {t} | {m['val_loss']:.3f} | {m['val_auc']:.4f} | {m['val_auc_gray']:.4f} | "
                  f"{m['val_auc_rebal']:.4f} | {m['val_auc_rebal_gray']:.4f} | {m['val_psnr']:.2f} | "
                  f"{m['val_psnr_gray']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
