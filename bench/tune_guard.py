#!/usr/bin/env python
"""Choose the do-no-harm decoding (`colorspark/guard.py`) on the selection split: a grid of guard settings, each
photo's network output computed once and decoded with every setting.

    .venv/bin/python bench/tune_guard.py [--model models/small] [--input ../shared/data] [--split selection]
        [--entropy 0,0.5,0.6] [--cast 0,8,12] [--max-pixels 500000] [--work /tmp/colorspark-guard]

The photos are the held-out ones bench/quality.py scores (same split function, same keys), decoded and shrunk to at
most --max-pixels (the network sees a 96-px square's area either way; the shrinking only makes the scoring of many
settings affordable), colorized as colorize does (`colorizer.model_input`, `recombine`) and scored with colorize's
own `metrics.score_colorization`. Per setting and per top-level folder: the rebalanced AuC and PSNR gaps to gray,
the colourfulness and cast ratios, the share of photos more than 3 dB below gray's PSNR and the 10th percentile of
the per-photo PSNR gap (bench/quality.py's `figures`). The chosen setting is then checked at full resolution
through the colorize job with bench/quality.py.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ROOT, md_table, say, write_json  # noqa: E402
from quality import SPLIT_NAMES, figures, folder_of, held_out  # noqa: E402

from colorspark import config as config_mod  # noqa: E402
from colorspark.bins import annealed_mean  # noqa: E402
from colorspark.colorizer import Rendering, model_input, recombine  # noqa: E402
from colorspark.colorspace import lab_to_rgb8, rgb_to_lab  # noqa: E402
from colorspark.decode import decode_image, is_grayscale  # noqa: E402
from colorspark.guard import guard_ab  # noqa: E402
from colorspark.inference import forward_pass  # noqa: E402
from colorspark.metrics import rebalancing_pixel_weights, score_colorization  # noqa: E402
from colorspark.modeldir import load_model_dir  # noqa: E402


def shrunk_rgb(path: Path, max_pixels: int) -> np.ndarray:
    rgb = decode_image(path.read_bytes(), max_pixels=10**9, max_bytes=10**9)
    scale = (max_pixels / (rgb.shape[0] * rgb.shape[1])) ** 0.5
    if scale < 1:
        size = (max(8, round(rgb.shape[1] * scale)), max(8, round(rgb.shape[0] * scale)))
        rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    return rgb


def score_settings(rgb: np.ndarray, model, meta: dict, rendering: Rendering, settings: list[tuple]) -> list[dict]:
    """One photo's scores under every (entropy threshold, cast limit) setting."""
    lab = rgb_to_lab(rgb)
    l_full, ab_true = lab[..., 0], lab[..., 1:]
    x = model_input(l_full, rendering.network_shape(*l_full.shape))
    logits = np.asarray(forward_pass(model)(x[None, ..., None]))
    ab = annealed_mean(logits, rendering.temperature)
    gray = lab_to_rgb8(np.stack([l_full, np.zeros_like(l_full), np.zeros_like(l_full)], axis=-1))
    weights = rebalancing_pixel_weights(ab_true, np.asarray(meta["prior"]))
    scores = []
    for entropy, cast in settings:
        pred_lab = recombine(l_full, guard_ab(ab, logits, entropy, cast)[0])
        scores.append(score_colorization(rgb, lab_to_rgb8(pred_lab), gray, ab_true, pred_lab[..., 1:], weights))
    return scores


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "small"))
    p.add_argument("--input", default=str(ROOT.parent / "shared" / "data"))
    p.add_argument("--split", default="selection", choices=sorted(SPLIT_NAMES))
    p.add_argument("--entropy", default="0,0.45,0.5,0.55,0.6,0.65", help="entropy thresholds (0: off)")
    p.add_argument("--cast", default="0,6,9,12,16", help="global-cast limits in ab units (0: off)")
    p.add_argument("--max-pixels", type=int, default=500_000)
    p.add_argument("--work", default="/tmp/colorspark-guard")
    args = p.parse_args()
    config = config_mod.load()
    model, meta = load_model_dir(args.model)
    rendering = Rendering.from_config(config, meta)
    settings = list(itertools.product([float(v) for v in args.entropy.split(",")],
                                      [float(v) for v in args.cast.split(",")]))
    photos = held_out(Path(args.input).resolve(), config, [args.split])[args.split]
    rows = {s: [] for s in settings}
    for n, (key, path) in enumerate(photos, 1):
        rgb = shrunk_rgb(path, args.max_pixels)
        if is_grayscale(rgb):
            continue
        for setting, score in zip(settings, score_settings(rgb, model, meta, rendering, settings)):
            rows[setting].append({**score, "relative_path": f"{args.split}/{key}"})
        if n % 20 == 0:
            say(f"[guard] {n}/{len(photos)} photos")
    folders = sorted({folder_of(r["relative_path"]) for r in rows[settings[0]]})
    table, result = [], []
    for setting in settings:
        groups = {"all": figures(rows[setting])}
        groups |= {f: figures([r for r in rows[setting] if folder_of(r["relative_path"]) == f]) for f in folders}
        result.append({"entropy": setting[0], "cast": setting[1], "groups": groups})
        for name, f in groups.items():
            table.append([setting[0], setting[1], name, f["photos"],
                          f"{100 * (f['auc_rebal'] - f['auc_rebal_gray']):+.1f}",
                          f"{f['psnr'] - f['psnr_gray']:+.2f}", f"{f['colourfulness_ratio']:.2f}",
                          f"{f['cast_ratio']:.2f}", f"{f['harmed']} ({100 * f['harmed_share']:.0f} %)",
                          f"{f['psnr_gap_p10']:+.2f}"])
    write_json(Path(args.work) / "guard.json", {"model": args.model, "split": args.split, "settings": result})
    say(md_table(["entropy", "cast limit", "photos", "n", "rebal. AuC − gray", "PSNR − gray (dB)", "colour ×",
                  "cast ×", "> 3 dB below gray", "PSNR gap p10"], table))


if __name__ == "__main__":
    main()
