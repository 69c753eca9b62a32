"""Issue 31's Scale target (`bench/video_bench.py scale`): a long video made from the shared clips, colorized by a
cold spark-submit on a standalone cluster, with the memory of each executor sampled every second.

1. The video: the four clips one after the other, looped until --minutes are filled, each frame converted to gray
   (the issue's footage), letterboxed into --size with Pillow and encoded with libx264 at a constant --fps (one
   output frame per source frame: carphone's 29.97 fps frames play at 25), a keyframe every --keyframe-seconds.
   Cached under --work by its recipe.
2. The cluster: tests/standalone.py's master and --workers workers of --cores cores on 127.0.0.1, submitted to with
   conf/spark-standalone.conf (one core and a 2 GiB heap per executor, Python workers reused), as a user would.
3. The run: `spark-submit jobs/colorize.py` with the job's defaults except `video.flicker` (off unless --flicker),
   an event log for the segment stage's times and task attempts, and /proc sampled every --interval s: each
   executor's process tree (executor JVM, pyspark daemon, Python workers) and the driver's.
4. The checks: segments planned (the job's own `plan_segments` on the probe) against the sum of the videos table's
   `segments`, its `frames` against the probe and `frames_lost`, and the MP4 decoded with PyAV: its frame count and
   that frame i has time i / fps, so that timestamps rise and every frame is there once.

Memory "stays flat" for an executor when, over the segment stage from the end of the executor's first segment on
(before it: the warm-up, i.e. Python worker start, TensorFlow import, model load, a one-off rise, not growth), the
mean PSS of the last quarter of the samples is within 10 % of the second quarter's.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import _common as C
from standalone import standalone_cluster  # _common puts tests/ on sys.path

KEY = "video-scale"
FLAT_TOLERANCE = 0.10
STANDALONE_CONF = C.ROOT / "conf" / "spark-standalone.conf"


# --- the input --------------------------------------------------------------------------------------------------------

def source_images(clips: list[Path]):
    """The clips' frames as PIL images, clip after clip, forever."""
    import av

    while True:
        for clip in clips:
            with av.open(str(clip)) as container:
                for frame in container.decode(container.streams.video[0]):
                    yield frame.to_image()


def make_long_video(clips: list[Path], folder: Path, minutes: float, size: tuple[int, int], fps: int,
                    keyframe_seconds: float) -> Path:
    """folder/<recipe>/scale.mp4 (see the module's step 1), made once; the file appears under its name only when
    complete."""
    import av
    import numpy as np
    from PIL import ImageOps

    width, height = size
    recipe = f"{minutes:g}min-{width}x{height}-{fps}fps-key{keyframe_seconds:g}s-gray"
    target = folder / recipe / "scale.mp4"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    gop = max(1, round(keyframe_seconds * fps))
    partial = target.with_name(".partial-" + target.name)
    started = time.time()
    with av.open(str(partial), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "veryfast",
                          "crf": "20"}
        for number, image in enumerate(itertools.islice(source_images(clips), round(minutes * 60 * fps))):
            gray = np.asarray(ImageOps.pad(image.convert("L"), size))
            frame = av.VideoFrame.from_ndarray(gray, format="gray").reformat(format="yuv420p")
            frame.pts = number
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    os.replace(partial, target)
    C.say(f"[bench] made {target} ({target.stat().st_size / 1e6:.0f} MB) in {time.time() - started:.0f} s")
    return target


def planned_segments(video: Path, segment_seconds: float):
    """(the probe, the segments the job plans for it with the default warm-up)."""
    from colorspark import config as cfg
    from colorspark import video as v

    probe = v.probe(str(video), 10 ** 12)
    warmup = cfg.defaults()["video"]["warmup_frames"]
    return probe, v.plan_segments(probe, segment_seconds, warmup)


# --- the run ----------------------------------------------------------------------------------------------------------

def submit_command(args, master: str, cores: int, zip_path: Path, inputs: Path, out: Path, events: Path) -> list:
    sets = [f"video.flicker={'true' if args.flicker else 'false'}", f"video.segment_seconds={args.segment_seconds}"]
    return [os.path.relpath(C.SPARK_SUBMIT, C.ROOT), "--master", master, "--properties-file",
            os.path.relpath(STANDALONE_CONF, C.ROOT), "--total-executor-cores", str(cores), "--py-files",
            os.path.relpath(zip_path, C.ROOT), "--conf", "spark.eventLog.enabled=true",
            "--conf", f"spark.eventLog.dir={events.as_uri()}", "--conf", "spark.eventLog.compress=false",
            "--conf", "spark.eventLog.rolling.enabled=false",
            "jobs/colorize.py", "--input", inputs.as_uri(), "--output", out.as_uri(),
            "--model", Path(args.model).resolve().as_uri(), *(x for s in sets for x in ("--set", s))]


