#!/usr/bin/env python
"""Colorize throughput: the Spark job on local[2] vs. the same pipeline in one plain process; where predict stands.

Inputs (replicated from the shared photos into /tmp): --images grayscale JPEGs (the replicas converted to L mode:
what the job is for) and --colour-images colour JPEGs (colorized from their L, then scored against their colours).
  (a) Spark: `colorspark.colorize.run` in a spark-submit driver (bench/colorize_driver.py), timed after the session is
      up: gray run 1 (starts the Python workers, builds the model in them), gray run 2 (warm), colour run (warm).
  (b) Plain Python: `colorspark.colorize.colorize_partition` itself over all files in one process with TensorFlow at
      2 threads (same model, same batch size, same outputs: JPEG + Lab .npy + thumbnails + scores), then the results
      table (pyarrow Parquet) and report.html, as the job writes them. Target (a)/(b) >= 0.85.
  (c) Reference: two plain processes with 1 TF thread each, half the files each (what two cores can do).
  Per-image time split of (b) (decode, Lab, predict, upsample+recombine, Lab->RGB, JPEG encode/write, Lab write,
  thumbnails, scoring): the functions colorize_partition calls are timed in place (bench/_profile.py), exclusive time.
  The model's FLOPs per image (from its layers) and the machine's measured float32 matmul rate at 2 threads.
With --progress-pairs N it measures only what the progress lines cost: after a warm-up run, N pairs of warm (a)
runs in one session, one with the lines off and one with them every second (ten times the default rate), in
alternating order; section "colorize-progress" of BENCHMARKS.md.
Writes its section of BENCHMARKS.md unless --no-md. Waits for an idle machine unless --no-wait.

Example:     .venv/bin/python bench/colorize_bench.py
Quick check: .venv/bin/python bench/colorize_bench.py --images 24 --colour-images 8 --no-wait --no-md
Progress:    .venv/bin/python bench/colorize_bench.py --progress-pairs 3 --images 320 --colour-images 0
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

KEY = "colorize"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=640, help="grayscale inputs (default 640, >= 500 for the record)")
    p.add_argument("--colour-images", type=int, default=320, help="colour inputs, scored (default 320; 0 = none)")
    p.add_argument("--model", default=str(C.ROOT / "models" / "small"), help="model dir (default models/small)")
    p.add_argument("--subdirs", type=int, default=4)
    p.add_argument("--photos", default=str(C.PHOTOS))
    p.add_argument("--workdir", default="/tmp/colorspark-bench/colorize")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override for all runs")
    p.add_argument("--no-pool", action="store_true", help="skip the 2-process reference (c)")
    p.add_argument("--scales", default="1.96,3.92", help="also time (b) gray on the photos scaled by these factors "
                                                        "(default: about 0.5 and 2 MP); empty: none")
    p.add_argument("--keep-outputs", action="store_true", help="keep the colorized outputs (several GB)")
    C.machine_args(p)
    p.add_argument("--progress-pairs", type=int, default=0,
                   help="only compare warm runs without and with progress lines every second, N pairs")
    # internal: one plain-process run
    p.add_argument("--plain", help=argparse.SUPPRESS)
    p.add_argument("--input", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument("--part", default="0/1", help=argparse.SUPPRESS)
    p.add_argument("--sync", help=argparse.SUPPRESS)
    p.add_argument("--extras", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- plain process ----------------------------------------------------------------------------------------------------

def input_files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png")
                  and not p.name.startswith((".", "_")))


class _Bc:
    def __init__(self, value):
        self.value = value


class _Acc:
    value = 0

    def add(self, n):
        self.value += n


def plain(args) -> dict:
    from colorspark.runtime import import_tensorflow

    tf = import_tensorflow(args.threads)
    tf.constant(1.0) + 1.0  # create the thread pools now, with these sizes
    import numpy as np

    from colorspark import colorize_tasks as colorize
    from colorspark import config as config_mod
    from colorspark import fs
    from colorspark.colorize import load_model, report_selection
    from colorspark.paths import InputLocation

    config = config_mod.load(None, args.overrides)
    payload, meta = load_model(args.model)
    root, out = Path(args.input), Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    k, n = (int(x) for x in args.part.split("/"))
    files = input_files(root)[k::n]
    listed = [f"file:{f}" for f in input_files(root)]
    plan = colorize.Plan.from_config(config, meta, str(root), fs.to_uri(out),
                                     shown=report_selection(listed, InputLocation.parse(str(root)), config))
    res = {"threads": args.threads, "images": len(files), "intra": None, "part": args.part}
    if args.sync:  # (c): start together
        Path(args.sync, f"ready-{k}").write_text("1")
        while not Path(args.sync, "go").exists():
            time.sleep(0.01)

    prof = make_profiler(colorize)

    def rows():
        for f in files:
            a = time.perf_counter()
            content = f.read_bytes()
            prof.add("read file", time.perf_counter() - a)
            yield "file:" + str(f), content

    res["start"] = time.time()
    c0 = time.process_time()
    t0 = time.perf_counter()
    with prof:
        results = list(colorize.colorize_partition(k, rows(), _Bc(payload), _Acc(), plan))
    t1 = time.perf_counter()
    res["pipeline_s"] = t1 - t0
    res["cpu_s"] = time.process_time() - c0
    res["end"] = time.time()
    ok_rows = [r for r in results if r["status"] == "ok"]
    m = max(len(results), 1)
    once = prof.one_time()
    steady = {k: v - once.get(k, 0.0) for k, v in prof.seconds.items()}
    ms = {label: sec / m * 1000 for label, sec in steady.items()}
    ms["other (loop glue, batching, row dicts)"] = max(0.0, (res["pipeline_s"] - sum(prof.seconds.values()))) / m * 1000
    res["breakdown"] = {"ms": ms, "calls": dict(prof.calls), "images": len(results), "one_time_s": once,
                        "with_truth": sum(1 for r in ok_rows if r.get("has_truth")),
                        "mean_megapixels": (sum((r["width"] or 0) * (r["height"] or 0) for r in ok_rows)
                                            / max(len(ok_rows), 1) / 1e6)}
    res["intra"] = tf.config.threading.get_intra_op_parallelism_threads()
    res["inter"] = tf.config.threading.get_inter_op_parallelism_threads()
    statuses = defaultdict(int)
    for r in results:
        statuses[r["status"]] += 1
    res["statuses"] = dict(statuses)
    res["mean_millis"] = float(np.mean([r["millis"] for r in results if r["status"] == "ok"] or [0]))
    if args.sync:
        return res
    # the job's other outputs: results table and report
    import pyarrow as pa
    import pyarrow.parquet as pq

    t2 = time.perf_counter()
    keys = [k_ for k_ in results[0] if k_ not in colorize.THUMB_KEYS]
    pq.write_table(pa.Table.from_pylist([{k_: r.get(k_) for k_ in keys} for r in results]),
                   str(out / "results.parquet"))
    t3 = time.perf_counter()
    res["results_write_s"] = t3 - t2
    try:
        from colorspark.report import render_report

        shown = sorted(results, key=lambda r: r["relative_path"])[:config["output"]["report_max_images"]]
        summary = {"inputs": len(results), "ok": statuses.get("ok", 0), "errors": statuses.get("error", 0)}
        html = render_report(shown, summary, total_rows=len(results), title="bench")
        fs.write_bytes(fs.to_uri(out / "report.html"), html.encode("utf-8"))
        res["report_s"] = time.perf_counter() - t3
    except Exception as exc:  # the report API is not what this benchmark measures
        res["report_s"] = None
        res["report_error"] = f"{type(exc).__name__}: {exc}"
    res["total_s"] = res["pipeline_s"] + res["results_write_s"] + (res["report_s"] or 0.0)
    if args.extras:
        from colorspark.colorizer import Rendering
        from colorspark.config import defaults
        from colorspark.modeldir import load_model_dir

        model, _ = load_model_dir(args.model)
        res["flops"] = model_flops(model)
        size = int(meta["input_size"])  # the training size, and the aspect-kept shape of a 3:2 photo (the commonest)
        aspect_kept = Rendering.from_config(defaults(), meta, keep_aspect=True).network_shape(2, 3)
        res["predict"] = predict_rates(payload.build(), res["flops"]["total"], size, [(size, size), aspect_kept])
        res["matmul"] = matmul_rates(tf)
    return res


def make_profiler(colorize):
    """Exclusive time of each step colorize_partition calls, by the names it (or the colorizer) calls them under."""
    import _profile

    from colorspark import colorizer, inference, labarrays

    prof = _profile.Profiler()
    for name, label in (("decode_image", "decode"), ("is_grayscale", "gray check (is_grayscale)"),
                        ("rgb_to_lab", "RGB -> Lab, full size (colour inputs)"),
                        ("rgb_to_l", "RGB -> L, full size (gray inputs stored as RGB)"),
                        ("gray_to_l", "gray -> L, full size (single-channel gray inputs)"),
                        ("model_input", "resize L to the model input"),
                        ("predict_logits", "predict (model.predict_on_batch)"),
                        ("steered_decode", "annealed mean (steered by a reference, if any)"),
                        ("guard_ab", "do-no-harm guard"),
                        ("recombine", "upsample ab + recombine"),
                        ("lab_to_rgb8", "Lab -> RGB (colorized; gray render of colour inputs)"),
                        ("encode_jpeg", "JPEG encode")):
        prof.wrap(colorizer, name, label)
    for name, label in (("encode", "Lab array encode"), ("file_bytes", "Lab array encode")):
        prof.wrap(labarrays, name, label)
    for name, label in (("worker_model", "model build (once)"), ("make_thumbnail", "thumbnails"),
                        ("rebalancing_pixel_weights", "scoring: rebalancing weights"),
                        ("score_colorization", "scoring: rest of score_colorization"),
                        ("output_names", "output paths"), ("join_inside", "output paths")):
        prof.wrap(colorize, name, label)
    prof.wrap(inference, "annealed_mean", "annealed mean (softmax @ centres)")
    from colorspark import metrics

    for name, label in (("ssim", "scoring: SSIM (pred + gray)"), ("psnr", "scoring: PSNR (pred + gray)"),
                        ("ab_error_auc", "scoring: AuC (4 curves)"),
                        ("colourfulness", "scoring: colourfulness (3 images)")):
        prof.wrap(metrics, name, label)
    from colorspark import fs

    prof.wrap(fs, "write_bytes", "file writes (JPEG, Lab: atomic temp + rename)")
    return prof


def model_flops(model) -> dict:
    """Multiply-adds x 2 of every convolution, from the layer shapes (BN/ReLU/rescaling ignored: < 1 %)."""
    rows, total = [], 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind not in ("Conv2D", "Conv2DTranspose"):
            continue
        kshape = tuple(int(d) for d in layer.kernel.shape)
        if kind == "Conv2D":
            kh, kw, cin, cout = kshape
            h, w = (int(d) for d in layer.output.shape[1:3])
        else:  # Keras stores transposed kernels as (kh, kw, out, in); each input pixel is scattered k*k*cout times
            kh, kw, cout, cin = kshape
            h, w = (int(d) for d in layer.input.shape[1:3])
        flops = 2 * kh * kw * cin * cout * h * w
        total += flops
        rows.append([layer.name, kind, f"{kh}x{kw}", cin, cout, f"{h}x{w}", flops])
    q = int(model.output.shape[-1])
    hw = int(model.output.shape[1]) * int(model.output.shape[2])
    return {"total": total, "layers": rows, "annealed_mean": hw * (q * 4 + 2 * q * 2),
            "input": [int(d) for d in model.input.shape[1:]], "output": [int(d) for d in model.output.shape[1:]]}


def predict_rates(model, flops_at_input: float, input_size: int, shapes) -> dict:
    """Median ms per image and GFLOP/s of the forward pass colorize runs (`inference.forward_pass`), per input shape
    and batch size. The network is convolutional, so its FLOPs scale with the input's pixels."""
    import numpy as np

    from colorspark.inference import forward_pass

    forward = forward_pass(model)
    rng = np.random.default_rng(0)
    out = {}
    for height, width in shapes:
        flops = flops_at_input * height * width / input_size ** 2
        rates = {}
        for batch in (1, 8, 32, 128):
            x = (rng.random((batch, height, width, 1)) * 255).astype(np.float32)
            for _ in range(3):
                forward(x)
            times = []
            for _ in range(max(5, int(256 / batch))):
                t0 = time.perf_counter()
                forward(x)
                times.append(time.perf_counter() - t0)
            dt = sorted(times)[len(times) // 2]  # median
            rates[batch] = {"ms_per_batch": dt * 1000, "ms_per_image": dt / batch * 1000,
                            "gflops": flops * batch / dt / 1e9}
        out[f"{height}x{width}"] = rates
    return out


def matmul_rates(tf) -> dict:
    """Best-of-N float32 2048x2048 matmul rate (GFLOP/s): TensorFlow at this process's threads, and NumPy's BLAS."""
    import numpy as np

    n = 2048
    flop = 2 * n ** 3
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    best = float("inf")
    for _ in range(10):
        t0 = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - t0)
    res = {"tf": flop / best / 1e9}
    x = np.random.default_rng(0).random((n, n), dtype=np.float32)
    y = np.random.default_rng(1).random((n, n), dtype=np.float32)
    best = float("inf")
    for _ in range(6):
        t0 = time.perf_counter()
        x @ y
        best = min(best, time.perf_counter() - t0)
    res["numpy"] = flop / best / 1e9
    return res


