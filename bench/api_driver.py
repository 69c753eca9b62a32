"""spark-submit driver of bench/api_bench.py: the colorize job and `colorize_dataframe` over the same photos, in
one session, alternating, after a warm-up of both (Python workers started, model built in them).

Not meant to be run by hand; see `bench/api_bench.py --help`.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sparkprobe  # noqa: E402

import colorspark  # noqa: E402
from colorspark import colorize  # noqa: E402
from colorspark import config as config_mod  # noqa: E402
from colorspark.paths import InputLocation  # noqa: E402


def job_pass(spark, input_path: str, out: Path, model: str, config: dict) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    started = time.time()
    summary = colorize.run(spark, InputLocation.parse(input_path), str(out), model, config)
    return {"seconds": time.time() - started, "images": summary["ok"]}


def api_pass(spark, input_path: str, out: Path, model: str) -> dict:
    """What a user's pipeline does: list with binaryFile, colorize, write a Parquet table of the results."""
    shutil.rmtree(out, ignore_errors=True)
    started = time.time()
    photos = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(input_path)
    colorized = colorspark.colorize_dataframe(photos, model=model)
    colorized.drop("content").write.parquet(str(out))
    seconds = time.time() - started
    ok = spark.read.parquet(str(out)).where("status = 'ok'").count()
    return {"seconds": seconds, "images": ok}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--warmup", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--result", required=True)
    args = p.parse_args()
    config = config_mod.load()
    out = Path(args.output)
    runs = []
    with _sparkprobe.driver_session("bench-colorize-api", probe=False) as (spark, _):
        job_pass(spark, args.warmup, out / "warm-job", args.model, config)
        api_pass(spark, args.warmup, out / "warm-api", args.model)
        for repeat in range(args.repeats):
            for name in ("job", "api") if repeat % 2 == 0 else ("api", "job"):
                run = (job_pass(spark, args.input, out / name, args.model, config) if name == "job" else
                       api_pass(spark, args.input, out / name, args.model))
                runs.append({"name": name, "repeat": repeat, **run})
                print(f"[driver] {name} #{repeat}: {run['images']} images in {run['seconds']:.2f} s", flush=True)
    Path(args.result).write_text(json.dumps({"runs": runs}, indent=2))

if __name__ == "__main__":
    main()
