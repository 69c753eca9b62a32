#!/usr/bin/env python
"""The plain reference of bench/colorize_e2e_bench.py: colorizing as a script, no Spark, no colorspark.

For each file of --list: Pillow decode (EXIF orientation applied, RGB), scikit-image rgb2lab, L resized to the
model's input with Pillow (a float "F" image, bilinear), Keras predict in batches of --batch, the annealed mean over
the bin centres at the model's temperature (both read from the model's colorspark.json), each ab channel resized to
the photo's size with Pillow (a float "F" image, bilinear), recombined with the photo's L, scikit-image lab2rgb, and
a JPEG (quality 90) with Pillow under OUT at the file's path below --root. TensorFlow gets one thread. Prints one
JSON line of counts at the end.

Both resizes are Pillow's, as a careful user would write them (issue 31): scikit-image's `resize` costs about 15
times as much on the benchmark's 0.4 MP photos. The benchmark runs two of these over the two halves of the file
list. Not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--list", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    started = time.time()
    import warnings

    import keras
    import numpy as np
    import tensorflow as tf
    from PIL import Image, ImageOps
    from skimage.color import lab2rgb, rgb2lab

    warnings.filterwarnings("ignore", message="Conversion from CIE-LAB")  # out-of-gamut notes, once per image
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    meta = json.loads((Path(args.model) / "colorspark.json").read_text())
    model = keras.models.load_model(Path(args.model) / "model.keras", compile=False)
    centres, temperature, size = np.asarray(meta["centres"], np.float32), meta["temperature"], meta["input_size"]
    root, out = Path(args.root), Path(args.out)
    files = [Path(line) for line in Path(args.list).read_text().splitlines() if line]
    counts = {"ok": 0, "errors": 0}

    def resize(channel, height, width):
        image = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32), mode="F")
        return np.asarray(image.resize((width, height), Image.BILINEAR))

    def finish(batch):
        logits = model.predict_on_batch(np.stack([x for _, _, x in batch])[..., None])
        scaled = logits / temperature
        weights = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        for (path, lightness, _), ab in zip(batch, weights @ centres):
            ab_full = np.dstack([resize(ab[..., c], *lightness.shape) for c in range(2)])
            rgb = (np.clip(lab2rgb(np.dstack([lightness, ab_full])), 0, 1) * 255 + 0.5).astype(np.uint8)
            target = out / path.relative_to(root).with_suffix(".jpg")
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(target, quality=90)
            counts["ok"] += 1

    batch = []
    for path in files:
        try:
            with Image.open(path) as im:
                im.load()
                ImageOps.exif_transpose(im, in_place=True)
                rgb = np.asarray(im.convert("RGB"))
        except Exception:
            counts["errors"] += 1
            continue
        lightness = rgb2lab(rgb)[..., 0]
        batch.append((path, lightness, resize(lightness, size, size) * 2.55))
        if len(batch) == args.batch:
            finish(batch)
            batch = []
    if batch:
        finish(batch)
    print(json.dumps({**counts, "seconds": time.time() - started}))


if __name__ == "__main__":
    main()