def run_plain(args, name, input_dir, threads, extras=False, part="0/1", sync=None, wait=True):
    work = Path(args.workdir)
    result = work / f"plain-{name}-{threads}t-{part.replace('/', 'of')}.json"
    result.unlink(missing_ok=True)
    cmd = [str(C.PY), __file__, "--plain", name, "--input", str(input_dir), "--out",
           str(work / "plain-out" / f"{name}-{threads}t-{part.replace('/', 'of')}"), "--threads", str(threads),
           "--part", part, "--model", args.model, "--result", str(result)]
    cmd += sum((["--set", o] for o in args.overrides), [])
    if extras:
        cmd.append("--extras")
    if sync:
        cmd += ["--sync", str(sync)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)}
    with open(work / f"plain-{name}-{threads}t-{part.replace('/', 'of')}.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=C.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if not wait:
        return proc, result
    rc = proc.wait()
    if rc != 0 or not result.is_file():
        raise SystemExit(f"plain run failed:\n{C.tail(Path(log.name), 40)}")
    return json.loads(result.read_text())


def pool2(args, name, input_dir) -> dict:
    sync = Path(args.workdir) / f"sync-{uuid.uuid4().hex[:6]}"
    sync.mkdir(parents=True)
    procs = [run_plain(args, name, input_dir, 1, part=f"{i}/2", sync=sync, wait=False) for i in range(2)]
    while not all((sync / f"ready-{i}").exists() for i in range(2)):
        if any(p.poll() is not None for p, _ in procs):
            raise SystemExit("a (c) process died before starting")
        time.sleep(0.05)
    mon = C.CpuMonitor().start()
    go = time.time()
    (sync / "go").write_text("1")
    outs = []
    for p, result in procs:
        if p.wait() != 0:
            raise SystemExit("a (c) process failed")
        outs.append(json.loads(result.read_text()))
    cpu = mon.stop()
    shutil.rmtree(sync, ignore_errors=True)
    n = sum(o["images"] for o in outs)
    wall = max(o["end"] for o in outs) - go
    return {"images": n, "seconds": wall, "ips": n / wall, "parts": outs, "cpu": cpu}


# --- main -------------------------------------------------------------------------------------------------------------

def spark_phase(args, work, zip_path, runs, run_sets=()):
    spark, elog, cpu, submit_s = C.driver_phase(
        C.BENCH / "colorize_driver.py",
        sum((["--run", r] for r in runs), []) + ["--output", str(work / "spark-out"), "--model", args.model]
        + sum((["--set", o] for o in args.overrides), []) + sum((["--run-set", o] for o in run_sets), []),
        work=work, tag="", master=args.master, zip_path=zip_path)
    for r in spark["runs"]:
        r["ips"] = r["summary"]["ok"] / r["seconds"]
        r["jobs"], r["jobs_wall"] = C.job_table(elog, r["start"], r["end"])
    if not args.keep_outputs:
        shutil.rmtree(work / "spark-out", ignore_errors=True)
    return spark, cpu, submit_s


def main():
    args = parse_args()
    if args.plain:
        res = plain(args)
        Path(args.result).write_text(json.dumps(res, indent=2, default=str))
        return
    work, idle, info, cmd, zip_path = C.start_bench(args)
    meta = json.loads((Path(args.model) / "colorspark.json").read_text())
    gray_dir = work / "gray"
    colour_dir = work / "colour"
    C.replicate(gray_dir, args.images, args.subdirs, gray=True, photos=Path(args.photos), log=C.say)
    if args.colour_images:
        C.replicate(colour_dir, args.colour_images, args.subdirs, photos=Path(args.photos), log=C.say)
    if args.progress_pairs:
        return progress_cost(args, work, zip_path, gray_dir, info, idle, cmd)

    # (a) Spark
    runs = ["gray1=" + str(gray_dir), "gray2=" + str(gray_dir)]
    if args.colour_images:
        runs.append("colour=" + str(colour_dir))
    spark, spark_cpu, submit_s = spark_phase(args, work, zip_path, runs)
    for r in spark["runs"]:
        C.say(f"[bench] (a) Spark {r['name']}: {r['summary']['ok']} images in {r['seconds']:.1f} s = "
              f"{r['ips']:.2f} img/s (in-task {r['summary'].get('mean_millis_per_image') or 0:.0f} ms/image)")

    # (b) plain, gray then colour
    C.settle(skip=args.no_wait, log=C.say)
    mon = C.CpuMonitor().start()
    b_gray = run_plain(args, "gray", gray_dir, 2, extras=True)
    b_gray["cpu"] = mon.stop()
    C.say(f"[bench] (b) plain gray: pipeline {b_gray['pipeline_s']:.1f} s, total {b_gray['total_s']:.1f} s = "
          f"{b_gray['images'] / b_gray['total_s']:.2f} img/s (TF intra {b_gray['intra']})")
    b_colour = None
    if args.colour_images:
        C.settle(skip=args.no_wait, log=C.say)
        mon = C.CpuMonitor().start()
        b_colour = run_plain(args, "colour", colour_dir, 2)
        b_colour["cpu"] = mon.stop()
        C.say(f"[bench] (b) plain colour: total {b_colour['total_s']:.1f} s = "
              f"{b_colour['images'] / b_colour['total_s']:.2f} img/s")
    pool = None
    if not args.no_pool:
        C.settle(skip=args.no_wait, log=C.say)
        pool = pool2(args, "gray", gray_dir)
        C.say(f"[bench] (c) 2 processes x 1 thread gray: {pool['ips']:.2f} img/s")
    scaled = []
    for scale in (float(x) for x in args.scales.split(",") if x):
        folder = work / f"gray-x{scale:g}"
        C.replicate(folder, max(8, int(320 / scale ** 2)), args.subdirs, gray=True, scale=scale,
                    photos=Path(args.photos), log=C.say)
        C.settle(skip=args.no_wait, log=C.say)
        run = run_plain(args, f"gray-x{scale:g}", folder, 2)
        scaled.append({"scale": scale, **{k: run[k] for k in ("images", "pipeline_s", "mean_millis", "breakdown")}})
        C.say(f"[bench] (b) plain gray x{scale:g}: {run['pipeline_s'] / run['images'] * 1000:.1f} ms per image at "
              f"{run['breakdown']['mean_megapixels']:.2f} MP")
    if not args.keep_outputs:
        shutil.rmtree(work / "plain-out", ignore_errors=True)

    by = {r["name"]: r for r in spark["runs"]}
    ratios = {"gray1": by["gray1"]["ips"] / (b_gray["images"] / b_gray["total_s"]),
              "gray2": by["gray2"]["ips"] / (b_gray["images"] / b_gray["total_s"])}
    if b_colour and "colour" in by:
        ratios["colour"] = by["colour"]["ips"] / (b_colour["images"] / b_colour["total_s"])
    C.say("[bench] ratios (a)/(b): " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()) + " (target >= 0.85)")
    result = {"args": vars(args), "machine": info, "idle": idle, "spark": spark, "spark_cpu": spark_cpu,
              "submit_s": submit_s, "b_gray": b_gray, "b_colour": b_colour, "pool": pool, "ratios": ratios,
              "scaled": scaled,
              "model_meta": {k: meta.get(k) for k in ("settings", "rounds_done", "model_sha256", "input_size")}}
    C.write_json(work / "result.json", result)
    if not args.no_md:
        C.md_update(KEY, render_md(args, info, idle, cmd, result))
        C.say(f"[bench] updated {C.BENCHMARKS_MD}")


