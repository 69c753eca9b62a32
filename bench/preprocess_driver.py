"""spark-submit driver of bench/preprocess_bench.py: times `colorspark.preprocess.run` once the session is up.

Runs the real job body `--runs` times on the same input (run 1 is what a user's job sees after start-up: the Python
worker daemon is started during it; later runs reuse the warm workers) and writes the timings as JSON.
Not meant to be run by hand; see `bench/preprocess_bench.py --help`.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sparkprobe  # noqa: E402
from colorspark import config as config_mod  # noqa: E402
from colorspark import preprocess  # noqa: E402
from colorspark.runtime import build_spark_session, setup_logging  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    setup_logging("bench-preprocess")
    config = config_mod.load(None, args.overrides)
    t_session = time.time()
    spark = build_spark_session("bench-preprocess")
    sc = spark.sparkContext
    session_s = time.time() - t_session
    _sparkprobe.install()
    runs = []
    try:
        for i in range(args.runs):
            out = Path(args.output) / f"run{i + 1}"
            shutil.rmtree(out, ignore_errors=True)
            _sparkprobe.set_phase(sc, f"run{i + 1}")
            t0 = time.time()
            manifest = preprocess.run(spark, args.input, str(out), config)
            t1 = time.time()
            _sparkprobe.set_phase(sc, None)
            runs.append({"run": i + 1, "start": t0, "end": t1, "seconds": t1 - t0, "inputs": manifest["inputs"],
                         "ok": manifest["ok"], "errors": manifest["errors"],
                         "crops": manifest["train_crops"] + manifest["val_crops"],
                         "hdf5_shards": len(manifest["hdf5_shards"]), "output": str(out)})
            print(f"[driver] run {i + 1}: {manifest['ok']} images in {t1 - t0:.2f} s", flush=True)
        result = {"session_s": session_s, "runs": runs, "app_id": sc.applicationId,
                  "default_parallelism": sc.defaultParallelism, "config": config}
    finally:
        spark.stop()
    Path(args.result).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
