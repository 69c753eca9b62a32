#!/usr/bin/env python
"""Cold end-to-end colorizing: `spark-submit jobs/colorize.py` against a plain two-process script, start to exit.

  (a) Spark: `spark-submit --master local[2] --driver-memory 2g --py-files dist/colorspark-0.1.0.zip
      jobs/colorize.py --input DIR --output OUT` (PYSPARK_PYTHON=.venv/bin/python, the shipped model, default
      config: JPEG + lab8 .npy per image, results, summary, report), timed from launch to exit: JVM start, session,
      Python workers, the job, shutdown.
  (b) Plain: bench/plain_colorize.py (Keras; scikit-image's Lab conversions; Pillow's decode, bilinear resizes and
      JPEG encode; no Spark, no colorspark; JPEGs only) as two processes over the two halves of the file list, timed
      from launching both to both exiting.
Two scenarios (issue 11): `large`, 600 gray photos of about 0.4 MP (target: (b)/(a) >= 1.2), and `first-run`,
1,200 gray photos of about 0.13 MP (target: (b)/(a) >= 0.85). The sides alternate for --rounds rounds, each after
the machine has settled. Writes its section of BENCHMARKS.md unless --no-md; waits for an idle machine unless
--no-wait.

Example:     .venv/bin/python bench/colorize_e2e_bench.py
Quick check: .venv/bin/python bench/colorize_e2e_bench.py --scenario large --images 40 --rounds 1 --no-wait --no-md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

KEY = "colorize-e2e"
# The shared photos average 0.13 MP (at most 512 px): "large" scales them by 1.75 to about 0.4 MP.
SCENARIOS = {"large": {"images": 600, "max_side": 0, "scale": 1.75, "target": 1.2},
             "first-run": {"images": 1200, "max_side": 0, "scale": 1.0, "target": 0.85}}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: both")
    p.add_argument("--images", type=int, help="override the scenario's image count (quick checks)")
    p.add_argument("--model", default=str(C.ROOT / "models" / "small"))
    p.add_argument("--workdir", default="/tmp/colorspark-bench/colorize-e2e")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override for the job")
    C.machine_args(p, max_wait=1200)
    return p.parse_args()


def spark_cmd(zip_path: Path, input_dir: Path, out: Path, model: str, overrides: list[str]) -> list[str]:
    sets = [item for text in overrides for item in ("--set", text)]
    return [os.path.relpath(C.SPARK_SUBMIT, C.ROOT), "--master", "local[2]", "--driver-memory", "2g", "--py-files",
            os.path.relpath(zip_path, C.ROOT), "jobs/colorize.py", "--input", str(input_dir), "--output", str(out),
            "--model", model, *sets]


def run_spark(work: Path, zip_path: Path, input_dir: Path, args, tag: str) -> dict:
    out = work / "spark-out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = spark_cmd(zip_path, input_dir, out, args.model, args.overrides)
    seconds, cpu = C.timed_user_run(cmd, work / f"spark-{tag}.log")
    summary = json.loads((out / "summary.json").read_text())
    jpegs = sum(1 for _ in (out / "jpeg").rglob("*.jpg"))
    if jpegs != summary["ok"]:
        raise SystemExit(f"Spark wrote {jpegs} JPEGs, its summary says {summary['ok']} ok")
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "job_s": summary["seconds"], "ok": summary["ok"], "cpu": cpu, "cmd": cmd}


def run_plain(work: Path, lists: list[Path], input_dir: Path, model: str) -> dict:
    out = work / "plain-out"
    shutil.rmtree(out, ignore_errors=True)
    seconds, parts, cpu = C.plain_processes("plain_colorize.py", [
        ["--list", str(lst), "--root", str(input_dir), "--out", str(out), "--model", model] for lst in lists])
    jpegs = sum(1 for _ in out.rglob("*.jpg"))
    if jpegs != sum(p["ok"] for p in parts):
        raise SystemExit(f"plain wrote {jpegs} JPEGs, its processes report {sum(p['ok'] for p in parts)}")
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "ok": jpegs, "in_process_s": [p["seconds"] for p in parts], "cpu": cpu}


def run_scenario(name: str, args, work: Path, zip_path: Path) -> dict:
    spec = dict(SCENARIOS[name], images=args.images or SCENARIOS[name]["images"])
    folder = work / name
    input_dir = folder / "input"
    files = C.replicate(input_dir, spec["images"], gray=True, max_side=spec["max_side"], scale=spec["scale"],
                        log=C.say)
    half = len(files) // 2
    lists = [folder / "files-0.txt", folder / "files-1.txt"]
    for lst, group in zip(lists, (files[:half], files[half:])):
        lst.write_text("".join(f"{f}\n" for f in group))
    from PIL import Image

    megapixels = sum(Image.open(f).size[0] * Image.open(f).size[1] for f in files) / len(files) / 1e6
    rounds = []
    for i in range(args.rounds):
        C.settle(skip=args.no_wait, timeout=min(300.0, args.max_wait), log=C.say)
        spark = run_spark(folder, zip_path, input_dir, args, f"{i + 1}")
        C.settle(skip=args.no_wait, timeout=min(300.0, args.max_wait), log=C.say)
        plain = run_plain(folder, lists, input_dir, args.model)
        ratio = plain["seconds"] / spark["seconds"]
        C.say(f"[bench] {name} round {i + 1}: spark-submit {spark['seconds']:.1f} s (job {spark['job_s']:.1f} s), "
              f"plain {plain['seconds']:.1f} s: plain/spark {ratio:.2f}")
        rounds.append({"spark": spark, "plain": plain, "ratio": ratio})
    ratio = sum(r["plain"]["seconds"] for r in rounds) / sum(r["spark"]["seconds"] for r in rounds)
    return {"name": name, **spec, "megapixels": megapixels, "rounds": rounds, "ratio": ratio, "input": str(input_dir)}


def main():
    args = parse_args()
    work, idle, info, cmd, zip_path = C.start_bench(args)
    results = [run_scenario(name, args, work, zip_path) for name in (args.scenario or list(SCENARIOS))]
    C.write_json(work / "result.json", {"machine": info, "idle": idle, "scenarios": results, "command": cmd})
    for res in results:
        C.say(f"[bench] {res['name']}: plain/spark {res['ratio']:.2f} (target >= {res['target']})")
    if not args.no_md:
        C.md_update(KEY, render_md(args, info, idle, cmd, results, zip_path))


def render_md(args, info, idle, cmd, results, zip_path) -> str:
    lines = ["## 3c. Colorize cold, end to end: `spark-submit jobs/colorize.py` vs. a plain script "
             "(`bench/colorize_e2e_bench.py`)\n", C.machine_block(info, idle, cmd)]
    lines.append("- (a) `PYSPARK_PYTHON=.venv/bin/python " + " ".join(spark_cmd(zip_path, Path("INPUT"),
                 Path("OUT"), os.path.relpath(args.model, C.ROOT), args.overrides)) + "`, launch to exit; default "
                 "outputs (JPEG + lab8 .npy per image, results, summary, report)")
    lines.append("- (b) `bench/plain_colorize.py` (Keras, scikit-image rgb2lab/lab2rgb, Pillow decode, bilinear "
                 "resizes and JPEG; JPEGs only) as 2 processes over the two halves of the file list, 1 TensorFlow and "
                 "BLAS thread each, launch of both to exit of both")
    lines.append(f"- model (both sides): {C.describe_model(args.model)}\n")
    rows = []
    for res in results:
        for i, r in enumerate(res["rounds"]):
            s, p = r["spark"], r["plain"]
            rows.append([res["name"], f"{res['images']} × {res['megapixels']:.2f} MP", i + 1, f"{s['seconds']:.1f}",
                         f"{s['job_s']:.1f}", f"{s['seconds'] - s['job_s']:.1f}", f"{p['seconds']:.1f}",
                         f"{r['ratio']:.2f}"])
    lines.append(C.md_table(["scenario", "inputs", "round", "(a) spark-submit s", "of which `colorize.run` s",
                             "JVM, session, shutdown s", "(b) plain 2 processes s", "plain/spark"], rows))
    lines.append("")
    for res in results:
        met = res["ratio"] >= res["target"]
        lines.append(f"- **{res['name']}: plain/spark {res['ratio']:.2f} over {len(res['rounds'])} rounds, target ≥ "
                     f"{res['target']}: {'met' if met else 'NOT met'}**")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