def process_groups(driver: int, cluster, executor_ids: dict):
    """name -> pids, for the sampler: the driver's process tree and each live executor's. Fills `executor_ids`
    (group name -> Spark's executor ID, from the executor's command line) as executors appear."""
    def groups() -> dict:
        found = {"driver (spark-submit tree)": C.tree_of(driver)}
        for slot in range(cluster.workers):
            for pid in cluster.executor_pids(slot):
                args = C.cmdline(pid).split()
                executor = args[args.index("--executor-id") + 1] if "--executor-id" in args[:-1] else "?"
                name = f"executor {executor} (worker {slot}, pid {pid})"
                executor_ids[name] = executor
                found[name] = C.tree_of(pid)
        return found
    return groups


def run_on_cluster(args, work: Path, zip_path: Path, inputs: Path) -> dict:
    """Start the cluster, run the job cold while sampling memory, stop the cluster; the run's figures."""
    out, events, cluster_dir = work / "out", work / "events", work / "cluster"
    for folder in (out, events, cluster_dir):
        shutil.rmtree(folder, ignore_errors=True)
    events.mkdir(parents=True)
    env = {**os.environ, "PYSPARK_PYTHON": str(C.PY), "PYSPARK_DRIVER_PYTHON": str(C.PY),
           "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PYTHONPATH", None)
    with standalone_cluster(workers=args.workers, memory=f"{2 * args.cores}g", cores=args.cores,
                            base_dir=cluster_dir) as cluster:
        cmd = submit_command(args, cluster.master_url, args.workers * args.cores, zip_path, inputs, out, events)
        C.say(f"[bench] cluster up at {cluster.master_url}; $ {' '.join(cmd)}")
        monitor = C.CpuMonitor().start()
        started = time.time()
        with open(work / "spark.log", "w") as log:
            proc = subprocess.Popen(cmd, cwd=C.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            executor_ids: dict = {}
            sampler = C.MemorySampler(process_groups(proc.pid, cluster, executor_ids), args.interval, started).start()
            rc = proc.wait()
            sampler.stop()
        seconds = time.time() - started
        cpu = monitor.stop()
    if rc != 0:
        raise SystemExit(f"spark-submit exited {rc}; log tail:\n{C.tail(work / 'spark.log', 40)}")
    return {"cmd": " ".join(cmd), "seconds": seconds, "cpu": cpu, "out": out, "sampler": sampler,
            "executor_ids": executor_ids, "stage": segment_stage(C.parse_event_log(events), started)}


def segment_stage(log: dict, started: float) -> dict | None:
    """The stage with the most tasks (one per segment), its times as seconds since `started`: its start and end,
    and when each executor finished its first task there (`warm_t`, executor ID -> s)."""
    stages = sorted(log["stages"].values(), key=lambda st: (st["tasks_planned"] or 0, st["id"]))
    if not stages:
        return None
    stage = stages[-1]
    return {**stage, "start_t": stage["submitted"] - started, "end_t": stage["completed"] - started,
            "warm_t": {ex: t - started for ex, t in stage["first_finish_by_executor"].items()}}


# --- the checks -------------------------------------------------------------------------------------------------------

def decoded_timing(mp4: Path, rate: Fraction) -> dict:
    """The MP4's frames decoded with PyAV: how many, whether their times rise strictly, and whether frame i has time
    i / rate for every i (each frame exactly once, none missing, none repeated)."""
    import av

    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        times = [frame.pts * Fraction(stream.time_base) for frame in container.decode(stream)]
    return {"frames": len(times), "rising": all(b > a for a, b in zip(times, times[1:])),
            "exact": times == [Fraction(i) / rate for i in range(len(times))]}


def accounting(out: Path, probe, planned: list) -> dict:
    """What the job's videos table and its MP4 say against the probe and the plan."""
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "videos").to_pylist()
    decoded = decoded_timing(out / "video" / "scale.mp4", probe.rate) if len(rows) == 1 else None
    result = {"rows": len(rows), "status": [r["status"] for r in rows],
              "errors": [r["error"] for r in rows if r["error"]],
              "segments_planned": len(planned), "segments_rows": sum(r["segments"] or 0 for r in rows),
              "frames_probed": probe.frames, "frames_rows": sum(r["frames"] or 0 for r in rows),
              "frames_lost": sum(r["frames_lost"] or 0 for r in rows), "decoded": decoded}
    result["all_accounted"] = bool(
        result["rows"] == 1 and result["status"] == ["ok"] and not result["errors"]
        and result["segments_rows"] == result["segments_planned"] and result["frames_rows"] == probe.frames
        and result["frames_lost"] == 0 and decoded and decoded["frames"] == probe.frames and decoded["rising"]
        and decoded["exact"])
    return result


