"""spark-submit driver of bench/scaling_bench.py: the training runs of --runs, one after another.

Each run is `colorspark.training.run` (the train job's body) on the preprocessed data with its own overrides
(workers, sync period, optimizer state, learning-rate scaling, outer momentum, warm-up); its history.json gives, per
round, the samples seen, the validation loss and colour metrics, and where the fit's time went. The bench gives each
run an application of its own: runs sharing Python workers were measured to slow each other's tasks (the workers keep
what earlier runs built).
Not meant to be run by hand; see `bench/scaling_bench.py --help`.
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
from colorspark import training  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--runs", required=True, help="JSON file: [{name, overrides: [SECTION.KEY=VALUE, ...]}, ...]")
    p.add_argument("--result", required=True)
    args = p.parse_args()
    results = []
    with _sparkprobe.driver_session("bench-scaling", probe=False) as (spark, _):
        for run in json.loads(Path(args.runs).read_text()):
            config = config_mod.load(None, run["overrides"])
            model_dir = Path(args.work) / "models" / run["name"]
            shutil.rmtree(model_dir, ignore_errors=True)
            started = time.time()
            training.run(spark, args.data, str(model_dir), config)
            history = json.loads((model_dir / "history.json").read_text())
            results.append({**run, "seconds": time.time() - started, "history": history})
            print(f"[driver] {run['name']}: {time.time() - started:.0f} s, val loss "
                  f"{[round(h['val_loss'], 3) for h in history]}", flush=True)
            Path(args.result).write_text(json.dumps(results, indent=2, default=float))

if __name__ == "__main__":
    main()
