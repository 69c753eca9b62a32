#!/usr/bin/env python
"""colorspark.colorspace against scikit-image: per-call time and largest difference, one process, one core.

Times `lab_to_rgb8`, `rgb_to_lab` and `rgb_to_l` on a photo resized to 0.13 MP (416×312, what colorize sees today) and
2 MP (1632×1224), next to ``skimage.color`` doing the same (lab2rgb then the same rounding to uint8; rgb2lab;
rgb2lab's L) and, with --baseline, next to another copy of colorspace.py (e.g. ``git show HEAD:colorspark/
colorspace.py > /tmp/old.py``). The variants run round-robin, so a busy machine slows them alike, and each reports
its best of --rounds calls. BLAS is pinned to one thread before numpy loads (an executor core runs one task).

Then the largest difference from scikit-image: on every 4th level of the RGB cube plus 255 (65³ colours, corners and
the gray axis included), on the gray axis at every level, on the photos that ship with scikit-image, and for
`lab_to_rgb8` on uniformly random Lab (L in [0, 100], a and b in [-110, 110]; mostly out of the sRGB gamut).

Example:  .venv/bin/python bench/colorspace_bench.py --baseline /tmp/old.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from skimage import data  # noqa: E402
from skimage.color import lab2rgb, rgb2lab  # noqa: E402
from skimage.transform import resize  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from colorspark import colorspace  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SIZES = {"0.13 MP": (312, 416), "2 MP": (1224, 1632)}


def sk_lab_to_rgb8(lab: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "negative Z values clipped": intended for out-of-gamut Lab
        return np.rint(lab2rgb(np.asarray(lab, dtype=np.float64)) * 255.0).astype(np.uint8)


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("colorspace_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def race(funcs: dict, rounds: int) -> dict:
    """Best ms per call of each function, the functions called in turn `rounds` times."""
    best = dict.fromkeys(funcs, float("inf"))
    for _ in range(rounds):
        for name, func in funcs.items():
            started = time.perf_counter()
            func()
            best[name] = min(best[name], (time.perf_counter() - started) * 1e3)
    return best


def calls(impls: dict, rgb: np.ndarray, lab: np.ndarray) -> dict:
    """{(function, implementation): a call on this image}; scikit-image stands in for colorspace as documented."""
    funcs = {("lab_to_rgb8", "skimage"): lambda: sk_lab_to_rgb8(lab),
             ("rgb_to_lab", "skimage"): lambda: rgb2lab(rgb),
             ("rgb_to_l", "skimage"): lambda: rgb2lab(rgb)[..., 0]}
    for impl, module in impls.items():
        if module is not None:
            funcs[("lab_to_rgb8", impl)] = lambda m=module: m.lab_to_rgb8(lab)
            funcs[("rgb_to_lab", impl)] = lambda m=module: m.rgb_to_lab(rgb)
            funcs[("rgb_to_l", impl)] = lambda m=module: m.rgb_to_l(rgb)
    return funcs


def timings(rounds: int, baseline) -> None:
    photo = data.astronaut()
    impls = {"skimage": None, "baseline": baseline, "colorspace": colorspace}
    if baseline is None:
        del impls["baseline"]
    for label, (height, width) in SIZES.items():
        rgb = np.rint(resize(photo, (height, width)) * 255.0).astype(np.uint8)
        n = rounds if height * width < 10**6 else max(3, rounds // 4)
        best = race(calls(impls, rgb, colorspace.rgb_to_lab(rgb)), n)
        print(f"\n{label} ({width}×{height}), ms per call, best of {n}")
        others = [impl for impl in impls if impl != "colorspace"]
        print(f"  {'':12s}" + "".join(f"{impl:>12s}" for impl in impls) + "   speed-up vs " + ", ".join(others))
        for func in ("lab_to_rgb8", "rgb_to_lab", "rgb_to_l"):
            ups = ", ".join(f"{best[(func, impl)] / best[(func, 'colorspace')]:.1f}×" for impl in others)
            print(f"  {func:12s}" + "".join(f"{best[(func, impl)]:12.2f}" for impl in impls) + f"   {ups}")


def differences() -> None:
    levels = np.unique(np.append(np.arange(0, 256, 4), 255)).astype(np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    inputs = {"cube 65³": np.stack([r.ravel(), g.ravel(), b.ravel()], -1)[None],
              "gray axis": np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)[None]}
    inputs.update({name: getattr(data, name)() for name in PHOTOS})
    print("\nlargest |difference| from scikit-image (L, a, b for rgb_to_lab; levels for lab_to_rgb8, and the share of"
          " values that differ)")
    for name, rgb in inputs.items():
        reference = rgb2lab(rgb)
        lab_diff = np.abs(colorspace.rgb_to_lab(rgb) - reference).reshape(-1, 3).max(0)
        l_diff = np.abs(colorspace.rgb_to_l(rgb) - reference[..., 0]).max()
        levels8 = np.abs(colorspace.lab_to_rgb8(reference).astype(np.int16) - sk_lab_to_rgb8(reference))
        print(f"  {name:10s} rgb_to_lab ΔL {lab_diff[0]:.1e} Δa {lab_diff[1]:.1e} Δb {lab_diff[2]:.1e}   "
              f"rgb_to_l ΔL {l_diff:.1e}   lab_to_rgb8 {levels8.max()} level(s), {(levels8 != 0).mean():.4%} differ")
    rng = np.random.default_rng(0)
    n = 1_000_000
    lab = np.stack([rng.uniform(0, 100, n), rng.uniform(-110, 110, n), rng.uniform(-110, 110, n)], -1)
    for name, values in (("random Lab", lab), ("  as float32", lab.astype(np.float32))):
        levels8 = np.abs(colorspace.lab_to_rgb8(values).astype(np.int16) - sk_lab_to_rgb8(values))
        float_diff = np.abs(colorspace.lab_to_rgb(values) - lab2rgb_quiet(values)).max()
        print(f"  {name:10s} lab_to_rgb8 {levels8.max()} level(s), {(levels8 != 0).mean():.4%} differ   "
              f"lab_to_rgb {float_diff:.1e}")


def lab2rgb_quiet(lab: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return lab2rgb(np.asarray(lab, dtype=np.float64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40, help="calls per variant at 0.13 MP (a quarter at 2 MP)")
    parser.add_argument("--baseline", help="another colorspace.py to time alongside, e.g. the committed one")
    parser.add_argument("--no-diff", action="store_true", help="timings only")
    args = parser.parse_args()
    timings(args.rounds, load_module(args.baseline) if args.baseline else None)
    if not args.no_diff:
        differences()


if __name__ == "__main__":
    main()
