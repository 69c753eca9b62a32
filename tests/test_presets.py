"""The `vgg16` preset, meant for clusters and GPUs, trains one round end to end (opt-in: pytest -m slow).

The CPU presets are trained by every other job test; this one only here, because one round at 224 px costs minutes on
two cores. A handful of photos become 224-px crops (preprocess --set data.size=224), `jobs/train.py --preset vgg16`
trains one synchronous Elephas round on two workers with validation and a checkpoint, and the saved model reloads and
predicts at its full input size.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from imagefactory import colour_photo, write_image

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SIZE = 224


def test_vgg16_preset_trains_one_round(run_job, tmp_path):
    for i in range(12):  # about half are validation images (by a hash of the name): ~18 train crops, > 13 needed
        write_image(tmp_path / "images" / f"p{i}.png", colour_photo(288, 256, seed=i))
    data = tmp_path / "data"
    # One partition: the train split is then one file, whose rows Spark's repartition deals out to the two Elephas
    # workers in batches of 10, so with 13 or more rows both get more than the batch size (from two files, each
    # file's batch could land on the same worker).
    pre = run_job("preprocess", "--input", tmp_path / "images", "--output", data, "--set", f"data.size={SIZE}",
                  "--set", "data.crops=3", "--set", "data.val_fraction=0.25", "--set", "data.partitions=1")
    assert pre.returncode == 0, pre.log
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["size"] == SIZE and manifest["train_crops"] >= 13 and manifest["val_crops"] >= 1, manifest

    model_dir = tmp_path / "model"
    started = time.monotonic()
    train = run_job("train", "--data", data, "--model-dir", model_dir, "--preset", "vgg16", "--rounds", "1",
                    "--workers", "2", "--set", "train.batch_size=2", "--set", "train.max_val_rows=4", timeout=1800)
    seconds = time.monotonic() - started
    assert train.returncode == 0, train.log
    print(f"\nvgg16: one round on local[2] (train job, start to exit) in {seconds:.0f} s")

    meta = json.loads((model_dir / "colorspark.json").read_text())
    assert meta["settings"]["preset"] == "vgg16" and meta["input_size"] == SIZE and meta["rounds_done"] == 1
    assert [b["filters"] for b in meta["blocks"]][:5] == [64, 128, 256, 512, 512]
    entry = json.loads((model_dir / "history.json").read_text())[0]
    for key in ("train_loss", "val_loss", "val_auc"):
        assert entry[key] is not None and np.isfinite(entry[key]), key
    assert (model_dir / "checkpoints" / "round-0001" / "state.json").is_file()

    from colorspark.inference import predict_ab
    from colorspark.modeldir import load_model_dir

    model, meta = load_model_dir(model_dir)
    ab = predict_ab(model, np.full((1, SIZE, SIZE), 128.0, np.float32), meta["temperature"])
    assert ab.shape == (1, SIZE // 4, SIZE // 4, 2) and np.isfinite(ab).all()
