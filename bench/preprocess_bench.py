#!/usr/bin/env python
"""Preprocessing throughput: the Spark job on local[2] vs. the same per-image function in one plain process.

  (a) Spark: `colorspark.preprocess.run` in a spark-submit driver (bench/preprocess_driver.py), timed after the
      SparkSession is up (JVM/session start-up excluded). Run 1 starts the Python workers; the later runs are warm.
  (b) Plain Python: `colorspark.preprocess_tasks.process_image` on each file's bytes, sequentially, one process
      (bench/preprocess_sequential.py), x2 for the two cores. The driver runs it between the Spark runs, while
      Spark idles, and each Spark run is compared with the (b) runs just before and after it: the machine's speed
      drifts by more than the gap between (a) and 2 * (b) from one minute to the next.
      Target: (a) warm / (2 * b) >= 0.85, the mean of the warm runs' paired ratios.
  (a') the same Spark run writing to a local S3 server (tests/s3server.py: moto on 127.0.0.1, in a process of its
      own; inputs stay on local disk, --output s3://bucket/...), in the same session after the local runs; reported
      as a time ratio to the warm local runs around it.
  Also: a per-image cost breakdown of the job's whole task body (`preprocess_tasks.process_files`, run in plain Python
  on the same partitions, writing Parquet and HDF5 like the tasks do; read, decode, crops, Lab, quantise, hard bins,
  prior counts, writes), the Spark runs split by job (from Spark's event log), a diagnosis of how the input files reach
  the tasks (the scan of the job's input frame in the JVM alone, no bytes on a local disk; then into Python through
  Arrow, fetching each file's bytes as the tasks do), and optionally a 2-process multiprocessing
  reference.

Inputs: the shared photos replicated into /tmp (copies with distinct names in --subdirs subfolders).
Writes its section of BENCHMARKS.md unless --no-md. Waits for an idle machine (at most --max-wait s) unless --no-wait.

Example:  .venv/bin/python bench/preprocess_bench.py --images 5120 --workdir /tmp/colorspark-bench/preprocess5k
Quick check: .venv/bin/python bench/preprocess_bench.py --images 40 --no-wait --no-md
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402
from preprocess_sequential import output_key  # noqa: E402

KEY = "preprocess"
TARGET = 0.85
PASS_ACTION = "toArrow"  # the processing pass is the job whose action is `preprocess.process`'s toArrow


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1280, help="replicated input images (default 1280, >= 1000 for "
                                                            "the recorded figures)")
    p.add_argument("--subdirs", type=int, default=4, help="subfolders of the replica set (default 4)")
    p.add_argument("--photos", default=str(C.PHOTOS), help="source photos (default ../shared/data/photos)")
    p.add_argument("--workdir", default="/tmp/colorspark-bench/preprocess", help="temp folder for inputs/outputs")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--properties-file", default="conf/spark-local.conf",
                   help="spark-submit --properties-file, as the README's commands pass it (default "
                        "conf/spark-local.conf; '' for none); --master overrides its spark.master, but its "
                        "127.0.0.1 addresses, C1-only JIT and 4g driver memory stay: for a non-local --master pass "
                        "a matching file or ''")
    p.add_argument("--spark-runs", type=int, default=3, help="preprocess.run calls to local disk, each warm one "
                                                             "between two runs of (b) (default 3)")
    p.add_argument("--s3-runs", type=int, default=1, help="preprocess.run calls to the local S3 server after them, "
                                                          "followed by one more local run (default 1; 0 = none)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="config override for both sides, e.g. --set data.crops=8 (repeatable)")
    p.add_argument("--breakdown-images", type=int, default=0, help="images for the stage breakdown (0 = all)")
    p.add_argument("--no-pool", action="store_true", help="skip the 2-process multiprocessing reference")
    p.add_argument("--no-diagnose", action="store_true",
                   help="skip the Spark diagnosis passes (input movement into Python, after the runs)")
    C.machine_args(p, max_wait=1200)
    args = p.parse_args()
    if args.spark_runs < 1 or args.s3_runs < 0:
        p.error("--spark-runs must be at least 1 and --s3-runs at least 0")
    if args.properties_file:
        given = Path(args.properties_file)
        found = given if given.is_absolute() or given.exists() else C.ROOT / given
        if not found.is_file():
            p.error(f"--properties-file {args.properties_file}: no such file")
        args.properties_file = str(found.resolve())
    return args


# --- plain-process measurements ---------------------------------------------------------------------------------------

def _pool_work(job):
    path, key, config = job
    from colorspark.preprocess_tasks import process_image

    try:
        return len(process_image(Path(path).read_bytes(), key, config))
    except Exception:
        return 0


def pool2(files, root, config):
    """2 worker processes (fork) over process_image, like (b) on two cores."""
    import multiprocessing as mp

    jobs = [(str(f), output_key(f, root), config) for f in files]
    t0 = time.perf_counter()
    n = 0
    with mp.get_context("fork").Pool(2) as pool:
        for crops in pool.imap_unordered(_pool_work, jobs, chunksize=8):
            n += crops
    return time.perf_counter() - t0, n


def breakdown(files, root, config, partitions: int, out: Path):
    """Per-stage ms per image of the job's whole task body, `preprocess_tasks.process_files`, run in this process on
    the files split into `partitions` groups like the job's, writing its Parquet parts and HDF5 shards under `out`.
    The functions it calls are timed in place (exclusive time; bench/_profile.py), so the split follows whatever the
    task does today. Returns (stage -> ms per image, images, wall seconds)."""
    import _profile

    from colorspark import datasets, fs, samples
    from colorspark import preprocess_tasks as tasks

    shutil.rmtree(out, ignore_errors=True)
    formats = config["output"]["formats"]
    base = fs.to_uri(out)
    staging = tasks.Staging(fs.join(base, "parquet") if "parquet" in formats else None,
                            fs.join(base, "hdf5") if "hdf5" in formats else None)
    prof = _profile.Profiler()
    prof.wrap(tasks, "process_files", "glue")  # exclusive remainder: the loop, result tuples
    prof.wrap(tasks, "read_content", "glue")
    prof.wrap(tasks._SampleSink, "add", "glue")  # sample dicts with their path, batching
    prof.wrap(tasks, "relative_output_path", "key")
    prof.wrap(tasks, "process_image", "pack")  # exclusive remainder: row dicts
    prof.wrap(tasks, "encode_sample", "pack")  # exclusive remainder: tobytes
    prof.wrap(tasks, "decode_image", "decode")
    prof.wrap(tasks, "crop_rng", "rng_split")
    prof.wrap(tasks, "split_of", "rng_split")
    prof.wrap(tasks, "random_crops", "crops")
    prof.wrap(samples, "encode_crop", "quantise")  # exclusive remainder: L code, ab 4x4 mean, chroma
    prof.wrap(samples, "rgb_to_lab", "lab")
    prof.wrap(samples, "hard_bins", "hard_bins")
    prof.wrap(tasks, "decode_bins", "prior")
    prof.wrap(tasks, "bin_counts", "prior")
    prof.wrap(tasks._SampleSink, "_flush", "write_parquet")
    prof.wrap(datasets.PartWriter, "__exit__", "write_parquet")
    prof.wrap(tasks, "write_shard", "write_hdf5")
    per = -(-len(files) // max(1, partitions))
    n_ok = 0

    def contents(group):
        for f in group:
            a = time.perf_counter()
            content = f.read_bytes()
            prof.add("read", time.perf_counter() - a)
            yield "file:" + str(f), content

    t0 = time.perf_counter()
    with prof:
        for index, start in enumerate(range(0, len(files), per)):
            for row in tasks.process_files(index, contents(files[start:start + per]), config, str(root), staging):
                n_ok += row[2] == "ok"
    wall = time.perf_counter() - t0
    once = prof.one_time()
    return {k: (v - once.get(k, 0.0)) / max(n_ok, 1) * 1000.0 for k, v in prof.seconds.items()}, n_ok, wall


# --- main -------------------------------------------------------------------------------------------------------------

def warm_runs(local: list[dict]) -> list[dict]:
    return local[1:] or local


def mean_s(runs: list[dict]) -> float:
    return sum(r["seconds"] for r in runs) / len(runs)


def plan_steps(args, s3: bool) -> list[str]:
    """The driver's steps: run 1, then every later run (local, then S3, then one more local) between two plain runs
    (b); run 1 has one only after it."""
    plan = ["local", "plain"] + ["local", "plain"] * (args.spark_runs - 1)
    return plan + (["s3", "plain"] * args.s3_runs + ["local", "plain"] if s3 else [])


def pair_with_plain(runs: list[dict], plain: list[dict]) -> None:
    """Give each Spark run the rate of the plain runs (b) just before and after it (`b`, images/s on one core) and
    its ratio (a) / (2 * b)."""
    for r in runs:
        near = [p for p in plain if p["after_run"] in (r["run"] - 1, r["run"])]
        if not near:
            raise SystemExit(f"run {r['run']} has no plain run beside it in the driver's plan")
        r["b"] = sum(p["images"] for p in near) / sum(p["seconds"] for p in near)
        r["ratio"] = r["ips"] / (2 * r["b"])


def spark_phase(args, work, zip_path, root, files, s3):
    """One spark-submit of preprocess_driver.py; returns (driver result with per-run job tables, cpu, seconds)."""
    plan = plan_steps(args, s3 is not None)
    files_list = work / "files.txt"
    files_list.write_text("".join(f"{f}\n" for f in files))
    s3_args = ["--s3-output", f"s3://{s3['bucket']}/bench", "--s3-server-pid", str(s3["pid"])] if s3 else []
    spark, elog, cpu, submit_s = C.driver_phase(
        C.BENCH / "preprocess_driver.py",
        ["--input", str(root), "--output", str(work / "spark-out"), "--plan", ",".join(plan),
         "--plain-files", str(files_list)] + s3_args
        + ([] if args.no_diagnose else ["--diagnose"]) + sum((["--set", o] for o in args.overrides), []),
        work=work, tag="", master=args.master, zip_path=zip_path, env=s3["env"] if s3 else None,
        properties_file=args.properties_file or None)
    for r in spark["runs"]:
        r["ips"] = r["ok"] / r["seconds"]
    pair_with_plain(spark["runs"], spark["plain"])
    for r in spark["runs"]:
        r["jobs"], r["jobs_wall"] = C.job_table(elog, r["start"], r["end"])
        stages = C.job_stages(elog, [j for j in C.jobs_between(elog, r["start"], r["end"])
                                     if PASS_ACTION in j["desc"]])
        r["pass_task_run_s"] = sum(st["run_s"] for st in stages)
        r["pass_wall_s"] = sum(row[2] for row in r["jobs"] if PASS_ACTION in row[0])
        r["pass_tasks"] = sum(st["tasks"] for st in stages)
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
    settle_timeout = min(300.0, args.max_wait)

    # (a) Spark, local disk then S3
    if args.s3_runs:
        from _s3serve import s3_server

        with s3_server(str(C.PY)) as s3:
            C.say(f"[bench] S3 server {s3['env']['AWS_ENDPOINT_URL']} (pid {s3['pid']}), bucket {s3['bucket']}")
            spark, spark_cpu, submit_s = spark_phase(args, work, zip_path, root, files, s3)
    else:
        spark, spark_cpu, submit_s = spark_phase(args, work, zip_path, root, files, None)
    runs = spark["runs"]
    local = [r for r in runs if r["target"] == "local"]
    s3_runs = [r for r in runs if r["target"] == "s3"]
    for r in runs:
        if r["parquet_rows"] and sum(r["parquet_rows"].values()) != r["crops"]:
            raise SystemExit(f"run {r['run']}: Parquet output has {r['parquet_rows']} rows, manifest {r['crops']}")
    C.say("[bench] (a) Spark: " + ", ".join(f"run {r['run']} ({r['target']}) {r['seconds']:.1f} s = "
                                            f"{r['ips']:.1f} img/s" for r in runs)
          + f" (session start {spark['session_s']:.1f} s, spark-submit total {submit_s:.1f} s, foreign cores "
            f"{spark_cpu['foreign_cores']:.2f})")

    plain = spark["plain"]
    n_seq = plain[0]["images"]
    b1 = sum(p["images"] for p in plain) / sum(p["seconds"] for p in plain)
    C.say("[bench] (b) sequential process_image: " + ", ".join(f"{p['seconds']:.1f} s" for p in plain)
          + f" for {n_seq} images; mean {b1:.1f} img/s (x2 = {2 * b1:.1f})")

    # stage breakdown of the task body, on the job's partitioning
    sub = files[:args.breakdown_images] if args.breakdown_images else files
    partitions = max(1, round(local[-1].get("pass_tasks") or 1) * len(sub) // len(files))
    mon = C.CpuMonitor().start()
    stages, n_b, task_body_s = breakdown(sub, root, config, partitions, work / "plain-out")
    task_body_cpu = mon.stop()
    shutil.rmtree(work / "plain-out", ignore_errors=True)
    total_ms = sum(stages.values())
    C.say("[bench] per-image ms: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) + f"; sum {total_ms:.2f}"
          f" (process_files over {partitions} partitions: {task_body_s:.1f} s wall)")

    # 2-process reference
    pool = None
    if not args.no_pool:
        C.settle(skip=args.no_wait, timeout=settle_timeout, log=C.say)
        mon = C.CpuMonitor().start()
        pool_s, _ = pool2(files, root, config)
        pool_cpu = mon.stop()
        pool = {"seconds": pool_s, "ips": n_seq / pool_s, "foreign_cores": pool_cpu["foreign_cores"]}
        C.say(f"[bench] (c) multiprocessing Pool(2): {pool['ips']:.1f} img/s")

    # figures
    warm = warm_runs(local)
    ratio_cold, ratio_warm = local[0]["ratio"], sum(r["ratio"] for r in warm) / len(warm)
    s3_ratio = s3_local_s = None
    if s3_runs:  # against the warm local runs just before and after them
        s3_local_s = mean_s([r for r in warm if r["run"] in (s3_runs[0]["run"] - 1, s3_runs[-1]["run"] + 1)])
        s3_ratio = mean_s(s3_runs) / s3_local_s
    C.say(f"[bench] ratio (a)/(2*b), each Spark run against the (b) runs beside it: run 1 {ratio_cold:.2f}, warm "
          f"runs " + ", ".join(f"{r['ratio']:.2f}" for r in warm) + f", mean {ratio_warm:.2f} (target >= {TARGET})"
          + (f"; S3/local time {s3_ratio:.2f}" if s3_ratio else ""))
    result = {"args": vars(args), "machine": info, "idle": idle, "spark": spark, "spark_cpu": spark_cpu,
              "submit_s": submit_s, "b1": b1, "stages_ms": stages, "pool": pool,
              "ratio_cold": ratio_cold, "ratio_warm": ratio_warm, "s3_ratio": s3_ratio, "s3_local_s": s3_local_s,
              "init_s": plain[0]["init_s"], "task_body_s": task_body_s, "task_body_cpu": task_body_cpu,
              "breakdown_partitions": partitions, "event_jobs": {r["run"]: r["jobs"] for r in runs}}
    C.write_json(work / "result.json", result)

    if not args.no_md:
        C.md_update(KEY, render_md(args, info, idle, cmd, files, input_mb, config, result, n_b))
        C.say(f"[bench] updated {C.BENCHMARKS_MD}")


STAGE_NAMES = {
    "read": "read file", "decode": "decode (`decode_image`)", "rng_split": "crop RNG + split hash",
    "key": "output key (`relative_output_path`)", "crops": "resize/crop (`random_crops`)",
    "lab": "Lab (`rgb_to_lab` in `encode_crop`)",
    "quantise": "L code + ab 4×4 mean + chroma (rest of `encode_crop`)", "hard_bins": "`hard_bins`",
    "pack": "byte packing and row dicts (rest of `encode_sample`, `process_image`)",
    "prior": "prior counts (`decode_bins` + `bin_counts`, colourful train crops)",
    "write_parquet": "write Parquet (`RecordBatch.from_pylist` + `ParquetWriter`, close and rename)",
    "write_hdf5": "write HDF5 shard (`write_shard`)",
    "glue": "task glue (`process_files` loop, result tuples, `_SampleSink.add`)",
}


def render_md(args, info, idle, cmd, files, input_mb, config, res, n_b) -> str:
    size, crops = config["data"]["size"], config["data"]["crops"]
    spark, b1, stages = res["spark"], res["b1"], res["stages_ms"]
    runs = spark["runs"]
    local = [r for r in runs if r["target"] == "local"]
    s3_runs = [r for r in runs if r["target"] == "s3"]
    warm = local[-1]
    lines = ["## 1. Preprocessing throughput (`bench/preprocess_bench.py`)\n", C.machine_block(info, idle, cmd)]
    lines.append(f"- input: {len(files)} JPEGs ({input_mb:.0f} MB) replicated from `../shared/data/photos` into "
                 f"`{args.workdir}/input` ({args.subdirs} subfolders); data.size={size}, data.crops={crops}, "
                 f"formats {'+'.join(config['output']['formats'])}; master `{args.master}`"
                 + (f", spark-submit `--properties-file {os.path.relpath(args.properties_file, C.ROOT)}`"
                    if args.properties_file else ", spark-submit without a properties file")
                 + ("; S3 runs: output `s3://<bucket>/...` on tests/s3server.py (moto, 127.0.0.1, signature checks "
                    "on) in a process of its own, inputs on local disk" if s3_runs else "") + "\n")
    lines.append("### Throughput, in the order the steps ran\n")
    rows = []
    steps = sorted([("run", r["start"], r) for r in runs] + [("plain", p["start"], p) for p in spark["plain"]],
                   key=lambda step: step[1])
    for kind, _, r in steps:
        if kind == "plain":
            rows.append(["(b) plain Python, sequential `process_image` (1 core)", f"{r['seconds']:.1f}",
                         f"{r['images'] / r['seconds']:.1f}", "", ""])
            continue
        if r["target"] == "local":
            what = f"(a) Spark `preprocess.run`, run {r['run']}" + (
                " (starts the Python workers)" if r is local[0] else " (warm workers, after the S3 run)"
                if s3_runs and r["run"] > s3_runs[0]["run"] else " (warm workers)")
        else:
            what = f"(a') Spark `preprocess.run`, run {r['run']}, output on S3 (warm workers)"
        rows.append([what, f"{r['seconds']:.1f}", f"{r['ips']:.1f}", f"{2 * r['b']:.1f}", f"{r['ratio']:.2f}"])
    pool = res["pool"]
    if pool:
        rows.append(["(c) reference, after the Spark session: `multiprocessing.Pool(2)` over `process_image`",
                     f"{pool['seconds']:.1f}", f"{pool['ips']:.1f}", f"{2 * b1:.1f} (all (b) runs)",
                     f"{pool['ips'] / (2 * b1):.2f}"])
    lines.append(C.md_table(["step", "seconds", "images/s", "2·(b) beside it, images/s", "ratio to 2·(b)"], rows))
    spark_cpu = res["spark_cpu"]
    lines.append(f"\nEach Spark run is compared with the plain runs (b) just before and after it (run 1: just after "
                 f"it), which the driver "
                 f"ran in a process of its own while Spark idled (`bench/preprocess_sequential.py`): from one minute "
                 f"to the next the same plain run can take up to a fifth more or less time on this shared machine, "
                 f"more than the gap being measured. Spark session start-up ({spark['session_s']:.1f} s) and the "
                 f"spark-submit JVM start are excluded; the whole spark-submit took {res['submit_s']:.1f} s for "
                 f"{len(runs)} runs, {len(spark['plain'])} plain runs"
                 f"{' and the diagnosis' if spark.get('diagnosis') else ''}. CPU used by other processes meanwhile: "
                 f"{spark_cpu['foreign_cores']:.2f} cores" + (f", during the pool {pool['foreign_cores']:.2f} cores"
                                                               if pool else "")
                 + ". Each run's Parquet output was read back: its rows match the manifest's crops.\n")
    met = res["ratio_warm"] >= TARGET
    warm_list = ", ".join(f"{r['ratio']:.2f}" for r in warm_runs(local))
    lines.append(f"**Target (a)/(2·b) ≥ {TARGET} (warm runs): {'met' if met else 'NOT met'}** — "
                 f"{res['ratio_warm']:.2f}, the mean of the warm local runs' ratios ({warm_list}); run 1, which also "
                 f"starts the Python workers, {res['ratio_cold']:.2f}.\n")
    if s3_runs:
        s3r = s3_runs[-1]
        server = s3r.get("s3_server_cpu_s") or 0.0
        lines.append(f"**Output on S3 / local disk, time ratio: {res['s3_ratio']:.2f}** ({s3r['seconds']:.1f} s vs "
                     f"{res['s3_local_s']:.1f} s, the mean of the warm local runs just before and after it). The "
                     f"local S3 server itself used "
                     f"{server:.1f} CPU s during the S3 run ({server / s3r['seconds']:.2f} of the 2 cores), which a "
                     f"real S3 service would not take from the machine.\n")

    lines.append("### CPU by process during each Spark run (from /proc; the JVM runs the driver and, on local[2], "
                 "the executor threads)\n")

    def total(r):
        return r["cpu_s"]["jvm"] + r["cpu_s"]["python_workers"] + r["cpu_s"]["python_driver"]

    lines.append(C.md_table(
        ["run", "wall s", "JVM CPU s", "· JIT compilers", "· executor task threads", "· other JVM threads",
         "Python workers CPU s", "Python driver CPU s", "S3 server CPU s", "spark-submit, core-ms per image",
         "Python workers, ms per image"],
        [[f"{r['run']} ({r['target']})", f"{r['seconds']:.1f}", f"{r['cpu_s']['jvm']:.1f}",
          f"{r['cpu_s']['jvm_jit']:.1f}", f"{r['cpu_s']['jvm_tasks']:.1f}", f"{r['cpu_s']['jvm_other']:.1f}",
          f"{r['cpu_s']['python_workers']:.1f}", f"{r['cpu_s']['python_driver']:.1f}",
          f"{r['s3_server_cpu_s']:.1f}" if r.get("s3_server_cpu_s") is not None else "—",
          f"{total(r) / r['ok'] * 1000:.2f}", f"{r['cpu_s']['python_workers'] / r['ok'] * 1000:.2f}"] for r in runs]))
    lines.append("")
    lines.append(f"### Per-image cost of the task body, plain Python (mean over {n_b} images, ms)\n")
    total = sum(stages.values())
    srt = sorted(stages.items(), key=lambda kv: -kv[1])
    lines.append(C.md_table(["stage", "ms / image", "share"],
                            [[STAGE_NAMES.get(k, k), f"{v:.2f}", f"{v / total:.0%}"] for k, v in srt]
                            + [["**sum**", f"{total:.2f}", "100%"]]))
    lines.append(f"\n`preprocess_tasks.process_files` (the body of the job's `mapInArrow` pass, minus the Arrow "
                 f"batches) run in this process over {res['breakdown_partitions']} partitions of the same files, "
                 f"writing Parquet and HDF5 to local disk: {res['task_body_s']:.1f} s wall, "
                 f"{res['task_body_s'] / n_b * 1000:.2f} ms per image. The sequential loop (b) measured "
                 f"{1000 / b1:.2f} ms per image on average for `process_image` incl. file read (without writing), "
                 f"after a one-time per-process set-up of {res['init_s']:.2f} s (`prepare_worker`: bin centres, "
                 f"the nearest-bin table and imports; every new Spark Python worker pays it too). Largest stage: "
                 f"**{STAGE_NAMES.get(srt[0][0], srt[0][0])}** ({srt[0][1] / total:.0%}).\n")

    shown = [local[0], warm] + s3_runs[-1:] if len(local) > 1 else local + s3_runs[-1:]
    for r in shown:
        lines.append(f"### Spark run {r['run']}{' (S3)' if r['target'] == 's3' else ''} by job ({r['seconds']:.1f} s "
                     f"wall; jobs cover {r['jobs_wall']:.1f} s, the rest is driver-side work between jobs: listing, "
                     f"prior, publishing the staged outputs, manifest)\n")
        lines.append(C.job_md_table(r["jobs"]))
        lines.append("")
    diag = spark.get("diagnosis")
    if diag:
        lines.append(f"### Diagnosis: Spark's input movement ({diag['partitions']} partitions of the job's input "
                     f"frame, after the runs, warm workers)\n")
        lines.append(C.md_table(
            ["pass", "wall s", "Spark tasks", "task run s (sum)", "inside the Python body s (sum)",
             "`gc.collect()` ms per task", "JVM CPU s", "Python workers CPU s", "MB read"],
            [[d["label"], f"{d['wall_s']:.2f}", d.get("spark_tasks", d["tasks"]),
              f"{d.get('task_run_s', float('nan')):.2f}", f"{d['python_s']:.2f}" if d["kind"] != "jvm" else "—",
              f"{d['gc_s'] / max(d['tasks'], 1) * 1000:.0f}" if d["kind"] == "gc" else "—",
              f"{d['cpu_s']['jvm']:.1f}", f"{d['cpu_s']['python_workers']:.1f}", f"{(d['bytes'] or 0) / 1e6:.0f}"]
             for d in diag["passes"]]))
        gc_pass = [d for d in diag["passes"] if d["kind"] == "gc"]
        if gc_pass:
            g = gc_pass[-1]
            lines.append(f"\nIn the last pass each worker held {g['objects']:,} objects tracked by the garbage "
                         f"collector, of which {g['frozen']:,} frozen: PySpark's daemon runs `gc.collect()` after "
                         f"every task, and colorspark's worker start-up hook freezes only what the daemon imported "
                         f"before forking (not pyarrow, pandas, SciPy, Pillow, h5py and colorspark, which each "
                         f"worker imports in its first task).")
        lines.append("")
    lines.append(where_time_goes(res, n_b))
    return "\n".join(lines)


def where_time_goes(res, n_b) -> str:
    """The warm run's wall split (processing pass, other jobs, driver-side work) and its CPU by process, against the
    same task body in plain Python."""
    spark = res["spark"]
    local = [r for r in spark["runs"] if r["target"] == "local"]
    warm = local[-1]
    n = warm["ok"]
    plain_ms = res["task_body_s"] / n_b * 1000
    cpu = warm["cpu_s"]
    out = [f"**Where the last warm run's {warm['seconds']:.1f} s go** (run {warm['run']}; {n} images; the same task "
           f"body takes "
           f"{plain_ms:.2f} ms per image in one plain process, {n * plain_ms / 2000:.1f} s on two ideal cores; 2·(b) "
           f"without the writes, from the (b) runs beside it, is {n / (2 * warm['b']):.1f} s):\n"]
    all_cpu = cpu["jvm"] + cpu["python_workers"] + cpu["python_driver"]
    out.append(f"- CPU: {all_cpu:.1f} s in all = {all_cpu / n * 1000:.2f} core-ms per image, of "
               f"which the Python workers {cpu['python_workers']:.1f} s ({cpu['python_workers'] / n * 1000:.2f} ms per "
               f"image, {cpu['python_workers'] / n * 1000 - plain_ms:+.2f} ms against the plain task body), the JVM "
               f"{cpu['jvm']:.1f} s ({cpu['jvm'] / n * 1000:.2f} ms per image; JIT compilers {cpu['jvm_jit']:.1f} s, "
               f"executor task threads {cpu['jvm_tasks']:.1f} s, other threads {cpu['jvm_other']:.1f} s), the Python "
               f"driver "
               f"{cpu['python_driver']:.1f} s; other processes used {res['spark_cpu']['foreign_cores']:.2f} cores on "
               f"average during the spark-submit")
    out.append(f"- processing pass (`mapInArrow`, {warm['pass_tasks']} tasks): {warm['pass_wall_s']:.1f} s wall, "
               f"{warm['pass_task_run_s']:.1f} task-s = {warm['pass_task_run_s'] / n * 1000:.2f} ms per image")
    diag = {d["kind"]: d for d in (spark.get("diagnosis") or {}).get("passes", [])}
    if "arrow" in diag:
        a = diag["arrow"]
        per_task = (a["task_run_s"] - a["python_s"]) / max(a.get("spark_tasks") or 1, 1) * 1000
        out.append(f"  - of which getting the files into Python (diagnosis: the body only fetches the bytes): "
                   f"{a['task_run_s']:.1f} task-s, "
                   f"{per_task:.0f} ms per task outside the Python body"
                   + (f"; the `gc.collect()` that PySpark runs in the worker after every task takes "
                      f"{diag['gc']['gc_s'] / max(diag['gc']['tasks'], 1) * 1000:.0f} ms" if "gc" in diag else ""))
    n_other = sum(row[1] for row in warm["jobs"] if PASS_ACTION not in row[0])
    out.append(f"- {n_other} other Spark jobs: "
               f"{warm['jobs_wall'] - warm['pass_wall_s']:.1f} s wall")
    out.append(f"- driver-side work between jobs (listing, prior, staging, publishing, manifest): "
               f"{warm['seconds'] - warm['jobs_wall']:.1f} s")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
