#!/usr/bin/env python
"""colorspark.metrics per image: time per metric and for all scores of one colour input, one process, one core.

"All scores" is what colorize does for a colour input (colorize_tasks._finish): `rebalancing_pixel_weights` and then
`score_colorization` (PSNR, SSIM, AuC, rebalanced AuC, colourfulness and colour cast, for the prediction and the gray
baseline).
Inputs are built the way colorize builds them, on the photos that ship with scikit-image resized to 0.13 MP
(416×312) and 2 MP (1632×1224): the truth's Lab from `colorspace.rgb_to_lab`, a prediction with the truth's L and
half its ab blurred (σ = 4 px), the gray rendering, and a prior counted over the four photos. With --baseline,
another copy of metrics.py (e.g. ``git show HEAD:colorspark/metrics.py > /tmp/metrics_old.py``) runs next to the
current one, round-robin, so a busy machine slows both alike; each reports its best of --rounds calls. Then the
largest difference of every score from the baseline's, over the photos at both sizes, four predictions each (half
ab blurred, a constant ab, gray, perfect) and random images. A function or score only one of the two has (the
baseline may predate it) is timed for that one and left out of the comparison.

Example:  .venv/bin/python bench/metrics_bench.py --baseline /tmp/metrics_old.py
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402
from skimage import data  # noqa: E402
from skimage.transform import resize  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import colorspark  # noqa: E402
from colorspark import metrics  # noqa: E402
from colorspark.bins import hard_bins  # noqa: E402
from colorspark.colorspace import lab_to_rgb8, rgb_to_lab  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SIZES = {"0.13 MP": (312, 416), "2 MP": (1224, 1632)}


def load_baseline(path: str):
    """Another metrics.py as colorspark._metrics_baseline, so its relative imports find the current package."""
    name = f"{colorspark.__name__}._metrics_baseline"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def photo(name: str, shape: tuple[int, int] | None) -> np.ndarray:
    rgb = getattr(data, name)()
    if shape is not None:
        rgb = np.rint(resize(rgb, shape, anti_aliasing=True) * 255.0).astype(np.uint8)
    return rgb


def prior() -> np.ndarray:
    counts = sum(np.bincount(hard_bins(rgb_to_lab(photo(n, None))[..., 1:]).ravel(), minlength=313) for n in PHOTOS)
    return counts / counts.sum()


def inputs(rgb: np.ndarray) -> dict:
    """{prediction kind: score_colorization's arguments but the weights}, built as colorize builds them."""
    lab_in = rgb_to_lab(rgb)
    lightness, ab_true = lab_in[..., 0], lab_in[..., 1:]
    gray = lab_to_rgb8(np.dstack([lightness, np.zeros_like(lightness), np.zeros_like(lightness)]))
    predicted = {"half ab, blurred": ndimage.gaussian_filter(ab_true * 0.5, sigma=(4, 4, 0)),
                 "constant ab": np.broadcast_to(np.array([8.0, 25.0], np.float32), ab_true.shape),
                 "gray": np.zeros_like(ab_true), "perfect": ab_true}
    cases = {}
    for kind, ab in predicted.items():
        lab = np.concatenate([lightness[..., None], ab], axis=-1).astype(np.float32)
        cases[kind] = (rgb, lab_to_rgb8(lab), gray, ab_true, lab[..., 1:])
    return cases


def race(funcs: dict, rounds: int) -> dict:
    """Best ms per call of each function, the functions called in turn `rounds` times."""
    best = dict.fromkeys(funcs, float("inf"))
    for _ in range(rounds):
        for name, func in funcs.items():
            started = time.perf_counter()
            func()
            best[name] = min(best[name], (time.perf_counter() - started) * 1e3)
    return best


def calls(module, args: tuple, prior_: np.ndarray) -> dict:
    truth, pred, gray, ab_true, ab_pred = args
    weights = module.rebalancing_pixel_weights(ab_true, prior_)

    def all_scores():
        module.score_colorization(truth, pred, gray, ab_true, ab_pred,
                                  module.rebalancing_pixel_weights(ab_true, prior_))

    funcs = {"psnr": lambda: module.psnr(truth, pred),
             "ssim": lambda: module.ssim(truth, pred),
             "ab_error_auc": lambda: module.ab_error_auc(ab_true, ab_pred),
             "ab_error_auc, weighted": lambda: module.ab_error_auc(ab_true, ab_pred, weights),
             "colourfulness": lambda: module.colourfulness(pred),
             "colour_cast": lambda: module.colour_cast(ab_true, ab_pred),
             "rebalancing_pixel_weights": lambda: module.rebalancing_pixel_weights(ab_true, prior_),
             "score_colorization": lambda: module.score_colorization(truth, pred, gray, ab_true, ab_pred, weights),
             "all scores (weights + score)": all_scores}
    if not hasattr(module, "colour_cast"):  # a baseline from before the colour cast
        del funcs["colour_cast"]
    return funcs


def timings(baseline, prior_: np.ndarray, rounds: int) -> None:
    impls = {"current": metrics} if baseline is None else {"baseline": baseline, "current": metrics}
    for size, shape in SIZES.items():
        args = inputs(photo("coffee", shape))["half ab, blurred"]
        funcs = {(name, impl): func for impl, module in impls.items()
                 for name, func in calls(module, args, prior_).items()}
        best = race(funcs, rounds if shape[0] < 1000 else max(3, rounds // 4))
        print(f"\n{size} ({shape[1]}×{shape[0]}), best ms per call of {rounds} rounds")
        print(f"  {'':30s}" + "".join(f"{impl:>10s}" for impl in impls) + ("    ×faster" if baseline else ""))
        for name in calls(metrics, args, prior_):
            line = f"  {name:30s}" + "".join(f"{best[(name, impl)]:10.2f}" if (name, impl) in best else f"{'–':>10s}"
                                             for impl in impls)
            if baseline is not None and (name, "baseline") in best:
                line += f"{best[(name, 'baseline')] / best[(name, 'current')]:11.1f}"
            print(line)


def random_cases(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(3, 400, 2))
        truth = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        noisy = np.clip(truth + rng.normal(0, 25, truth.shape), 0, 255).astype(np.uint8)
        pred = noisy if i % 2 else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        gray = np.repeat(truth.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
        ab_true = rng.normal(0, 40, (h, w, 2)).astype(np.float32)
        ab_pred = (ab_true + rng.normal(0, 30, (h, w, 2))).astype(np.float32)
        weights = rng.random((h, w)) if i % 3 else None
        yield f"random {h}×{w}", (truth, pred, gray, ab_true, ab_pred), weights


def deviations(baseline, prior_: np.ndarray, randoms: int) -> None:
    shared = [key for key in metrics.SCORE_KEYS if key in baseline.SCORE_KEYS]
    largest = dict.fromkeys(shared, (0.0, ""))

    def compare(tag, args, weights):
        old = baseline.score_colorization(*args, weights)
        new = metrics.score_colorization(*args, weights)
        for key in shared:
            a, b = old[key], new[key]
            diff = 0.0 if a == b or (math.isnan(a) and math.isnan(b)) else abs(a - b)
            if diff >= largest[key][0]:
                largest[key] = (diff, tag)

    for size, shape in {"full": None, **SIZES}.items():
        for name in PHOTOS:
            for kind, args in inputs(photo(name, shape)).items():
                weights = metrics.rebalancing_pixel_weights(args[3], prior_)
                if not np.array_equal(weights, baseline.rebalancing_pixel_weights(args[3], prior_)):
                    raise AssertionError(f"rebalancing_pixel_weights differ on {name} {size}")
                compare(f"{name} {size}, {kind}", args, weights)
    for tag, args, weights in random_cases(randoms):
        compare(tag, args, weights)
    print(f"\nlargest difference from the baseline ({len(PHOTOS)} photos × 3 sizes × 4 predictions, {randoms} random)")
    for key, (diff, tag) in largest.items():
        print(f"  {key:22s} {diff:9.2g}   {tag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="another copy of colorspark/metrics.py to time and compare against")
    parser.add_argument("--rounds", type=int, default=20, help="calls per function at 0.13 MP (a quarter at 2 MP)")
    parser.add_argument("--randoms", type=int, default=20, help="random images in the comparison")
    args = parser.parse_args()
    baseline = None if args.baseline is None else load_baseline(args.baseline)
    prior_ = prior()
    timings(baseline, prior_, args.rounds)
    if baseline is not None:
        deviations(baseline, prior_, args.randoms)


if __name__ == "__main__":
    main()
