#!/usr/bin/env python
"""The plain reference of bench/preprocess_e2e_bench.py: preprocessing as a script, no Spark, no colorspark.

For each file of --list: Pillow decode (EXIF orientation applied, RGB), --crops square crops resized to --size px
(the centre square, then random squares of --min-scale..1 of the short side at random positions with random
horizontal flips), scikit-image rgb2lab, L as uint8 (L·2.55), ab averaged over 4×4 cells as int8, the nearest of the
bin centres in --centres (an .npy of the 313 Zhang et al. ab centres, written by the benchmark before timing) for
each cell, and the maximum chroma; a train/val split from a hash of the path below --root. Rows are written with
pyarrow to OUT/split=<split>/part-<K>.parquet, 256 rows per batch. Prints one JSON line of counts at the end.

The benchmark runs two of these over the two halves of the file list. Not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageOps
from skimage.color import rgb2lab

SCHEMA = pa.schema([("path", pa.string()), ("crop", pa.int32()), ("l", pa.binary()), ("ab", pa.binary()),
                    ("bins", pa.binary()), ("max_chroma", pa.float32()), ("colorful", pa.bool_()),
                    ("width", pa.int32()), ("height", pa.int32())])
BATCH = 256
STRIDE = 4


def decode(path: str) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        ImageOps.exif_transpose(im, in_place=True)
        return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))


def crops(rgb: np.ndarray, size: int, count: int, min_scale: float, rng) -> list[np.ndarray]:
    h, w = rgb.shape[:2]
    image = Image.fromarray(rgb)
    short = min(h, w)
    out = []
    for i in range(count):
        if i == 0:
            side = short
            top, left = (h - side) // 2, (w - side) // 2
        else:
            side = max(1, round(short * rng.uniform(min_scale, 1.0)))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = image.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side), reducing_gap=2.0)
        if i > 0 and rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        out.append(np.asarray(crop))
    return out


def encode(rgb: np.ndarray, centres: np.ndarray) -> tuple[bytes, bytes, bytes, float]:
    lab = rgb2lab(rgb)
    l_code = np.clip(np.rint(lab[..., 0] * 2.55), 0, 255).astype(np.uint8)
    h, w = lab.shape[:2]
    ab_mean = lab[..., 1:].reshape(h // STRIDE, STRIDE, w // STRIDE, STRIDE, 2).mean(axis=(1, 3))
    ab = np.clip(np.rint(ab_mean), -128, 127).astype(np.int8)
    cells = ab.reshape(-1, 2).astype(np.float32)
    d2 = (cells[:, :1] - centres[:, 0]) ** 2 + (cells[:, 1:] - centres[:, 1]) ** 2  # cells × 313
    bins = d2.argmin(1).astype(np.int16)
    chroma = float(np.sqrt((cells ** 2).sum(-1)).max())
    return l_code.tobytes(), ab.tobytes(), bins.tobytes(), chroma


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--list", required=True, help="file with one image path per line")
    p.add_argument("--root", required=True, help="the input folder (keys for the split and the crop seed)")
    p.add_argument("--out", required=True)
    p.add_argument("--part", type=int, required=True)
    p.add_argument("--centres", required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--crops", type=int, default=4)
    p.add_argument("--min-scale", type=float, default=0.6)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--gray-chroma", type=float, default=5.0)
    args = p.parse_args()
    t0 = time.perf_counter()
    centres = np.load(args.centres).astype(np.float32)
    with open(args.list) as fh:
        paths = [line for line in fh.read().splitlines() if line]
    pending = {"train": [], "val": []}
    writers = {}

    def flush(split):
        rows = pending[split]
        if not rows:
            return
        if split not in writers:
            os.makedirs(f"{args.out}/split={split}", exist_ok=True)
            writers[split] = pq.ParquetWriter(f"{args.out}/split={split}/part-{args.part:05d}.parquet", SCHEMA)
        writers[split].write_batch(pa.RecordBatch.from_pylist(rows, schema=SCHEMA))
        rows.clear()

    ok = errors = n_rows = 0
    for path in paths:
        key = os.path.relpath(path, args.root)
        try:
            rgb = decode(path)
        except Exception:
            errors += 1
            continue
        bucket = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2.0 ** 64
        split = "val" if bucket < args.val_fraction else "train"
        rng = np.random.default_rng([args.seed, zlib.crc32(key.encode())])
        for index, crop in enumerate(crops(rgb, args.size, args.crops, args.min_scale, rng)):
            l_bytes, ab_bytes, bins_bytes, chroma = encode(crop, centres)
            pending[split].append({"path": path, "crop": index, "l": l_bytes, "ab": ab_bytes, "bins": bins_bytes,
                                   "max_chroma": chroma, "colorful": chroma >= args.gray_chroma,
                                   "width": rgb.shape[1], "height": rgb.shape[0]})
            n_rows += 1
            if len(pending[split]) == BATCH:
                flush(split)
        ok += 1
    for split in pending:
        flush(split)
    for writer in writers.values():
        writer.close()
    print(json.dumps({"part": args.part, "ok": ok, "errors": errors, "rows": n_rows,
                      "seconds": time.perf_counter() - t0}), flush=True)


if __name__ == "__main__":
    main()
