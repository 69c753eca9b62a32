#!/usr/bin/env python
"""Load test (issue 5): colorize 10,000 images with a real `spark-submit jobs/colorize.py`, watching memory.

Generates --images small replicas of the shared photos (downscaled to --max-side px, grayscale, every
--colour-every-th one kept in colour so the scoring path runs too) under /tmp, then runs

    spark-submit --master local[2] --driver-memory 2g --py-files dist/colorspark-*.zip jobs/colorize.py \\
        --input DIR --output OUT

once on the first --compare images (default 1,000) and once on all of them. While each job runs, the resident memory
of the spark-submit process tree (driver JVM, Python driver, Python worker daemon and workers; plus, with a standalone
master, every process of the cluster) is sampled from /proc every --interval seconds: RSS (sum; shared pages counted
in each process) and PSS (shared pages split; the honest total). Reports the peak, the trend of the curve (mean of the
first vs. the last quarter of the colorize phase, and a least-squares slope), and the per-image cost at 1k vs. 10k.

--master takes any master URL (e.g. spark://host:7077); --standalone starts a 2-worker x 2 GiB standalone cluster on
127.0.0.1 with tests/standalone.py and runs the same test on it.

Example (takes ~15-25 min; run it in the background):
    nohup .venv/bin/python bench/load_bench.py > /tmp/colorspark-bench/load.out 2>&1 &
Quick check: .venv/bin/python bench/load_bench.py --images 60 --compare 20 --no-wait --no-md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from standalone import StandaloneCluster  # noqa: E402  (_common puts tests/ on sys.path)

KEY = "load"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=10000, help="images of the big run (default 10000)")
    p.add_argument("--compare", type=int, default=1000, help="images of the comparison run (default 1000; 0 = skip)")
    p.add_argument("--max-side", type=int, default=256, help="replica size, longer side in px (default 256)")
    p.add_argument("--colour-every", type=int, default=10, help="every k-th replica stays in colour (default 10; "
                                                                 "0 = all grayscale)")
    p.add_argument("--subdirs", type=int, default=10)
    p.add_argument("--photos", default=str(C.PHOTOS))
    p.add_argument("--workdir", default="/tmp/colorspark-bench/load")
    p.add_argument("--master", default="local[2]", help="any master URL (default local[2])")
    p.add_argument("--standalone", action="store_true",
                   help="start a 2-worker x 2 GiB standalone cluster with tests/standalone.py and use it")
    p.add_argument("--driver-memory", default="2g")
    p.add_argument("--interval", type=float, default=1.0, help="sampling interval, s (default 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override for the job")
    p.add_argument("--keep-outputs", action="store_true", help="keep the colorized outputs (GBs)")
    C.machine_args(p)
    return p.parse_args()


# --- one job ----------------------------------------------------------------------------------------------------------

_LOG_TIME = re.compile(r"^(\d\d:\d\d:\d\d) colorspark colorize: (.*)$")


def phase_marks(log_path: Path, day_start: float) -> dict:
    """Seconds since the job start of the colorize log lines that bound the heavy phase."""
    marks = {}
    with open(log_path, errors="replace") as log_file:
        for line in log_file:
            m = _LOG_TIME.match(line.strip())
            if not m:
                continue
            h, mi, s = (int(x) for x in m.group(1).split(":"))
            t = time.mktime(time.localtime(day_start)[:3] + (h, mi, s, 0, 0, -1))
            msg = m.group(2)
            if msg.startswith("colorizing images under"):
                marks.setdefault("colorize_start", t)
            elif "input files processed" in msg:
                marks.setdefault("count_done", t)
            elif " ok, " in msg and "images/s" in msg:
                marks.setdefault("done", t)
    return {k: v - day_start for k, v in marks.items()}


def run_job(args, zip_path: Path, input_dir: Path, name: str, master: str, extra_pids=None) -> dict:
    work = Path(args.workdir)
    out = work / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    log_path = work / f"{name}.log"
    cmd = [str(C.SPARK_SUBMIT), "--master", master, "--driver-memory", args.driver_memory, "--py-files",
           str(zip_path), "jobs/colorize.py", "--input", str(input_dir), "--output",
           # a cluster master refuses a plain output path (it could name each executor's own disk)
           str(out) if master.startswith("local") else out.as_uri()]
    cmd += sum((["--set", o] for o in args.overrides), [])
    env = {**os.environ, "PYSPARK_PYTHON": str(C.PY), "PYSPARK_DRIVER_PYTHON": str(C.PY)}
    C.say(f"[bench] $ {' '.join(cmd)}")
    mon = C.CpuMonitor().start()
    t0 = time.time()
    with open(log_path, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=C.ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        sampler = C.MemorySampler(lambda: {"all": job_processes(proc.pid, extra_pids)}, args.interval, t0).start()
        rc = proc.wait()
        sampler.stop()
    samples = sampler.series("all")
    C.write_memory_csv(work / f"{name}-memory.csv", samples)
    wall = time.time() - t0
    cpu = mon.stop()
    if rc != 0:
        raise SystemExit(f"{name}: spark-submit exited {rc}; log tail:\n{C.tail(log_path, 40)}")
    summary = json.loads((out / "summary.json").read_text())
    millis = sorted(r["millis"] for r in pq.read_table(out / "results", columns=["status", "millis"]).to_pylist()
                    if r["status"] == "ok" and r["millis"] is not None)
    out_bytes = C.dir_bytes(out)
    if not args.keep_outputs:
        shutil.rmtree(out, ignore_errors=True)
    marks = phase_marks(log_path, t0)
    res = {"name": name, "images": summary["inputs"], "ok": summary["ok"], "errors": summary["errors"],
           "wall_s": wall, "summary": summary, "samples": samples, "marks": marks, "cpu": cpu,
           "output_bytes": out_bytes, "command": " ".join(cmd),
           "median_millis": millis[len(millis) // 2] if millis else float("nan")}
    res.update(analyse(samples, marks))
    C.say(f"[bench] {name}: {summary['ok']} ok / {summary['inputs']} in {wall:.0f} s (job {summary['seconds']:.0f} s, "
          f"{summary['images_per_second']:.2f} img/s); peak RSS {res['peak_rss_mb']:.0f} MB, peak PSS "
          f"{res['peak_pss_mb']:.0f} MB; colorize-phase trend first→last quarter {res['q1_pss_mb']:.0f}→"
          f"{res['q4_pss_mb']:.0f} MB PSS ({res['slope_mb_per_min']:+.1f} MB/min)")
    return res


def job_processes(root: int, extra=None) -> set[int]:
    """The spark-submit process tree under `root`, and with a standalone cluster (`extra()`) all its processes."""
    pids = C.tree_of(root)
    for pid in extra() if extra else ():
        pids |= C.tree_of(pid)
    return pids


def analyse(samples, marks) -> dict:
    start = marks.get("colorize_start", 0.0)
    end = marks.get("count_done", samples[-1]["t"] if samples else 0.0)
    return {**C.memory_trend(samples, start, end), "phase_s": end - start}


def plot(results: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for r in results:
        ax.plot([s["t"] for s in r["samples"]], [s["pss_mb"] for s in r["samples"]], label=f"{r['name']} PSS")
        ax.plot([s["t"] for s in r["samples"]], [s["rss_mb"] for s in r["samples"]], ls=":", label=f"{r['name']} RSS")
    ax.set_xlabel("seconds since spark-submit")
    ax.set_ylabel("MB")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


# --- main -------------------------------------------------------------------------------------------------------------

def main():
    args = parse_args()
    work, idle, info, cmd, zip_path = C.start_bench(args)
    t = time.time()
    big = work / f"in-{args.images}"
    C.replicate(big, args.images, args.subdirs, gray=True, max_side=args.max_side, colour_every=args.colour_every,
                photos=Path(args.photos), log=C.say)
    small = None
    if args.compare:
        small = work / f"in-{args.compare}"
        C.replicate(small, args.compare, args.subdirs, gray=True, max_side=args.max_side,
                    colour_every=args.colour_every, photos=Path(args.photos), log=C.say)
    C.say(f"[bench] inputs ready in {time.time() - t:.0f} s ({C.dir_bytes(big) / 1e6:.0f} MB for {args.images})")

    cluster = None
    master = args.master
    extra = None
    if args.standalone:
        cluster = StandaloneCluster(workers=2, memory="2g", cores=1).start()
        master = cluster.master_url
        extra = cluster.processes
        C.say(f"[bench] standalone cluster up at {master}")
    results = []
    try:
        for n, d in ((args.compare, small), (args.images, big)):
            if not n:
                continue
            C.settle(skip=args.no_wait, log=C.say)
            results.append(run_job(args, zip_path, d, f"{n}", master, extra))
    finally:
        if cluster is not None:
            cluster.stop()
    png = work / "memory.png"
    plotted = plot(results, png)
    C.write_json(work / "result.json", {"args": vars(args), "machine": info, "idle": idle, "results": [
        {k: v for k, v in r.items() if k != "samples"} for r in results]})
    if not args.no_md:
        C.md_update(KEY + ("-standalone" if args.standalone or not master.startswith("local") else ""),
                    render_md(args, info, idle, cmd, master, results, png if plotted else None))
        C.say(f"[bench] updated {C.BENCHMARKS_MD}")


def render_md(args, info, idle, cmd, master, results, png) -> str:
    title = "4. Load test: 10,000 images (`bench/load_bench.py`)" if master.startswith("local") else \
        f"4b. Load test on `{master.split('://')[0]}` master (`bench/load_bench.py`)"
    L = [f"## {title}\n", C.machine_block(info, idle, cmd)]
    L.append(f"- inputs: replicas of the shared photos downscaled to ≤ {args.max_side} px, grayscale except every "
             f"{args.colour_every}th (colour, scored), in {args.subdirs} subfolders under `{args.workdir}`; model "
             f"{C.describe_model(C.ROOT / 'models' / 'small')} (the job's default); default config\n"
             f"- job command (per run): `{results[-1]['command'] if results else ''}`"
             f"\n- memory: RSS and PSS of the spark-submit process tree (driver JVM, Python driver, Python worker "
             f"daemon + workers) sampled every {args.interval:g} s from /proc; PSS splits shared pages (forked Python "
             f"workers share most of the daemon's memory), so PSS is the real total and RSS an upper bound\n")
    rows = []
    for r in results:
        s = r["summary"]
        rows.append([r["name"], f"{r['ok']:,} / {r['errors']:,}", f"{r['wall_s']:.0f}", f"{s['seconds']:.0f}",
                     f"{s['images_per_second']:.2f}", f"{r['wall_s'] / max(r['ok'], 1) * 1000:.1f}",
                     f"{s['seconds'] / max(r['ok'], 1) * 1000:.1f}", f"{s.get('mean_millis_per_image') or 0:.1f}",
                     f"{r['median_millis']:.1f}",
                     f"{r['output_bytes'] / 1e9:.2f}", f"{r['cpu']['foreign_cores']:.2f}"])
    L.append(C.md_table(["images", "ok / errors", "spark-submit wall s", "job s (summary.json)", "images/s (job)",
                         "ms/image (wall)", "ms/image (job)", "in-task ms/image (mean)", "in-task ms/image (median)",
                         "output GB", "foreign cores"], rows))
    if len(results) == 2:
        a, b = results
        pa = a["summary"]["seconds"] / max(a["ok"], 1)
        pb = b["summary"]["seconds"] / max(b["ok"], 1)
        L.append(f"\nPer-image job time at {b['name']} vs {a['name']}: {pb * 1000:.1f} vs {pa * 1000:.1f} ms "
                 f"({pb / pa:.2f}×); the fixed cost (start-up, worker/model start, report) is amortised over 10× more "
                 f"images, so a ratio near or below 1 means no per-image slowdown as the run grows. The per-image "
                 f"cost measured inside the tasks (median over the images of each run; the mean also carries each "
                 f"worker's first batches): {b['median_millis']:.1f} vs {a['median_millis']:.1f} ms "
                 f"({b['median_millis'] / a['median_millis']:.2f}×).\n")
    L.append("### Memory\n")
    rows = []
    for r in results:
        comp = r["peak_by_component"]
        rows.append([r["name"], f"{r['peak_pss_mb']:.0f}", f"{r['peak_rss_mb']:.0f}", r["max_procs"],
                     ", ".join(f"{k} {v:.0f}" for k, v in sorted(comp.items(), key=lambda kv: -kv[1]) if v),
                     f"{r['q1_pss_mb']:.0f} → {r['q4_pss_mb']:.0f}", f"{r['q1_rss_mb']:.0f} → {r['q4_rss_mb']:.0f}",
                     f"{r['slope_mb_per_min']:+.1f}", f"{r['phase_s']:.0f}"])
    L.append(C.md_table(["images", "peak PSS MB", "peak RSS MB", "max processes", "peak RSS by component, MB",
                         "PSS first → last quarter, MB", "RSS first → last quarter, MB", "PSS slope MB/min",
                         "colorize phase s"], rows))
    for r in results:
        q1, q4 = r["q1_by_component"], r["q4_by_component"]
        L.append(f"\n- {r['name']} images, RSS by component, first → last quarter of the colorize phase: " + ", ".join(
            f"{c} {q1[c]:.0f} → {q4[c]:.0f}" for c in q1 if q1.get(c) is not None and q4.get(c) is not None))
    if png:
        L.append(f"\nCurves: `{png}` (not committed); raw samples: `{args.workdir}/<images>-memory.csv`.")
    L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    main()