def progress_cost(args, work, zip_path, gray_dir, info, idle, cmd):
    """Warm runs without and with progress lines (every second), in pairs of alternating order, in one session."""
    order = [("off", "on") if i % 2 == 0 else ("on", "off") for i in range(args.progress_pairs)]
    runs = ["warmup=" + str(gray_dir)] + [f"{state}{i}={gray_dir}" for i, pair in enumerate(order) for state in pair]
    run_sets = ["warmup:log.progress_seconds=0"] + [
        f"{state}{i}:log.progress_seconds={1 if state == 'on' else 0}" for i, pair in enumerate(order)
        for state in pair]
    spark, _, _ = spark_phase(args, work, zip_path, runs, run_sets)
    by = {r["name"]: r for r in spark["runs"]}
    pairs = [(by[f"off{i}"]["seconds"], by[f"on{i}"]["seconds"]) for i in range(args.progress_pairs)]
    ratios = [on / off for off, on in pairs]
    C.say("[bench] progress on/off time ratios: " + ", ".join(f"{r:.3f}" for r in ratios))
    C.write_json(work / "progress.json", {"args": vars(args), "machine": info, "pairs": pairs, "ratios": ratios})
    if not args.no_md:
        lines = ["## 3d. What the progress lines cost (`bench/colorize_bench.py --progress-pairs`)\n",
                 C.machine_block(info, idle, cmd),
                 f"- {args.images} grayscale JPEGs, warm `colorize.run` in one session on `{args.master}`; each pair "
                 "runs once with `log.progress_seconds=0` and once with `1` (ten times the default rate), "
                 "alternating which goes first\n",
                 C.md_table(["pair", "off s", "on s", "on / off"],
                            [[i + 1, f"{off:.2f}", f"{on:.2f}", f"{on / off:.3f}"]
                             for i, (off, on) in enumerate(pairs)]),
                 f"\nMean on/off ratio {sum(ratios) / len(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})."]
        C.md_update("colorize-progress", "\n".join(lines))
        C.say(f"[bench] updated {C.BENCHMARKS_MD}")


