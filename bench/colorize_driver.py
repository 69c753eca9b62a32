"""spark-submit driver of bench/colorize_bench.py: times `colorspark.colorize.run` once the session is up.

--run NAME=INPUT (repeatable) runs the real job body on INPUT into OUTPUT/NAME, in order, in one session; the first
run starts the Python workers and builds the model in them, later runs reuse both. --run-set NAME:SECTION.KEY=VALUE
overrides the config of one run.
Not meant to be run by hand; see `bench/colorize_bench.py --help`.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sparkprobe  # noqa: E402

from colorspark import colorize  # noqa: E402
from colorspark import config as config_mod  # noqa: E402
from colorspark.paths import InputLocation  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--run", action="append", required=True, help="NAME=INPUT")
    p.add_argument("--output", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--run-set", action="append", default=[], help="NAME:SECTION.KEY=VALUE, for one run")
    args = p.parse_args()
    per_run = {}
    for spec in args.run_set:
        name, _, override = spec.partition(":")
        per_run.setdefault(name, []).append(override)
    config = config_mod.load(None, args.overrides)
    runs = []
    with _sparkprobe.driver_session("bench-colorize") as (spark, facts):
        sc = spark.sparkContext
        for spec in args.run:
            name, _, input_path = spec.partition("=")
            out = Path(args.output) / name
            shutil.rmtree(out, ignore_errors=True)
            _sparkprobe.set_phase(sc, name)
            a = time.time()
            run_config = config_mod.load(None, args.overrides + per_run.get(name, []))
            summary = colorize.run(spark, InputLocation.parse(input_path), str(out), args.model, run_config)
            b = time.time()
            _sparkprobe.set_phase(sc, None)
            runs.append({"name": name, "input": input_path, "output": str(out), "start": a, "end": b,
                         "seconds": b - a, "summary": summary})
            print(f"[driver] {name}: {summary['ok']} ok in {b - a:.2f} s", flush=True)
    Path(args.result).write_text(json.dumps({**facts, "runs": runs, "config": config}, indent=2, default=str))

if __name__ == "__main__":
    main()
