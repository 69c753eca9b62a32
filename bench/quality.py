#!/usr/bin/env python
"""Full-resolution quality of a model on the held-out photos, through the real colorize job, next to gray.

    .venv/bin/python bench/quality.py [--input ../shared/data] [--model models/small] [--splits val,selection]
        [--config FILE] [--set SECTION.KEY=VALUE ...] [--work /tmp/colorspark-quality]

The training job's validation scores 64-px crops at the output stride; what a person sees is the whole photo,
colorized at its own resolution. This benchmark chooses the photos below --input that preprocess, given the same
--input and configuration, puts in the validation and selection splits (`colorspark.splits.split_of` on the same
keys: the path relative to --input, as `paths.relative_output_path` makes it; the same extensions and hidden names),
and reads no other photo. It copies them to --work (never into the repository) and runs jobs/colorize.py on them
once under spark-submit on local[2]. Colorize scores a colour photo against its own colours, so each result row
carries every score for the prediction and the gray baseline (ab = 0).

Per split, per top-level source folder below --input within each split, and per folder over all the scored
splits together (a domain's photos in one split are few), it reports, next to gray: AuC and rebalanced AuC (means
over the photos), PSNR (mean of the finite values), the colourfulness ratio (mean colourfulness over the originals'
mean; gray's is 0) and the cast ratio (mean colour cast over gray's mean cast; gray's is 1), as a Markdown table on
stdout and as JSON (--work/quality.json).
The ratios are ratios of means, as colorize's summary.json has the cast ratio. With each figure goes its standard
error over the photos (±): for the means, of the per-photo gap between model and gray; for the ratios, a bootstrap
over the photos. A few dozen photos make these figures noisy, and the ± says how much. Means hide the photos a
model ruins, so each group also has the number (and share) of photos whose PSNR falls more than 3 dB below gray's
and the 10th percentile of the per-photo PSNR gap. quality.json also keeps each photo's PSNR and rebalanced AuC.

A split's photos may include photos the model was trained on, when the model was trained on other splits or another
--input (the shipped model was trained on ../shared/data/photos alone, by keys relative to that folder). From the
model's colorspark.json (its data input and its split fractions) the benchmark finds those photos and reports the
split a second time without them ("unseen"); those are the figures to quote for such a model.

--config and --set take the jobs' configuration: data.val_fraction, data.selection_fraction and data.extensions
choose the photos, and everything is passed on to the colorize job (e.g. rendering settings to compare on the
selection split).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (  # noqa: E402
    ROOT,
    build_zip,
    command_line,
    machine_info,
    md_table,
    md_update,
    say,
    spark_submit,
    tail,
    write_json,
)

from colorspark import config as config_mod  # noqa: E402
from colorspark.paths import relative_output_path  # noqa: E402
from colorspark.splits import SELECTION, TRAIN, VALIDATION, split_of  # noqa: E402

SPLIT_NAMES = {VALIDATION: "validation", SELECTION: "selection"}
# (label, model key, gray key, scale, digits): the means reported for the prediction and for gray.
MEANS = (("AuC", "auc", "auc_gray", 100.0, 1), ("rebalanced AuC", "auc_rebal", "auc_rebal_gray", 100.0, 1),
         ("PSNR (dB)", "psnr", "psnr_gray", 1.0, 2))
# (name, numerator key, denominator key): the ratios of means reported for the prediction.
RATIOS = (("colourfulness_ratio", "colourfulness", "colourfulness_truth"), ("cast_ratio", "cast", "cast_gray"))
BOOTSTRAP_DRAWS = 2000
HARM_DB = 3.0  # a photo is harmed when its PSNR falls more than this below gray's


def list_photos(root: Path, extensions: list[str]) -> list[Path]:
    """The files below `root` that preprocess reads: Spark's binaryFile takes an extension in lower or upper case
    (its glob is `*.{jpg,JPG,...}`) and skips every name, folder or file, that starts with '.' or '_'."""
    wanted = {e.lower() for e in extensions} | {e.upper() for e in extensions}
    photos = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith((".", "_")))
        photos += [Path(folder) / f for f in sorted(files)
                   if not f.startswith((".", "_")) and "." in f and f.rsplit(".", 1)[1] in wanted]
    return photos


def held_out(root: Path, config: dict, splits: list[str]) -> dict[str, list[tuple[str, Path]]]:
    """{split: [(key, path)]} of the wanted held-out splits, by the split function preprocess uses."""
    data = config["data"]
    chosen = {split: [] for split in splits}
    for path in list_photos(root, data["extensions"]):
        key = relative_output_path(str(path), str(root))
        split = split_of(key, data["val_fraction"], data["selection_fraction"])
        if split in chosen:
            chosen[split].append((key, path))
    return chosen


def model_trained_on(model_dir: Path):
    """A function path -> whether the model's own preprocess put that photo in its training split, from the model's
    colorspark.json (data.input, read relative to the project root like the README's commands, and config.data);
    None when the model does not say where its data came from, or it came from a remote store."""
    meta = json.loads((model_dir / "colorspark.json").read_text())
    data_input = (meta.get("data") or {}).get("input")
    if not data_input or ("://" in data_input and not data_input.startswith("file:")):
        return None
    data_root = (ROOT / data_input.removeprefix("file://").removeprefix("file:")).resolve()
    fractions = meta["config"]["data"]
    val_fraction, selection_fraction = fractions["val_fraction"], fractions.get("selection_fraction", 0.0)

    def trained_on(path: Path) -> bool:
        resolved = path.resolve()
        if data_root not in resolved.parents:
            return False
        key = relative_output_path(str(resolved), str(data_root))
        return split_of(key, val_fraction, selection_fraction) == TRAIN

    return trained_on


def stage_inputs(chosen: dict[str, list[tuple[str, Path]]], folder: Path) -> None:
    """Copies of the chosen photos at folder/<split>/<key>, so colorize's relative paths are <split>/<key>."""
    shutil.rmtree(folder, ignore_errors=True)
    for split, photos in chosen.items():
        for key, path in photos:
            target = folder / split / key
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def _finite_mean(values) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def _gap_se(rows: list[dict], model: str, gray: str) -> float | None:
    """Standard error of the mean per-photo gap model − gray (photos where both are finite)."""
    gaps = np.array([r[model] - r[gray] for r in rows if r[model] is not None and r[gray] is not None])
    gaps = gaps[np.isfinite(gaps)]
    return float(gaps.std(ddof=1) / math.sqrt(len(gaps))) if len(gaps) > 1 else None


def _ratio_se(rows: list[dict], numerator: str, denominator: str) -> float | None:
    """Bootstrap standard error of mean(numerator) / mean(denominator) over the photos (fixed seed: reproducible)."""
    pairs = np.array([(r[numerator], r[denominator]) for r in rows
                      if r[numerator] is not None and r[denominator] is not None], dtype=np.float64).reshape(-1, 2)
    pairs = pairs[np.isfinite(pairs).all(axis=1)]
    if len(pairs) < 2:
        return None
    draws = pairs[np.random.default_rng(0).integers(0, len(pairs), (BOOTSTRAP_DRAWS, len(pairs)))].mean(axis=1)
    return float((draws[:, 0] / draws[:, 1]).std())


def harm(rows: list[dict]) -> dict:
    """How often and how badly the model does worse than gray: the share of photos whose PSNR falls more than
    HARM_DB below gray's, and the 10th percentile of the per-photo PSNR gap (model − gray)."""
    gaps = np.array([r["psnr"] - r["psnr_gray"] for r in rows if r["psnr"] is not None and r["psnr_gray"] is not None])
    gaps = gaps[np.isfinite(gaps)]
    if not len(gaps):
        return {"harmed_share": None, "harmed": None, "psnr_gap_p10": None}
    return {"harmed_share": float(np.mean(gaps < -HARM_DB)), "harmed": int(np.sum(gaps < -HARM_DB)),
            "psnr_gap_p10": float(np.percentile(gaps, 10))}


def figures(rows: list[dict]) -> dict:
    """The reported figures of a group of scored result rows: means, ratios and their ± (see the module docstring),
    and how often the model harms a photo (`harm`)."""
    result = {"photos": len(rows)} | harm(rows)
    for _, model, gray, _, _ in MEANS:
        result |= {model: _finite_mean(r[model] for r in rows), gray: _finite_mean(r[gray] for r in rows),
                   f"{model}_gap_se": _gap_se(rows, model, gray)}
    for name, numerator, denominator in RATIOS:
        result |= {numerator: _finite_mean(r[numerator] for r in rows),
                   denominator: _finite_mean(r[denominator] for r in rows)}
        result |= {name: _ratio(result[numerator], result[denominator]),
                   f"{name}_se": _ratio_se(rows, numerator, denominator)}
    return result


def folder_of(relative_path: str) -> str:
    """The top-level source folder below --input of a staged result (`<split>/<folder>/...`; "." for a photo
    directly in --input): the domain it is reported under."""
    parts = relative_path.split("/")
    return parts[1] if len(parts) > 2 else "."


def domain_groups(rows: list[dict], splits: list[str]) -> dict[str, dict]:
    """The figures per top-level source folder: per split, and for the held-out splits together when several are
    scored (a folder's photos in one split are few; both together are what a domain's targets are read on)."""
    folders = sorted({folder_of(r["relative_path"]) for r in rows})
    groups = {}
    for split in splits:
        for folder in folders:
            chosen = [r for r in rows if r["relative_path"].split("/", 1)[0] == split
                      and folder_of(r["relative_path"]) == folder]
            if chosen:
                groups[f"{SPLIT_NAMES[split]}, {folder}"] = figures(chosen)
    if len(splits) > 1:
        together = " + ".join(SPLIT_NAMES[s] for s in splits)
        for folder in folders:
            groups[f"{together}, {folder}"] = figures([r for r in rows if folder_of(r["relative_path"]) == folder])
    return groups


def markdown(groups: dict[str, dict]) -> str:
    def value(x, scale=1.0, digits=2):
        return "–" if x is None else f"{x * scale:.{digits}f}"

    header = ["photos", "n"] + [f"{label}: model / gray (± gap)" for label, *_ in MEANS] + [
        "colourfulness × originals", "cast × gray's", f"PSNR > {HARM_DB:g} dB below gray", "PSNR gap, 10th pct (dB)"]
    rows = []
    for name, f in groups.items():
        harmed = "–" if f["harmed"] is None else f"{f['harmed']} ({100 * f['harmed_share']:.0f} %)"
        rows.append([name, f["photos"]]
                    + [f"{value(f[model], scale, digits)} / {value(f[gray], scale, digits)} "
                       f"(±{value(f[model + '_gap_se'], scale, digits)})" for _, model, gray, scale, digits in MEANS]
                    + [f"{value(f[name])} (±{value(f[name + '_se'])})" for name, _, _ in RATIOS]
                    + [harmed, value(f["psnr_gap_p10"])])
    return md_table(header, rows)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(ROOT.parent / "shared" / "data"),
                        help="the folder preprocess reads (default ../shared/data: photos/ and corpus/)")
    parser.add_argument("--model", default=str(ROOT / "models" / "small"), help="model directory (default: shipped)")
    parser.add_argument("--splits", default=f"{VALIDATION},{SELECTION}",
                        help=f"held-out splits to score, comma-separated: {VALIDATION}, {SELECTION}")
    parser.add_argument("--config", help="TOML config, as for the jobs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="config override, as for the jobs (repeatable)")
    parser.add_argument("--work", default="/tmp/colorspark-quality",
                        help="scratch folder: copied photos, colorize output, spark.log, quality.json")
    parser.add_argument("--py-files", help="the colorspark zip to run (default: ./build.sh's, rebuilt first)")
    parser.add_argument("--record", action="store_true",
                        help="also write the table into BENCHMARKS.md (section 'quality': the shipped model's figures)")
    args = parser.parse_args()
    args.split_list = [s.strip() for s in args.splits.split(",") if s.strip()]
    if not args.split_list or set(args.split_list) - set(SPLIT_NAMES):
        parser.error(f"--splits takes {VALIDATION} and/or {SELECTION}, got {args.splits!r}")
    return args


def split_groups(rows: list[dict], splits: list[str], trained_on, sources: dict) -> tuple[dict, dict]:
    """({group name: figures} per split, all its photos and those the model was not trained on; {split: photos of
    it in the model's own training split}), so that a model is not credited for photos it has seen."""
    groups, seen = {}, {}
    for split in splits:
        in_split = [r for r in rows if r["relative_path"].split("/", 1)[0] == split]
        groups[f"{SPLIT_NAMES[split]}, all"] = figures(in_split)
        if trained_on is not None:
            unseen = [r for r in in_split if not trained_on(sources[r["relative_path"]])]
            seen[split] = len(in_split) - len(unseen)
            if seen[split]:
                groups[f"{SPLIT_NAMES[split]}, unseen by the model"] = figures(unseen)
    return groups, seen


def main() -> None:
    args = arguments()
    splits = args.split_list
    config = config_mod.load(args.config, args.overrides)
    root, model, work = Path(os.path.abspath(args.input)), Path(args.model).resolve(), Path(args.work).resolve()

    chosen = held_out(root, config, splits)
    for split, photos in chosen.items():
        say(f"[quality] {SPLIT_NAMES[split]}: {len(photos)} photos below {root}")
    if not any(chosen.values()):
        raise SystemExit("no held-out photos: check --input and data.val_fraction / data.selection_fraction")
    stage_inputs(chosen, work / "inputs")
    out = work / "colorized"
    job_args = ["--input", work / "inputs", "--output", out, "--model", model]
    job_args += (["--config", args.config] if args.config else []) + [a for o in args.overrides for a in ("--set", o)]
    zip_path = Path(args.py_files) if args.py_files else build_zip(say)
    rc, seconds = spark_submit(ROOT / "jobs" / "colorize.py", job_args, zip_path=zip_path,
                               driver_memory="2g", log_path=work / "spark.log", log=say)
    if rc != 0:
        raise SystemExit(f"colorize failed (exit {rc}); log tail:\n{tail(work / 'spark.log', 40)}")

    rows = [r for r in pq.read_table(out / "results").to_pylist() if r["status"] == "ok" and r["has_truth"]]
    not_scored = sum(len(photos) for photos in chosen.values()) - len(rows)
    trained_on = model_trained_on(model)
    sources = {f"{split}/{key}": path for split, photos in chosen.items() for key, path in photos}
    groups, seen = split_groups(rows, splits, trained_on, sources)
    groups |= domain_groups(rows, splits)
    table = markdown(groups)
    result = {"command": command_line(), "machine": machine_info(), "input": str(root), "model": str(model),
              "splits": {SPLIT_NAMES[s]: len(chosen[s]) for s in splits}, "not_scored": not_scored,
              "trained_on_by_the_model": {SPLIT_NAMES[s]: n for s, n in seen.items()} if trained_on else None,
              "fractions": {k: config["data"][k] for k in ("val_fraction", "selection_fraction")},
              "colorize_seconds": round(seconds, 1), "finished": time.strftime("%Y-%m-%d %H:%M %Z"),
              "groups": groups, "markdown": table,
              "per_photo": [{k: r[k] for k in ("relative_path", "psnr", "psnr_gray", "auc_rebal", "auc_rebal_gray")}
                            for r in rows]}
    write_json(work / "quality.json", result)
    if args.record:
        info = result["machine"]
        md_update("quality", f"## 6. Full-resolution quality by source folder (`bench/quality.py`)\n\n"
                             f"{result['finished']}; {info['nproc']} cores, {info['cpu']}, load average "
                             f"{info['loadavg'][0]:.1f} (quality figures do not depend on it); model {model}\n\n"
                             f"`{result['command']}`\n\n{table}\n")
    say(f"\n{table}\n")
    for split, n in seen.items():
        say(f"[quality] {n} of the {SPLIT_NAMES[split]} photos are in the model's own training split")
    if not_scored:
        say(f"[quality] {not_scored} chosen photos were not scored (failed or gray; see {out / 'results'})")
    say(f"[quality] colorize took {seconds:.0f} s; figures in {work / 'quality.json'}")


if __name__ == "__main__":
    main()