def render_md(args, info, idle, cmd, res) -> str:
    target = 0.85
    spark, b_gray, b_colour, pool, ratios = res["spark"], res["b_gray"], res["b_colour"], res["pool"], res["ratios"]
    by = {r["name"]: r for r in spark["runs"]}
    cfg = spark["config"]
    L = ["## 3. Colorize throughput (`bench/colorize_bench.py`)\n", C.machine_block(info, idle, cmd)]
    L.append(f"- model: {C.describe_model(args.model)}; "
             f"colorize.batch_size={cfg['colorize']['batch_size']}, lab_format={cfg['output']['lab_format']}, "
             f"lab_encoding={cfg['output']['lab_encoding']}, "
             f"jpeg_quality={cfg['output']['jpeg_quality']}; master `{args.master}`")
    L.append(f"- inputs: {args.images} grayscale JPEGs (the shared photos replicated and converted to L mode) and "
             f"{args.colour_images} colour JPEGs (replicas; colorized from L, then scored), ≤ 512 px, in "
             f"`{args.workdir}`\n")
    L.append("### Throughput\n")
    gi = b_gray["images"] / b_gray["total_s"]
    rows = []
    for name, label in (("gray1", "(a) Spark, gray, run 1 (starts workers, builds the model)"),
                        ("gray2", "(a) Spark, gray, run 2 (warm)"), ("colour", "(a) Spark, colour (scored), warm")):
        if name in by:
            r = by[name]
            rows.append([label, r["summary"]["ok"], f"{r['seconds']:.1f}", f"{r['ips']:.2f}",
                         f"{ratios.get(name, float('nan')):.2f}"])
    rows.append(["(b) plain, gray, TF 2 threads: pipeline + results + report", b_gray["images"],
                 f"{b_gray['total_s']:.1f}", f"{gi:.2f}", "1.00"])
    rows.append(["(b) plain, gray: `colorize_partition` alone", b_gray["images"], f"{b_gray['pipeline_s']:.1f}",
                 f"{b_gray['images'] / b_gray['pipeline_s']:.2f}", ""])
    if b_colour:
        rows.append(["(b) plain, colour (scored), TF 2 threads, all outputs", b_colour["images"],
                     f"{b_colour['total_s']:.1f}", f"{b_colour['images'] / b_colour['total_s']:.2f}", "1.00 (colour)"])
    if pool:
        rows.append(["(c) reference: 2 plain processes × 1 TF thread, gray, `colorize_partition`", pool["images"],
                     f"{pool['seconds']:.1f}", f"{pool['ips']:.2f}", f"{pool['ips'] / gi:.2f}"])
    L.append(C.md_table(["measurement", "images", "seconds", "images/s", "vs (b)"], rows))
    verdict = {name: "met" if ratio >= target else "NOT met" for name, ratio in ratios.items()}
    L.append(f"\n**Target (a)/(b) ≥ {target}: {verdict['gray2']} on a warm run ({ratios['gray2']:.2f}); "
             f"{verdict['gray1']} on the first run ({ratios['gray1']:.2f})**, which also pays the Python workers' "
             f"start, the TensorFlow import and the model build"
             + (f"; colour {ratios['colour']:.2f}" if "colour" in ratios else "")
             + f". Spark session start-up ({spark['session_s']:.1f} s) excluded. Other processes used "
             f"{res['spark_cpu']['foreign_cores']:.2f} cores during (a), {b_gray['cpu']['foreign_cores']:.2f} during "
             f"(b) gray. (b) used {b_gray['cpu_s'] / b_gray['pipeline_s']:.2f} cores on average (TF intra "
             f"{b_gray['intra']}, inter {b_gray['inter']}).\n")

    L.append("### Per-image time split (plain process, ms per image)\n")
    sets = [("gray", b_gray["breakdown"])] + ([("colour", b_colour["breakdown"])] if b_colour else [])
    keys = []
    for _, bd in sets:
        keys += [k for k in bd["ms"] if k not in keys]
    rows = []
    for k in keys:
        rows.append([k] + [f"{bd['ms'].get(k, 0.0):.2f}" for _, bd in sets])
    totals = [sum(bd["ms"].values()) for _, bd in sets]
    rows.append(["**sum**"] + [f"**{t:.1f}**" for t in totals])
    L.append(C.md_table(["step"] + [f"{n} ({bd['images']} images, {bd['mean_megapixels']:.2f} MP)" for n, bd in sets],
                        rows))
    top = sorted(sets[0][1]["ms"].items(), key=lambda kv: -kv[1])[:3]
    for n_, bd in sets:
        if bd.get("one_time_s"):
            L.append(f"\nOne-time costs in the {n_} run (first call minus a normal call; every new Python worker pays "
                     f"them once; not in the table above, but in the throughput): " + ", ".join(
                         f"{k} {v:.2f} s" for k, v in sorted(bd["one_time_s"].items(), key=lambda kv: -kv[1])) + ".")
    L.append("\nLargest steps (gray): " + ", ".join(f"{k} {v:.1f} ms ({v / totals[0]:.0%})" for k, v in top)
             + f". Measured inside the (b) runs above (exclusive time of each function colorize_partition calls). "
             f"Spark's own per-image in-task time (results.millis, "
             f"mean): gray warm {by['gray2']['summary'].get('mean_millis_per_image') or 0:.1f} ms"
             + (f", colour {by['colour']['summary'].get('mean_millis_per_image') or 0:.1f} ms"
                if "colour" in by else "")
             + f"; plain (b): {b_gray['mean_millis']:.1f} ms gray"
             + (f", {b_colour['mean_millis']:.1f} ms colour" if b_colour else "") + ".\n")

    if res.get("scaled"):
        L.append("### Per-image cost against pixel count (plain process (b), gray, TF 2 threads)\n")
        sets = [(1.0, b_gray["images"], b_gray["pipeline_s"], b_gray["breakdown"]["mean_megapixels"])]
        sets += [(r["scale"], r["images"], r["pipeline_s"], r["breakdown"]["mean_megapixels"]) for r in res["scaled"]]
        L.append(C.md_table(["photos scaled by", "images", "mean MP", "ms per image", "ms per MP"],
                            [[f"{scale:g}", n, f"{mp:.2f}", f"{sec / n * 1000:.1f}", f"{sec / n * 1000 / mp:.1f}"]
                             for scale, n, sec, mp in sets]))
        L.append("")

    fl = b_gray.get("flops")
    if fl:
        mf = fl["total"] / 1e6
        pr = b_gray["predict"]
        mm_rate = b_gray["matmul"]
        predict_batch = cfg["colorize"]["batch_size"]
        L.append("### Model cost vs. the machine's limit\n")
        L.append(f"- model FLOPs per image ({'×'.join(map(str, fl['input']))} input → "
                 f"{'×'.join(map(str, fl['output']))} logits): **{mf:.0f} MFLOP** (2·k²·Cin·Cout·H·W per "
                 f"convolution; the transposed convolution counted per input pixel), plus "
                 f"{fl['annealed_mean'] / 1e6:.1f} MFLOP for the annealed mean")
        L.append(f"- measured float32 matmul (2048², 2 threads, best of 10): TensorFlow {mm_rate['tf']:.1f} GFLOP/s, "
                 f"NumPy {mm_rate['numpy']:.1f} GFLOP/s")
        for shape, rates in pr.items():
            at_batch = rates.get(str(predict_batch), rates.get(predict_batch, {})).get("gflops", float("nan"))
            L.append(f"- forward pass at {shape.replace('x', '×')} (`inference.forward_pass`, TF 2 threads, median): "
                     + "; ".join(f"batch {b}: {v['ms_per_image']:.2f} ms/image = {v['gflops']:.1f} GFLOP/s"
                                 for b, v in rates.items())
                     + f" → at colorize's batch {predict_batch}: {at_batch / mm_rate['tf']:.0%} of the matmul rate")
        L.append(C.md_table(["layer", "kind", "kernel", "Cin", "Cout", "H×W", "MFLOP"],
                            [r[:6] + [f"{r[6] / 1e6:.1f}"] for r in fl["layers"]]))
        L.append("")
    for name in ("gray1", "gray2"):
        r = by[name]
        L.append(f"### Spark {name} by job ({r['seconds']:.1f} s; jobs cover {r['jobs_wall']:.1f} s, the rest is "
                 f"driver-side work between jobs)\n")
        L.append(C.job_md_table(r["jobs"]))
        L.append("")
    return "\n".join(L)


if __name__ == "__main__":
    main()