def memory_figures(run: dict, work: Path) -> dict:
    """name -> `memory_trend` of each process group over the segment stage, an executor's from the end of its first
    segment on (its warm-up: Python worker start, TensorFlow import, model load), with the flatness verdict; the
    samples of each group go to work/memory-<name>.csv."""
    stage, sampler = run["stage"], run["sampler"]
    start, end = (stage["start_t"], stage["end_t"]) if stage else (0.0, float("inf"))
    figures = {}
    for name in sampler.names():
        rows = sampler.series(name)
        warm = (stage or {}).get("warm_t", {}).get(run["executor_ids"].get(name), start)
        trend = C.memory_trend(rows, max(start, warm), end)
        change = (trend["q4_pss_mb"] - trend["q2_pss_mb"]) / trend["q2_pss_mb"] if trend["q2_pss_mb"] else None
        figures[name] = {**trend, "from_t": max(start, warm), "q4_vs_q2": change,
                         "flat": change is not None and abs(change) <= FLAT_TOLERANCE}
        C.write_memory_csv(work / ("memory-" + "".join(c if c.isalnum() else "-" for c in name) + ".csv"), rows)
    return figures


# --- the benchmark ----------------------------------------------------------------------------------------------------

def run_scale(args, clips: list[Path]) -> None:
    args.workdir = args.work
    work, idle, info, cmd, zip_path = C.start_bench(args)
    size = tuple(int(x) for x in args.size.lower().split("x"))
    video = make_long_video(clips, work / "input", args.minutes, size, args.fps, args.keyframe_seconds)
    probe, planned = planned_segments(video, args.segment_seconds)
    C.say(f"[bench] {video}: {probe.frames} frames, {len(planned)} segments planned")
    C.settle(skip=args.no_wait, log=C.say)
    run = run_on_cluster(args, work, zip_path, video.parent)
    checks = accounting(run["out"], probe, planned)
    memory = memory_figures(run, work)
    C.write_json(work / "result.json", {"args": vars(args), "machine": info, "idle": idle, "checks": checks,
                                        "memory": memory, "seconds": run["seconds"], "cpu": run["cpu"],
                                        "stage": run["stage"]})
    body = render_md(args, info, idle, cmd, probe, video, run, checks, memory)
    print(body)
    if not args.no_md:
        C.md_update(KEY, body)
        C.say(f"[bench] updated {C.BENCHMARKS_MD}")


def render_md(args, info, idle, cmd, probe, video: Path, run: dict, checks: dict, memory: dict) -> str:
    executors = {k: v for k, v in memory.items() if k.startswith("executor")}
    return "\n".join([
        f"### 7d. Scale: a {args.minutes:g}-minute video on a standalone cluster (`bench/video_bench.py scale`)\n",
        C.machine_block(info, idle, cmd) + setup_md(args, probe, video, run), run_table(probe, run, checks), "",
        memory_table(memory, executors), "", *verdicts(probe, checks, executors),
        f"- samples: `{args.work}/memory-*.csv` (not committed)\n"])


def setup_md(args, probe, video: Path, run: dict) -> str:
    from colorspark import config as cfg

    defaults = cfg.defaults()["video"]
    return (f"- model: {C.describe_model(args.model)}\n"
            f"- input: `{video}`, made by the benchmark from the four shared clips in a loop, converted to gray, "
            f"letterboxed to {probe.width}×{probe.height}, H.264 (libx264 veryfast, crf 20) at {args.fps} fps with a "
            f"keyframe every {args.keyframe_seconds:g} s: {probe.frames:,} frames, {probe.duration / 60:.1f} min, "
            f"{video.stat().st_size / 1e6:.0f} MB\n"
            f"- cluster: master + {args.workers} worker(s) × {args.cores} core(s) on 127.0.0.1 (tests/standalone.py); "
            "`conf/spark-standalone.conf`: one core and a 2 GiB heap per executor, Python workers reused\n"
            f"- job (cold): `{run['cmd']}`; `video.flicker` {'on' if args.flicker else 'off'}, otherwise the "
            f"defaults (segments of about {args.segment_seconds:g} s, {defaults['warmup_frames']} warm-up frames, "
            f"temporal {defaults['temporal']})\n"
            f"- memory: every {args.interval:g} s from /proc, each executor's process tree (executor JVM, pyspark "
            "daemon, Python workers) and the driver's; PSS splits shared pages, so it is the honest total. Trend over "
            f"the segment stage (times from the event log: {stage_span(run['stage'])}), for an executor from the end "
            "of its first segment on (its warm-up: Python worker start, TensorFlow import, model load), in quarters "
            f"of the samples; **flat** means the last quarter's mean PSS within {FLAT_TOLERANCE:.0%} of the second "
            "quarter's\n")


