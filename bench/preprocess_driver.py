"""spark-submit driver of bench/preprocess_bench.py: times `colorspark.preprocess.run` once the session is up.

Runs the real job body on the same input as `--plan` says, each run into a local folder or into `--s3-output` (an
s3:// URI; the AWS variables come from the environment). Run 1 is what a user's job sees after start-up: the Python
worker daemon is started during it; later runs reuse the warm workers. A `plain` step in the plan runs the plain
reference (b) in a process of its own (bench/preprocess_sequential.py) while Spark idles, so that the Spark runs and
the reference share the same minutes of this shared machine. Writes the timings as JSON, with the CPU time
of every process of the spark-submit (and of the JVM's threads by kind) during each run.
Every run's Parquet output (OUT/parquet/split=*/part-*.parquet) is read back and its rows counted against the manifest.
Not meant to be run by hand; see `bench/preprocess_bench.py --help`.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sparkprobe  # noqa: E402
from _s3serve import cpu_seconds  # noqa: E402

from colorspark import config as config_mod  # noqa: E402
from colorspark import fs, preprocess  # noqa: E402
from colorspark.paths import InputLocation  # noqa: E402
from colorspark.splits import SPLITS  # noqa: E402


def parquet_rows(out: str) -> dict:
    """Rows per split of a run's Parquet output, from the part files' footers (through the storage layer)."""
    import pyarrow.parquet as pq

    from colorspark.datasets import part_files

    rows: dict = {}
    for uri in part_files(fs.join(out, "parquet")):
        split = uri.split("split=", 1)[1].split("/", 1)[0]
        filesystem, path = fs.filesystem(uri)
        with filesystem.open_input_file(path) as fh:
            rows[split] = rows.get(split, 0) + pq.ParquetFile(fh).metadata.num_rows
    return rows


def jvm_threads(jvm: int) -> dict:
    """CPU seconds of the JVM's threads by kind: the JIT compilers, the executor task threads (on local[*] they run
    the tasks' JVM side: file scan, Arrow conversion, cached rows) and all the others (GC, scheduler, the threads
    that feed the Python workers, py4j)."""
    out = {"jvm_jit": 0.0, "jvm_tasks": 0.0, "jvm_other": 0.0}
    try:
        tids = os.listdir(f"/proc/{jvm}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{jvm}/task/{tid}/comm") as fh:
                name = fh.read().strip()
            with open(f"/proc/{jvm}/task/{tid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        kind = ("jvm_jit" if "CompilerThre" in name else "jvm_tasks" if name.startswith("Executor task")
                else "jvm_other")
        out[kind] += cpu
    return out


def tree_cpu() -> dict:
    """CPU seconds used so far by this spark-submit's processes, by component: the JVM (driver and, on local[*],
    the executor threads), the Python worker daemon and its workers, and this Python driver."""
    jvm, me = os.getppid(), os.getpid()
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            procs[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    out = {"jvm": 0.0, "python_workers": 0.0, "python_driver": 0.0, **jvm_threads(jvm)}
    for pid, (_, cpu) in procs.items():
        chain, p = [], pid
        while p in procs and p not in (jvm, 1, 0) and len(chain) < 20:
            chain.append(p)
            p = procs[p][0]
        if pid == jvm:
            out["jvm"] += cpu
        elif pid == me:
            out["python_driver"] += cpu
        elif p == jvm:  # a descendant of the JVM: the worker daemon and its forks
            out["python_workers"] += cpu
    return out


def _probe(batches, max_bytes: int, measure_gc=False):
    """mapInArrow body of the diagnosis: take the partition's (path, content) batches into Python and fetch each
    file's bytes as the job's tasks do (`read_content`: binaryFile's content, or the file read through the storage
    layer where the content column is null, as on a local disk), and nothing more; one row back with the time spent
    inside Python and the bytes seen. With `measure_gc`, also time one `gc.collect()` at the end: what PySpark's
    worker daemon runs after every task (pyspark/daemon.py), over every object the worker has not frozen."""
    import gc
    import os
    import time

    import pyarrow as pa

    from colorspark.listing import read_content

    t_enter = time.time()
    a = time.perf_counter()
    n = nbytes = 0
    for batch in batches:
        for path, content in zip(batch.column("path").to_pylist(), batch.column("content").to_pylist()):
            n += 1
            nbytes += len(read_content(path, content, max_bytes))
    python_s = time.perf_counter() - a
    gc_s, objects = 0.0, 0
    if measure_gc:
        objects = len(gc.get_objects())
        b = time.perf_counter()
        gc.collect()
        gc_s = time.perf_counter() - b
    yield pa.RecordBatch.from_pydict({"pid": [os.getpid()], "rows": [n], "bytes": [nbytes], "python_s": [python_s],
                                      "gc_s": [gc_s], "objects": [objects], "frozen": [gc.get_freeze_count()],
                                      "enter": [t_enter]})


def diagnose(spark, input_path: str, config: dict) -> dict:
    """Spark's cost of getting the input files to the Python workers, apart from the per-image work: the job's
    input frame (same listing, same partitions, the same columns: on a local disk the content is null and the tasks
    read the files) scanned in the JVM only, then passed through a mapInArrow body that only fetches each file's
    bytes, as the job's processing pass does before decoding; then the same with one timed `gc.collect()` per task
    (see _probe)."""
    from pyspark.sql import functions as F

    from colorspark.listing import find_inputs

    sc = spark.sparkContext
    files = find_inputs(spark, InputLocation.parse(input_path), config["data"]["extensions"]).frame
    max_bytes = config["limits"]["max_bytes"]
    res = {"partitions": files.rdd.getNumPartitions(), "passes": []}
    passes = (("JVM only: scan of the job's input frame, sum of content lengths (none read on a local disk)", "jvm"),
              ("input rows into Python via mapInArrow, body only fetches each file's bytes (`read_content`)", "arrow"),
              ("the same, plus one timed `gc.collect()` per task", "gc"))
    schema = "pid long, rows long, bytes long, python_s double, gc_s double, objects long, frozen long, enter double"
    for label, kind in passes:
        _sparkprobe.set_phase(sc, "diagnose")
        cpu0 = tree_cpu()
        a = time.time()
        if kind == "jvm":
            n_bytes = files.select(F.sum(F.length("content")).alias("b")).collect()[0]["b"] or 0
            recs = []
        else:
            recs = [r.asDict() for r in files.mapInArrow(
                lambda batches, g=(kind == "gc"): _probe(batches, max_bytes, g), schema).collect()]
            n_bytes = sum(r["bytes"] for r in recs)
        b = time.time()
        cpu1 = tree_cpu()
        res["passes"].append({"label": label, "kind": kind, "wall_s": b - a, "start": a, "end": b,
                              "cpu_s": {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1},
                              "bytes": n_bytes, "tasks": len(recs), "pids": len({r["pid"] for r in recs}),
                              "python_s": sum(r["python_s"] for r in recs), "gc_s": sum(r["gc_s"] for r in recs),
                              "objects": max((r["objects"] for r in recs), default=0),
                              "frozen": max((r["frozen"] for r in recs), default=0),
                              "rows": sum(r["rows"] for r in recs)})
        print(f"[driver] diagnose {label}: {b - a:.2f} s", flush=True)
    return res


def plain_reference(files_list: str, root: str, overrides: list[str]) -> dict:
    """One run of (b), the sequential plain-Python reference, with one BLAS thread as Spark's workers have."""
    cmd = [sys.executable, str(Path(__file__).resolve().parent / "preprocess_sequential.py"), "--files", files_list,
           "--root", root] + sum((["--set", o] for o in overrides), [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.time()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    t1 = time.time()
    if done.returncode != 0:
        raise SystemExit(f"the plain reference failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "start": t0, "end": t1}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True, help="local folder for the local-disk runs")
    p.add_argument("--result", required=True)
    p.add_argument("--plan", default="local,local",
                   help="the steps in order, each 'local' (a run into --output), 's3' (a run into --s3-output) or "
                        "'plain' (the plain reference over --plain-files)")
    p.add_argument("--plain-files", help="a text file with the input paths, one per line, for the 'plain' steps")
    p.add_argument("--s3-output", help="s3://bucket/prefix for the S3 runs")
    p.add_argument("--s3-server-pid", type=int, help="pid of the local S3 server, to report its CPU time per run")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--diagnose", action="store_true", help="time Spark's input movement (see diagnose)")
    args = p.parse_args()
    if "plain" in args.plan.split(",") and not args.plain_files:
        p.error("a 'plain' step needs --plain-files")
    config = config_mod.load(None, args.overrides)
    runs, plain = [], []
    with _sparkprobe.driver_session("bench-preprocess", tensorflow_workers=False) as (spark, facts):
        sc = spark.sparkContext
        for step in args.plan.split(","):
            if step == "plain":
                plain.append({**plain_reference(args.plain_files, args.input, args.overrides),
                              "after_run": len(runs)})
                print(f"[driver] plain reference: {plain[-1]['images']} images in {plain[-1]['seconds']:.2f} s",
                      flush=True)
                continue
            i = len(runs)
            out = fs.join(fs.to_uri(args.output) if step == "local" else args.s3_output, f"run{i + 1}")
            fs.delete(out)
            _sparkprobe.set_phase(sc, f"run{i + 1}")
            server0 = cpu_seconds(args.s3_server_pid) if args.s3_server_pid else None
            cpu0 = tree_cpu()
            t0 = time.time()
            manifest = preprocess.run(spark, InputLocation.parse(args.input), out, config)
            t1 = time.time()
            cpu1 = tree_cpu()
            server1 = cpu_seconds(args.s3_server_pid) if args.s3_server_pid else None
            _sparkprobe.set_phase(sc, None)
            rows = parquet_rows(out) if "parquet" in config["output"]["formats"] else {}
            runs.append({"run": i + 1, "target": step, "start": t0, "end": t1, "seconds": t1 - t0,
                         "inputs": manifest["inputs"], "ok": manifest["ok"], "errors": manifest["errors"],
                         "crops": sum(manifest[f"{split}_crops"] for split in SPLITS), "parquet_rows": rows,
                         "hdf5_shards": len(manifest["hdf5_shards"]), "output": out,
                         "cpu_s": {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1},
                         "s3_server_cpu_s": None if server0 is None else server1 - server0})
            print(f"[driver] run {i + 1} ({step}): {manifest['ok']} images in {t1 - t0:.2f} s; parquet rows "
                  f"{rows}", flush=True)
        result = {**facts, "runs": runs, "plain": plain, "default_parallelism": sc.defaultParallelism,
                  "config": config}
        if args.diagnose:
            result["diagnosis"] = diagnose(spark, args.input, config)
    Path(args.result).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
