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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sparkprobe  # noqa: E402
from colorspark import config as config_mod  # noqa: E402
from colorspark import preprocess  # noqa: E402
from colorspark.runtime import build_spark_session, setup_logging  # noqa: E402


def _probe(index, rows, work):
    """mapPartitions body run in the Python workers: how long the partition takes inside Python, in which process,
    and whether the per-process lazy tables (bins) were already built there."""
    import os
    import time

    t_enter = time.time()
    from colorspark import bins

    warm = bins.gamut_centres.cache_info().currsize > 0 and bins._nearest_table.cache_info().currsize > 0
    n, first = 0, None
    a = time.perf_counter()
    for r in rows:
        if first is None:
            first = time.perf_counter() - a
        n += 1
    b = time.perf_counter()
    w = 0.0
    if work == "bins":
        bins.bin_counts(np.zeros(16, np.int16))
        w = time.perf_counter() - b
    return [{"pid": os.getpid(), "index": index, "rows": n, "enter": t_enter, "iterate_s": b - a,
             "first_row_s": first, "work_s": w, "warm_before": warm, "end": time.time()}]


def diagnose(spark, out: Path, input_path: str):
    """Where the time of the Python passes over the cached samples goes (preprocess.run's HDF5 and prior jobs are such
    passes): the same rows, cached with the same partition count, passed through mapPartitions bodies that do nothing
    (iterate only) or only touch the lazily built bin tables. Also one pass over the raw binaryFile listing."""
    from pyspark import StorageLevel

    from colorspark.listing import list_images

    sc = spark.sparkContext
    files = list_images(spark, input_path, ["jpg", "jpeg", "png"])
    parts = files.rdd.getNumPartitions()
    frame = spark.read.parquet(str(out / "parquet")).repartition(parts).persist(StorageLevel.MEMORY_AND_DISK)
    n_rows = frame.count()
    res = {"partitions": parts, "rows": n_rows, "passes": []}
    for label, work, src in (("iterate cached sample rows", "none", frame),
                             ("iterate again (warm workers)", "none", frame),
                             ("iterate + bin_counts once per partition", "bins", frame),
                             ("iterate raw binaryFile rows (path, content)", "none", files.select("path", "content"))):
        _sparkprobe.set_phase(sc, "diagnose")
        a = time.time()
        recs = src.rdd.mapPartitionsWithIndex(lambda i, rows, w=work: _probe(i, rows, w)).collect()
        b = time.time()
        res["passes"].append({"label": label, "wall_s": b - a, "start": a, "end": b, "tasks": len(recs),
                              "pids": len({r["pid"] for r in recs}),
                              "python_iterate_s": sum(r["iterate_s"] for r in recs),
                              "python_first_row_s": sum(r["first_row_s"] or 0 for r in recs),
                              "python_work_s": sum(r["work_s"] for r in recs),
                              "cold_tasks": sum(1 for r in recs if not r["warm_before"]),
                              "rows": sum(r["rows"] for r in recs)})
        print(f"[driver] diagnose {label}: {b - a:.2f} s, {len(recs)} tasks in "
              f"{len({r['pid'] for r in recs})} Python processes", flush=True)
    frame.unpersist()
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--diagnose", action="store_true", help="time Python passes over cached rows (see diagnose)")
    args = p.parse_args()
    setup_logging("bench-preprocess")
    config = config_mod.load(None, args.overrides)
    t_session = time.time()
    spark = build_spark_session("bench-preprocess", tensorflow_workers=False)
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
        if args.diagnose and runs:
            result["diagnosis"] = diagnose(spark, Path(runs[-1]["output"]), args.input)
    finally:
        spark.stop()
    Path(args.result).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