def run_table(probe, run: dict, checks: dict) -> str:
    stage, decoded = run["stage"], checks["decoded"] or {}
    stage_seconds = (stage["end_t"] - stage["start_t"]) if stage else run["seconds"]
    return C.md_table(
        ["frames (probe)", "segments planned", "segments in the row", "task attempts", "frames in the row",
         "frames_lost", "MP4 frames decoded", "frame i at i / fps", "spark-submit wall s", "frames/s",
         "segment stage s", "frames/s in it", "other processes' CPU"],
        [[f"{probe.frames:,}", checks["segments_planned"], checks["segments_rows"], stage["tasks"] if stage else "–",
          f"{checks['frames_rows']:,}", checks["frames_lost"], f"{decoded.get('frames', 0):,}",
          "yes" if decoded.get("exact") else f"no (rising: {decoded.get('rising')})", f"{run['seconds']:.0f}",
          f"{checks['frames_rows'] / run['seconds']:.1f}", f"{stage_seconds:.0f}",
          f"{checks['frames_rows'] / stage_seconds:.1f}", f"{run['cpu']['foreign_cores']:.2f} cores"]])


def memory_table(memory: dict, executors: dict) -> str:
    return C.md_table(
        ["process tree", "peak PSS MB", "peak RSS MB", "trend from s", "PSS q1 → q2 → q4 MB", "RSS q1 → q2 → q4 MB",
         "PSS slope from q2, MB/min", "q4 vs q2", "flat"],
        [[name, f"{m['peak_pss_mb']:.0f}", f"{m['peak_rss_mb']:.0f}", f"{m['from_t']:.0f}",
          f"{m['q1_pss_mb']:.0f} → {m['q2_pss_mb']:.0f} → {m['q4_pss_mb']:.0f}",
          f"{m['q1_rss_mb']:.0f} → {m['q2_rss_mb']:.0f} → {m['q4_rss_mb']:.0f}",
          f"{m['slope_after_warmup_mb_per_min']:+.1f}", f"{m['q4_vs_q2']:+.1%}" if m["q4_vs_q2"] is not None else "–",
          ("yes" if m["flat"] else "**no**") if name in executors else "(driver)"] for name, m in memory.items()])


def verdicts(probe, checks: dict, executors: dict) -> list[str]:
    decoded = checks["decoded"] or {}
    flat = bool(executors) and all(m["flat"] for m in executors.values())
    lines = [f"- every segment accounted for: **{'yes' if checks['all_accounted'] else 'no'}** "
             f"({checks['segments_rows']} of {checks['segments_planned']} segments, {checks['frames_rows']:,} of "
             f"{probe.frames:,} frames, {checks['frames_lost']} lost, {decoded.get('frames', 0):,} frames in the MP4"
             + (f"; errors: {checks['errors']}" if checks["errors"] else "") + ")",
             f"- memory per executor stays flat: **{'yes' if flat else 'no'}** ("
             + "; ".join(f"{name.split(' (')[0]}: {m['q2_pss_mb']:.0f} → {m['q4_pss_mb']:.0f} MB PSS"
                         for name, m in executors.items()) + ")"]
    for name, m in executors.items():
        q2, q4 = m["q2_by_component"], m["q4_by_component"]
        lines.append(f"- {name.split(' (')[0]}, RSS by component q2 → q4: " + ", ".join(
            f"{kind} {q2[kind]:.0f} → {q4[kind]:.0f} MB" for kind in q2 if q2[kind] and q4.get(kind)))
    return lines


def stage_span(stage: dict | None) -> str:
    if not stage:
        return "not found, whole run used"
    return (f"stage {stage['id']}, {stage['tasks_planned']} tasks, {stage['start_t']:.0f}–{stage['end_t']:.0f} s "
            "after spark-submit")

