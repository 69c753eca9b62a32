#!/usr/bin/env python
"""Cold end-to-end preprocessing: the real spark-submit job against a plain two-process script, start to exit.

  (a) Spark as the README runs it: `spark-submit --properties-file conf/spark-local.conf --py-files
      dist/colorspark-0.1.0.zip jobs/preprocess.py --input DIR --output OUT --format parquet`
      (PYSPARK_PYTHON=.venv/bin/python), timed from launch to exit: JVM start, session, Python workers, the job,
      shutdown.
  (a') the same with bare settings instead of the properties file: `--master local[2] --driver-memory 2g` (the
      command this benchmark used before the file was the README's way; no JIT setting).
  (b) Plain: bench/plain_preprocess.py (no Spark, no colorspark: Pillow, scikit-image, NumPy, pyarrow) as two
      processes over the two halves of the file list, timed from launching both to both exiting.
  Target: (b) / (a) >= 0.6. All write the same kind of Parquet rows; the row counts are checked.

The bin centres for the plain script are written to WORKDIR/centres.npy (from colorspark.bins.gamut_centres) before
anything is timed. Each round runs (a), (a') and (b), each after the machine has settled, and each of them goes
first in turn, so that a slow first run after a pause does not always fall on the same side.
Writes its subsection of BENCHMARKS.md (section 1) unless --no-md. Waits for an idle machine (at most --max-wait s)
unless --no-wait.

Example:     .venv/bin/python bench/preprocess_e2e_bench.py --images 5120
Quick check: .venv/bin/python bench/preprocess_e2e_bench.py --images 40 --rounds 1 --no-wait --no-md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

from colorspark.splits import SPLITS  # noqa: E402

KEY = "preprocess-e2e"
TARGET = 0.6


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=5120, help="replicated input images (default 5120)")
    p.add_argument("--subdirs", type=int, default=4, help="subfolders of the replica set (default 4)")
    p.add_argument("--photos", default=str(C.PHOTOS), help="source photos (default ../shared/data/photos)")
    p.add_argument("--workdir", default="/tmp/colorspark-bench/preprocess-e2e", help="temp folder for inputs/outputs")
    p.add_argument("--rounds", type=int, default=2, help="alternating Spark/plain rounds (default 2)")
    C.machine_args(p, max_wait=1200)
    return p.parse_args()


def parquet_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in Path(folder).rglob("*.parquet"))


# (a) and (a'): what each is, and its spark-submit settings
SPARK_SETTINGS = {"a": ("as the README runs it", ["--properties-file", "conf/spark-local.conf"]),
                  "a'": ("with bare settings, as before", ["--master", "local[2]", "--driver-memory", "2g"])}


def spark_cmd(variant: str, zip_path: Path, input_dir: Path, out: Path) -> list[str]:
    return [os.path.relpath(C.SPARK_SUBMIT, C.ROOT), *SPARK_SETTINGS[variant][1], "--py-files",
            os.path.relpath(zip_path, C.ROOT), "jobs/preprocess.py", "--input", str(input_dir), "--output", str(out),
            "--format", "parquet"]


def run_spark(variant: str, work: Path, zip_path: Path, input_dir: Path, tag: str) -> dict:
    out = work / "spark-out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = spark_cmd(variant, zip_path, input_dir, out)
    seconds, cpu = C.timed_user_run(cmd, work / f"spark-{tag}.log")
    manifest = json.loads((out / "manifest.json").read_text())
    rows = parquet_rows(out / "parquet")
    crops = sum(manifest[f"{split}_crops"] for split in SPLITS)
    if rows != crops:
        raise SystemExit(f"Spark wrote {rows} Parquet rows, its manifest says {crops}")
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "job_s": manifest["seconds"], "ok": manifest["ok"], "errors": manifest["errors"],
            "rows": rows, "cpu": cpu, "cmd": cmd}


def run_plain(work: Path, lists: list[Path], input_dir: Path, centres: Path, config: dict) -> dict:
    out = work / "plain-out"
    shutil.rmtree(out, ignore_errors=True)
    d = config["data"]
    seconds, parts, cpu = C.plain_processes("plain_preprocess.py", [
        ["--list", str(lst), "--root", str(input_dir), "--out", str(out), "--part", str(k), "--centres", str(centres),
         "--size", str(d["size"]), "--crops", str(d["crops"]), "--min-scale", str(d["min_crop_scale"]), "--seed",
         str(d["seed"]), "--val-fraction", str(d["val_fraction"]), "--gray-chroma", str(d["gray_chroma"])]
        for k, lst in enumerate(lists)])
    rows = parquet_rows(out)
    if rows != sum(p["rows"] for p in parts):
        raise SystemExit(f"plain wrote {rows} Parquet rows, its processes report {sum(p['rows'] for p in parts)}")
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "ok": sum(p["ok"] for p in parts), "errors": sum(p["errors"] for p in parts),
            "rows": rows, "in_process_s": [p["seconds"] for p in parts], "cpu": cpu}


def main():
    args = parse_args()
    import numpy as np

    from colorspark import bins
    from colorspark import config as config_mod

    config = config_mod.load(None, [])
    work, idle, info, cmd, zip_path = C.start_bench(args)
    files = C.replicate(work / "input", args.images, args.subdirs, photos=Path(args.photos), log=C.say)
    input_dir = work / "input"
    input_mb = sum(f.stat().st_size for f in files) / 1e6
    centres = work / "centres.npy"
    np.save(centres, np.asarray(bins.gamut_centres()))
    half = len(files) // 2
    lists = [work / "files-0.txt", work / "files-1.txt"]
    for lst, group in zip(lists, (files[:half], files[half:])):
        lst.write_text("".join(f"{f}\n" for f in group))
    C.say(f"[bench] {len(files)} input images ({input_mb:.0f} MB) in {input_dir}")

    rounds = []
    settle_timeout = min(300.0, args.max_wait)
    sides = [*SPARK_SETTINGS, "b"]
    for i in range(args.rounds):
        settled, spark = [], {}
        for side in sides[i % len(sides):] + sides[:i % len(sides)]:  # each side goes first in turn
            settled.append(C.settle(skip=args.no_wait, timeout=settle_timeout, log=C.say))
            if side == "b":
                plain = run_plain(work, lists, input_dir, centres, config)
                continue
            spark[side] = run_spark(side, work, zip_path, input_dir, side.replace("'", "p") + str(i + 1))
            C.say(f"[bench] round {i + 1}: ({side}) spark-submit {spark[side]['seconds']:.1f} s (job "
                  f"{spark[side]['job_s']:.1f} s, {spark[side]['ok']} ok, {spark[side]['rows']} rows; "
                  f"foreign cores {spark[side]['cpu']['foreign_cores']:.2f})")
        spark = {variant: spark[variant] for variant in SPARK_SETTINGS}
        ratios = {variant: plain["seconds"] / run["seconds"] for variant, run in spark.items()}
        C.say(f"[bench] round {i + 1}: plain 2 processes {plain['seconds']:.1f} s ({plain['ok']} ok, "
              f"{plain['rows']} rows; foreign cores {plain['cpu']['foreign_cores']:.2f}); ratio plain/spark "
              + ", ".join(f"({variant}) {r:.2f}" for variant, r in ratios.items()))
        rounds.append({"spark": spark, "plain": plain, "ratios": ratios, "settle": settled})
    ratios = {variant: sum(r["plain"]["seconds"] for r in rounds) / sum(r["spark"][variant]["seconds"] for r in rounds)
              for variant in SPARK_SETTINGS}
    C.say(f"[bench] plain/spark over {len(rounds)} rounds: "
          + ", ".join(f"({variant}) {r:.2f}" for variant, r in ratios.items()) + f" (target >= {TARGET})")
    result = {"args": vars(args), "machine": info, "idle": idle, "rounds": rounds, "ratios": ratios,
              "images": len(files), "input_mb": input_mb, "command": cmd}
    C.write_json(work / "result.json", result)
    if not args.no_md:
        C.md_update(KEY, render_md(args, info, idle, cmd, result, zip_path, input_dir))
        C.say(f"[bench] updated {C.BENCHMARKS_MD}")


def render_md(args, info, idle, cmd, res, zip_path, input_dir) -> str:
    rounds = res["rounds"]
    lines = ["### 1b. Cold end to end: `spark-submit jobs/preprocess.py` vs. a plain script "
             "(`bench/preprocess_e2e_bench.py`)\n", C.machine_block(info, idle, cmd)]
    lines.append(f"- input: {res['images']} JPEGs ({res['input_mb']:.0f} MB), the shared photos ×"
                 f"{res['images'] // len(C.photo_files(Path(args.photos)))} in `{input_dir}` ({args.subdirs} "
                 f"subfolders); default config (64 px, 4 crops)")
    for variant, (what, _) in SPARK_SETTINGS.items():
        text = " ".join(spark_cmd(variant, zip_path, Path(input_dir), Path(args.workdir) / "spark-out"))
        lines.append(f"- ({variant}) {what}: `PYSPARK_PYTHON=.venv/bin/python {text}`, launch to exit")
    lines.append("- (b) `bench/plain_preprocess.py` (Pillow, scikit-image `rgb2lab`, NumPy, pyarrow; no Spark, no "
                 "colorspark; bin centres from a .npy written before timing) as 2 processes over the two halves of "
                 "the file list, one BLAS thread each (`OMP_NUM_THREADS=1`, as Spark's Python workers get), launch "
                 "of both to exit of both; its rows equal the job's (same crops, bins and ab; L within 1 code)\n")
    rows = []
    for i, r in enumerate(rounds):
        p = r["plain"]
        for variant, s in r["spark"].items():
            rows.append([f"round {i + 1}", f"({variant})", f"{s['seconds']:.1f}", f"{s['job_s']:.1f}",
                         f"{s['seconds'] - s['job_s']:.1f}", f"{p['seconds']:.1f}",
                         " / ".join(f"{x:.1f}" for x in p["in_process_s"]), f"{r['ratios'][variant]:.2f}",
                         f"{s['cpu']['our_cpu_s']:.1f} / {p['cpu']['our_cpu_s']:.1f}",
                         f"{s['cpu']['foreign_cores']:.2f} / {p['cpu']['foreign_cores']:.2f}"])
    lines.append(C.md_table(["", "Spark side", "spark-submit s", "of which `preprocess.run` s", "JVM, session, Python "
                             "start, shutdown s", "(b) plain 2 processes s", "(b) each process, in-process s",
                             "plain/spark", "CPU s Spark / (b)", "foreign cores Spark / (b)"], rows))
    last = rounds[-1]
    p0 = last["plain"]
    lines.append(f"\nAll sides: {p0['ok']} images, "
                 + ", ".join(f"{s['rows']} Parquet rows ({v})" for v, s in last["spark"].items())
                 + f" and {p0['rows']} (b), checked after each run. Cores used on average in the last round: "
                 + ", ".join(f"({v}) {s['cpu']['our_cores']:.2f}" for v, s in last["spark"].items())
                 + f", (b) {p0['cpu']['our_cores']:.2f}.\n")
    for variant in SPARK_SETTINGS:
        ratio = res["ratios"][variant]
        lines.append(f"**({variant}) plain/spark ≥ {TARGET}: {'met' if ratio >= TARGET else 'NOT met'}** — "
                     f"{ratio:.2f} over {len(rounds)} rounds ("
                     + ", ".join(f"{r['plain']['seconds']:.1f} s / {r['spark'][variant]['seconds']:.1f} s"
                                 for r in rounds) + ").\n")
    lines.append("Previously 0.27 = 17.7 s / 64.4 s (the issue's measurement).\n")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
