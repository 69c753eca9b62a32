"""spark-submit driver of bench/train_bench.py: Elephas training rounds, timed after the SparkSession is up.

`colorspark.training.run` for --rounds rounds (the job body as shipped); its history gives each round's Elephas fit
time (fit_seconds), the full round time (fit + validation + checkpoint), and where the fit's time went (the averaging
workers' set-up, window reading and training seconds, the Spark jobs, the driver's broadcast and averaging).
Not meant to be run by hand; see `bench/train_bench.py --help`.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sparkprobe  # noqa: E402

from colorspark import config as config_mod  # noqa: E402
from colorspark import training  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    config = config_mod.load(None, args.overrides)
    config = config_mod.merge(config, {"train": {"rounds": args.rounds}}, "bench")
    with _sparkprobe.driver_session("bench-train") as (spark, facts):
        sc = spark.sparkContext
        result = {**facts, "config": config}
        if args.rounds:
            _sparkprobe.set_phase(sc, "real")
            a = time.time()
            meta = training.run(spark, args.data, args.model_dir, config)
            b = time.time()
            _sparkprobe.set_phase(sc, None)
            history = json.loads((Path(args.model_dir) / "history.json").read_text())
            result["real"] = {"start": a, "end": b, "seconds": b - a, "history": history,
                              "rounds_done": meta["rounds_done"]}
            print(f"[driver] training.run: {b - a:.1f} s, fit_seconds "
                  f"{[h['fit_seconds'] for h in history]}", flush=True)
    Path(args.result).write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
