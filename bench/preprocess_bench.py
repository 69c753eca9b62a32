#!/usr/bin/env python
"""Preprocessing throughput: the Spark job on local[2] vs. the same per-image function in one plain process.

  (a) Spark: `colorspark.preprocess.run` in a spark-submit driver (bench/preprocess_driver.py), timed after the
      SparkSession is up (JVM/session start-up excluded). Run 1 starts the Python workers; run 2 is warm.
  (b) Plain Python: `colorspark.preprocess.process_image` on each file's bytes, sequentially, one process, x2 for the
      two cores. Target: (a) / (2 * b) >= 0.85.
  Also: a per-image cost breakdown (read, decode, crops, Lab, quantise, hard bins, byte packing, Parquet+HDF5 write),
  the Spark run split by job (from Spark's event log), and a 2-process multiprocessing reference (what two cores
  really give outside Spark).

Inputs: the shared photos replicated into /tmp (copies with distinct names in --subdirs subfolders).
Writes its section of BENCHMARKS.md unless --no-md. Waits for an idle machine unless --no-wait.

Example:  .venv/bin/python bench/preprocess_bench.py --images 1280
Quick check: .venv/bin/python bench/preprocess_bench.py --images 40 --no-wait --no-md
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

KEY = "preprocess"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1280, help="replicated input images (default 1280, >= 1000 for "
                                                            "the recorded figures)")
    p.add_argument("--subdirs", type=int, default=4, help="subfolders of the replica set (default 4)")
    p.add_argument("--photos", default=str(C.PHOTOS), help="source photos (default ../shared/data/photos)")
    p.add_argument("--workdir", default="/tmp/colorspark-bench/preprocess", help="temp folder for inputs/outputs")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--spark-runs", type=int, default=2, help="preprocess.run calls in one session (default 2)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="config override for both sides, e.g. --set data.crops=8 (repeatable)")
    p.add_argument("--breakdown-images", type=int, default=0, help="images for the stage breakdown (0 = all)")
    p.add_argument("--no-pool", action="store_true", help="skip the 2-process multiprocessing reference")
    p.add_argument("--no-diagnose", action="store_true",
                   help="skip the Spark diagnosis passes (Python passes over the cached rows, after the runs)")
    p.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine (tests)")
    p.add_argument("--max-load", type=float, default=0.5, help="1-min load average counted as idle (default 0.5)")
    p.add_argument("--no-md", action="store_true", help="do not update BENCHMARKS.md")
    return p.parse_args()


# --- plain-process measurements ------------------------------------------------------------------------------------------

def _key(path: Path, root: Path) -> str:
    from colorspark.storage import relative_output_path

    return relative_output_path("file:" + str(path), str(root))


def one_time_init() -> float:
    """What every fresh Python worker pays once: the 313 bin centres (convex hull) and the 256x256 nearest-bin
    table used by hard_bins. Done before the timed loop so (b) measures the steady per-image cost."""
    from colorspark import bins

    t0 = time.perf_counter()
    bins.gamut_centres()
    bins._nearest_table()
    return time.perf_counter() - t0


def sequential(files, root, config):
    """(b): process_image on every file, in order, one process. Returns (seconds, rows, errors)."""
    from colorspark.decode import DecodeError
    from colorspark.preprocess import process_image

    rows, errors = [], 0
    keys = [_key(f, root) for f in files]
    t0 = time.perf_counter()
    for f, key in zip(files, keys):
        content = f.read_bytes()
        try:
            for r in process_image(content, key, config):
                rows.append({"path": "file:" + str(f), **r})
        except DecodeError:
            errors += 1
    return time.perf_counter() - t0, rows, errors


def _pool_work(job):
    path, key, config = job
    from colorspark.preprocess import process_image

    try:
        return process_image(Path(path).read_bytes(), key, config)
    except Exception:
        return []


def pool2(files, root, config):
    """2 worker processes (fork), rows returned to the parent like Spark ships them to the JVM."""
    import multiprocessing as mp

    jobs = [(str(f), _key(f, root), config) for f in files]
    t0 = time.perf_counter()
    n = 0
    with mp.get_context("fork").Pool(2) as pool:
        for rows in pool.imap_unordered(_pool_work, jobs, chunksize=8):
            n += len(rows)
    return time.perf_counter() - t0, n


def breakdown(files, root, config):
    """Per-stage ms per image: process_image runs unchanged while the functions it calls are timed in place
    (exclusive time; bench/_profile.py), so the split follows whatever colorspark.preprocess does today."""
    import _profile

    from colorspark import preprocess, samples

    prof = _profile.Profiler()
    prof.wrap(preprocess, "process_image", "pack")  # exclusive remainder: tobytes + row dicts
    prof.wrap(preprocess, "decode_image", "decode")
    prof.wrap(preprocess, "crop_rng", "rng_split")
    prof.wrap(preprocess, "split_of", "rng_split")
    prof.wrap(preprocess, "random_crops", "crops")
    prof.wrap(preprocess, "encode_crop", "quantise")  # exclusive remainder: L code, ab 4x4 mean, chroma
    prof.wrap(samples, "rgb_to_lab", "lab")
    prof.wrap(samples, "hard_bins", "hard_bins")
    n = 0
    with prof:
        for f in files:
            key = _key(f, root)
            a = time.perf_counter()
            content = f.read_bytes()
            prof.add("read", time.perf_counter() - a)
            try:
                preprocess.process_image(content, key, config)
            except Exception:
                continue
            n += 1
    once = prof.one_time()
    return {k: (v - once.get(k, 0.0)) / max(n, 1) * 1000.0 for k, v in prof.seconds.items()}, n


def write_stage(rows, out: Path, size: int, shards: int):
    """Write the same rows as Spark does: Parquet partitioned by split (pyarrow, snappy) and HDF5 shards (the real
    colorspark.preprocess.write_shard). Returns seconds for each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from colorspark.preprocess import write_shard

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cols = ["path", "crop", "l", "ab", "bins", "max_chroma", "colorful", "width", "height", "split"]
    t0 = time.perf_counter()
    table = pa.Table.from_pydict({c: [r[c] for r in rows] for c in cols})
    pq.write_to_dataset(table, str(out / "parquet"), partition_cols=["split"], compression="snappy")
    t1 = time.perf_counter()
    (out / "hdf5").mkdir()
    per = max(1, -(-len(rows) // shards))
    for i in range(0, len(rows), per):
        write_shard(i // per, rows[i:i + per], str(out / "hdf5"), size)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


# --- main ------------------------------------------------------------------------------------------------------------------

def spark_phase(args, work, zip_path, root):
    """One spark-submit of preprocess_driver.py; returns (driver result with per-run job tables, cpu, seconds)."""
    spark, elog, cpu, submit_s = C.driver_phase(
        C.BENCH / "preprocess_driver.py",
        ["--input", str(root), "--output", str(work / "spark-out"), "--runs", str(args.spark_runs)]
        + ([] if args.no_diagnose else ["--diagnose"]) + sum((["--set", o] for o in args.overrides), []),
        work=work, tag="", master=args.master, zip_path=zip_path)
    for r in spark["runs"]:
        r["ips"] = r["ok"] / r["seconds"]
        r["jobs"], r["jobs_wall"] = C.job_table(elog, r["start"], r["end"])
    for d in (spark.get("diagnosis") or {}).get("passes", []):
        stages = C.job_stages(elog, C.jobs_between(elog, d["start"], d["end"]))
        d["task_run_s"] = sum(st["run_s"] for st in stages)
        d["spark_tasks"] = sum(st["tasks"] for st in stages)
    shutil.rmtree(work / "spark-out", ignore_errors=True)
    return spark, cpu, submit_s


def main():
    args = parse_args()
    from colorspark import config as config_mod

    config = config_mod.load(None, args.overrides)
    work, idle, info, cmd, zip_path = C.start_bench(args)
    files = C.replicate(work / "input", args.images, args.subdirs, photos=Path(args.photos), log=C.say)
    root = work / "input"
    input_mb = sum(f.stat().st_size for f in files) / 1e6
    C.say(f"[bench] {len(files)} input images ({input_mb:.0f} MB), config data.size={config['data']['size']} "
          f"crops={config['data']['crops']}")

    # (a) Spark
    spark, spark_cpu, submit_s = spark_phase(args, work, zip_path, root)
    runs = spark["runs"]
    C.say("[bench] (a) Spark: " + ", ".join(f"run {r['run']} {r['seconds']:.1f} s = {r['ips']:.1f} img/s"
                                            for r in runs) + f" (session start {spark['session_s']:.1f} s, "
          f"spark-submit total {submit_s:.1f} s, foreign cores {spark_cpu['foreign_cores']:.2f})")

    # (b) plain Python, sequential
    settle1 = C.settle(skip=args.no_wait, log=C.say)
    init_s = one_time_init()
    C.say(f"[bench] one-time per-process init (bin centres + nearest-bin table): {init_s:.2f} s")
    mon = C.CpuMonitor().start()
    seq_s, rows, seq_err = sequential(files, root, config)
    seq_cpu = mon.stop()
    n_seq = len(files) - seq_err
    b1 = n_seq / seq_s
    C.say(f"[bench] (b) sequential process_image: {n_seq} images in {seq_s:.1f} s = {b1:.1f} img/s "
          f"(x2 = {2 * b1:.1f}); foreign cores {seq_cpu['foreign_cores']:.2f}")

    # stage breakdown
    sub = files[:args.breakdown_images] if args.breakdown_images else files
    stages, n_b = breakdown(sub, root, config)
    shards = runs[0].get("hdf5_shards") or 32
    pq_s, h5_s = write_stage(rows, work / "plain-out", config["data"]["size"], shards)
    stages["write_parquet"] = pq_s / n_seq * 1000
    stages["write_hdf5"] = h5_s / n_seq * 1000
    total_ms = sum(stages.values())
    C.say("[bench] per-image ms: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) + f"; sum {total_ms:.2f}")

    # 2-process reference
    pool = None
    if not args.no_pool:
        C.settle(skip=args.no_wait, log=C.say)
        mon = C.CpuMonitor().start()
        pool_s, pool_rows = pool2(files, root, config)
        pool_cpu = mon.stop()
        pool = {"seconds": pool_s, "ips": n_seq / pool_s, "foreign_cores": pool_cpu["foreign_cores"]}
        C.say(f"[bench] (c) multiprocessing Pool(2): {pool['ips']:.1f} img/s")

    # figures
    a_cold, a_warm = runs[0]["ips"], runs[-1]["ips"]
    ratio_cold, ratio_warm = a_cold / (2 * b1), a_warm / (2 * b1)
    C.say(f"[bench] ratio (a)/(2*b1): run 1 {ratio_cold:.2f}, run {runs[-1]['run']} {ratio_warm:.2f} "
          f"(target >= 0.85)")
    result = {"args": vars(args), "machine": info, "idle": idle, "spark": spark, "spark_cpu": spark_cpu,
              "submit_s": submit_s, "sequential_s": seq_s, "b1": b1, "stages_ms": stages, "pool": pool,
              "ratio_cold": ratio_cold, "ratio_warm": ratio_warm, "seq_cpu": seq_cpu, "settle": settle1, "init_s": init_s,
              "event_jobs": {r["run"]: r["jobs"] for r in runs}}
    C.write_json(work / "result.json", result)

    if not args.no_md:
        C.md_update(KEY, render_md(args, info, idle, cmd, files, input_mb, config, runs, spark, spark_cpu, submit_s,
                                   seq_s, n_seq, b1, seq_cpu, stages, n_b, pool, ratio_cold, ratio_warm, init_s))
        C.say(f"[bench] updated {C.BENCHMARKS_MD}")


def render_md(args, info, idle, cmd, files, input_mb, config, runs, spark, spark_cpu, submit_s, seq_s, n_seq, b1,
              seq_cpu, stages, n_b, pool, ratio_cold, ratio_warm, init_s) -> str:
    size, crops = config["data"]["size"], config["data"]["crops"]
    target = 0.85
    lines = ["## 1. Preprocessing throughput (`bench/preprocess_bench.py`)\n", C.machine_block(info, idle, cmd)]
    lines.append(f"- input: {len(files)} JPEGs ({input_mb:.0f} MB) replicated from `../shared/data/photos` into "
                 f"`{args.workdir}/input` ({args.subdirs} subfolders); data.size={size}, data.crops={crops}, "
                 f"formats {'+'.join(config['output']['formats'])}; master `{args.master}`\n")
    lines.append("### Throughput\n")
    rows = []
    for r in runs:
        rows.append([f"(a) Spark `preprocess.run`, run {r['run']}" + (" (starts the Python workers)" if r["run"] == 1
                                                                       else " (warm workers)"),
                     f"{r['seconds']:.1f}", f"{r['ips']:.1f}", f"{r['ips'] / (2 * b1):.2f}"])
    rows.append(["(b) plain Python, sequential `process_image` (1 core)", f"{seq_s:.1f}", f"{b1:.1f}", "—"])
    rows.append(["(b) x 2 (ideal two cores)", "", f"{2 * b1:.1f}", "1.00"])
    if pool:
        rows.append(["(c) reference: `multiprocessing.Pool(2)` over `process_image`", f"{pool['seconds']:.1f}",
                     f"{pool['ips']:.1f}", f"{pool['ips'] / (2 * b1):.2f}"])
    lines.append(C.md_table(["measurement", "seconds", "images/s", "ratio to 2·(b)"], rows))
    met = ratio_cold >= target
    lines.append(f"\nSpark session start-up ({spark['session_s']:.1f} s) and the spark-submit JVM start are excluded; "
                 f"the whole spark-submit took {submit_s:.1f} s for {len(runs)} runs. CPU used by other processes "
                 f"while the phases ran: Spark {spark_cpu['foreign_cores']:.2f} cores, sequential "
                 f"{seq_cpu['foreign_cores']:.2f} cores"
                 + (f", pool {pool['foreign_cores']:.2f} cores" if pool else "") + ".\n")
    lines.append(f"**Target (a)/(2·b) ≥ {target}: {'met' if met else 'NOT met'}** — run 1 {ratio_cold:.2f}, "
                 f"warm run {ratio_warm:.2f}.\n")

    lines.append(f"### Per-image cost, plain Python (mean over {n_b} images, ms)\n")
    total = sum(stages.values())
    names = {"read": "read file", "decode": "decode (`decode_image`)", "rng_split": "crop RNG + split hash",
             "crops": f"resize/crop (`random_crops`, {crops} crops)", "lab": "Lab (`rgb_to_lab` in `encode_crop`)",
             "quantise": "L code + ab 4×4 mean + chroma (rest of `encode_crop`)", "hard_bins": "`hard_bins`",
             "pack": "byte packing (`tobytes`, row dicts: rest of `process_image`)", "write_parquet": "write Parquet (pyarrow, same rows)",
             "write_hdf5": "write HDF5 (`write_shard`, same rows)"}
    srt = sorted(stages.items(), key=lambda kv: -kv[1])
    lines.append(C.md_table(["stage", "ms / image", "share"],
                            [[names.get(k, k), f"{v:.2f}", f"{v / total:.0%}"] for k, v in srt]
                            + [["**sum**", f"{total:.2f}", "100%"]]))
    lines.append(f"\nThe sequential loop measured {1000 / b1:.2f} ms per image for process_image incl. file read "
                 f"(without writing), after a one-time per-process initialisation of {init_s:.2f} s (bin centres and the "
                 f"nearest-bin table, built lazily by the first `hard_bins` call; every new Spark Python worker pays "
                 f"it too). Largest stage: **{names.get(srt[0][0], srt[0][0])}** ({srt[0][1] / total:.0%}).\n")

    for r in (runs[0], runs[-1]) if len(runs) > 1 else runs:
        lines.append(f"### Spark run {r['run']} by job ({r['seconds']:.1f} s wall; jobs cover {r['jobs_wall']:.1f} s, "
                     f"the rest is driver-side Python/JVM work between jobs)\n")
        lines.append(C.job_md_table(r["jobs"]))
        lines.append("")
    diag = spark.get("diagnosis")
    if diag:
        lines.append(f"### Diagnosis: Python passes over cached rows ({diag['rows']} sample rows of the last run, "
                     f"re-read from its Parquet, cached in {diag['partitions']} partitions like the job's samples)\n")
        lines.append(C.md_table(
            ["pass (mapPartitions body)", "wall s", "Spark tasks", "Python processes", "tasks in a fresh process",
             "task run s (sum)", "time inside the Python body (sum)", "per-task overhead ms"],
            [[d["label"], f"{d['wall_s']:.2f}", d.get("spark_tasks", d["tasks"]), d["pids"], d["cold_tasks"],
              f"{d.get('task_run_s', float('nan')):.2f}", f"{d['python_iterate_s'] + d['python_work_s']:.2f}",
              f"{(d.get('task_run_s', 0) - d['python_iterate_s'] - d['python_work_s']) / max(d['tasks'], 1) * 1000:.0f}"]
             for d in diag["passes"]]))
        lines.append("")
    spark_ms = 2000.0 / runs[-1]["ips"]
    lines.append(f"Per image, the warm Spark run costs {spark_ms:.2f} core-ms (2 cores × wall / images) against "
                 f"{1000 / b1:.2f} ms of process_image and {total:.2f} ms including the writes in one plain process.\n")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
