#!/usr/bin/env python
"""Per-image cost of colorizing through the DataFrame API against the colorize job, on the same photos.

One spark-submit session on `local[2]` (bench/api_driver.py) warms both paths up, then alternates them:
  job:  `colorspark.colorize.run` (JPEG + lab8 .npy files, thumbnails, results, summary, report);
  api:  `spark.read.format("binaryFile")` -> `colorspark.colorize_dataframe` -> a Parquet table of JPEG and lab8
        bytes (the example in docs/dataframe-api.md).
Inputs: --images gray JPEGs replicated from the shared photos, at most --max-side px (0.13 MP by default).
Target: the API's seconds per image within 10 % of the job's (the median of --repeats runs each; the machine is
shared and a single pass swings by 20 %). Writes its section of
BENCHMARKS.md unless --no-md. Waits for an idle machine unless --no-wait.

Example:     .venv/bin/python bench/api_bench.py
Quick check: .venv/bin/python bench/api_bench.py --images 64 --repeats 1 --no-wait --no-md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

KEY = "colorize-api"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=640)
    p.add_argument("--max-side", type=int, default=420, help="longest side of the replicas (420: about 0.13 MP)")
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--model", default=str(C.ROOT / "models" / "small"))
    p.add_argument("--workdir", default="/tmp/colorspark-bench/api")
    C.machine_args(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    work, idle, info, cmd, zip_path = C.start_bench(args)
    photos = work / f"gray-{args.images}-{args.max_side}"
    C.replicate(photos, args.images, gray=True, max_side=args.max_side, log=C.say)
    warmup = work / "warmup"
    C.replicate(warmup, 16, gray=True, max_side=args.max_side, log=C.say)
    result, _, cpu, seconds = C.driver_phase(
        Path(__file__).with_name("api_driver.py"),
        ["--input", photos, "--warmup", warmup, "--output", work / "out", "--model", args.model,
         "--repeats", args.repeats], work=work, tag="-api", master="local[2]", zip_path=zip_path)
    import statistics

    per_image = {name: statistics.median(r["seconds"] / max(r["images"], 1) * 1000 for r in result["runs"]
                                         if r["name"] == name) for name in ("job", "api")}
    ratio = per_image["api"] / per_image["job"]
    C.say(f"[bench] ms per image: job {per_image['job']:.1f}, api {per_image['api']:.1f} (api/job {ratio:.2f})")
    if args.no_md:
        return
    rows = [[r["name"], r["repeat"], r["images"], f"{r['seconds']:.2f}",
             f"{r['seconds'] / max(r['images'], 1) * 1000:.1f}"] for r in result["runs"]]
    body = "\n".join([
        "## 3b. Colorize through the DataFrame API (`bench/api_bench.py`)\n",
        C.machine_block(info, idle, cmd),
        f"- inputs: {args.images} gray JPEGs (the shared photos replicated, ≤ {args.max_side} px); model "
        f"{C.describe_model(args.model)}; master `local[2]`; one session, both paths warmed up first, then "
        "alternated\n",
        C.md_table(["path", "repeat", "images", "seconds", "ms per image"], rows),
        "",
        f"**Median of each: job {per_image['job']:.1f} ms per image, API {per_image['api']:.1f} ms per image: the "
        f"API costs {ratio:.2f}× the job's** (target ≤ 1.10). The job also writes thumbnails, the results table, the "
        f"summary and the report; the API writes one Parquet table with the JPEG and lab8 bytes.",
    ])
    C.md_update(KEY, body)


if __name__ == "__main__":
    main()
