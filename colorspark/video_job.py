"""Job 3's video pass (driver): colorize every video file below --input, segment by segment across the cluster.

Steps: probe the videos (as Spark tasks: a probe demuxes the whole file), plan segments of about
`video.segment_seconds` at keyframes, colorize each segment in its own task (`video_tasks.colorize_segment`: a lost
worker costs one segment's retry), then join each video's segments into OUT/video/<relative path>.mp4 with the
source's audio copied (`video.join_segments`: no re-encoding, atomic through the storage layer). Every video gets one
row in OUT/videos, whatever happens to it; a video without a single output frame has no MP4. A video's reference is
the photos' `ReferenceMap` entry for its relative path (or a folder above it), resolved here once per video. With
`video.frames`, the segment tasks also write every output frame's JPEG and Lab array into per-video folders beside
the MP4s' (OUT/video-frames/<stem>, OUT/video-lab/<stem>, the stem as the MP4's); a video colorized again has its
earlier frame files removed first, so a folder holds one run's frames.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

from . import fs
from .datasets import write_part
from .metrics import SCORE_KEYS
from .paths import join_inside, relative_output_path, replace_with_extension
from .reference import Reference, ReferenceMap
from .video import Encoding, Probe, join_segments
from .video_tasks import FRAME_FILE, FrameFiles, SegmentOutcome, VideoPlan, colorize_segment, probe_and_plan

log = logging.getLogger("colorspark.colorize")

TABLE = "videos"
FLICKER_KEYS = ("warp_error_rgb", "warp_error_chroma", "cdc")


@dataclass
class VideoTally:
    """The video rows (with their report thumbnails) and what the summary counts."""
    rows: list = field(default_factory=list)

    def summary(self) -> dict:
        ok = [row for row in self.rows if row["status"] == "ok"]
        frames = sum(row["frames"] or 0 for row in self.rows)
        seconds = sum(row["seconds"] or 0.0 for row in self.rows)
        return {"inputs": len(self.rows), "ok": len(ok), "errors": sum(r["status"] == "error" for r in self.rows),
                "skipped": sum(r["status"] == "skipped" for r in self.rows), "frames": frames,
                "frames_lost": sum(row["frames_lost"] or 0 for row in self.rows),
                "frame_jpegs": sum(row["frame_jpegs"] or 0 for row in self.rows),
                "frame_labs": sum(row["frame_labs"] or 0 for row in self.rows),
                "task_seconds": round(seconds, 2),
                "mean_flicker": {key: _mean(row[key] for row in ok) for key in FLICKER_KEYS},
                "references": self.references(), "wrong_references": sum(bool(r["reference_looks_wrong"])
                                                                         for r in self.rows)}

    def references(self) -> dict:
        """Reference name -> videos it steered."""
        counts: dict = {}
        for row in self.rows:
            if row["reference"] is not None:
                counts[row["reference"]] = counts.get(row["reference"], 0) + 1
        return counts


def _mean(values) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return sum(present) / len(present) if present else None


def colorize_videos(spark, videos: list[str], root: str, out: str, payload, builds, plan: VideoPlan, config: dict,
                    resume: bool, staging: str, references: ReferenceMap) -> VideoTally:
    """The whole video pass; its table is staged in `staging`/videos for the driver to publish. `references` picks
    each video's reference by its relative path, as for photos."""
    tally = VideoTally()
    stems, targets = output_stems(videos, root), output_targets(videos, root, out)
    todo = []
    for uri in videos:
        if resume and fs.is_file(targets[uri]):
            tally.rows.append({**base_row(uri, root), "status": "skipped", "error": "output exists (--resume)",
                               "video_path": fs.display(targets[uri])})
        else:
            todo.append(uri)
    if todo:
        log.info("colorizing %d video(s) under %s", len(todo), root)
        files = {uri: plan.frame_files(stems[uri]) for uri in todo}
        clear_frame_files(files.values())
        plans = probe_all(spark, todo, plan.max_pixels, config["video"])
        chosen = {uri: references.for_path(relative_output_path(uri, root)) for uri in todo}
        outcomes = colorize_segments(spark, plans, chosen, files, payload, builds, plan, config)
        for uri in todo:
            probed = plans[uri][0] if isinstance(plans[uri], tuple) else plans[uri]
            row = finish_video(uri, probed, outcomes.get(uri, []), root, targets[uri], files[uri])
            tally.rows.append(add_reference(row, chosen[uri], outcomes.get(uri, []),
                                            plan.rendering.reference_warning))
    log_wrong_references(tally.rows)
    write_part(fs.join(staging, TABLE), table_of(tally.rows))
    return tally


def output_stems(videos: list[str], root: str) -> dict[str, str]:
    """Per video, its outputs' name below OUT/video (+ .mp4), OUT/video-frames and OUT/video-lab: its relative path
    without the extension; videos whose names collide that way keep their extension (clip.mov beside clip)."""
    counts: dict[str, int] = {}
    rels = {uri: relative_output_path(uri, root) for uri in videos}
    for rel in rels.values():
        key = replace_with_extension(rel, "").casefold()
        counts[key] = counts.get(key, 0) + 1
    return {uri: rel if counts[replace_with_extension(rel, "").casefold()] > 1 else replace_with_extension(rel, "")
            for uri, rel in rels.items()}


def output_targets(videos: list[str], root: str, out: str) -> dict[str, str]:
    """OUT/video/<stem>.mp4 per video (`output_stems`: clip.mov.mp4 beside clip.mp4)."""
    folder = fs.join(out, "video")
    return {uri: join_inside(folder, stem + ".mp4") for uri, stem in output_stems(videos, root).items()}


def clear_frame_files(files) -> None:
    """Remove the per-frame files an earlier run left in these videos' folders (another segmentation or a shorter
    decode would leave stale ones beside the new), and only those: a folder may also hold another video's folder.
    A folder of frame files alone goes in one call (one batch on object stores)."""
    for frame_files in files:
        for folder in (frame_files.jpeg, frame_files.lab):
            names = fs.children(folder) if folder is not None else []
            if names and all(FRAME_FILE.fullmatch(name) for name in names):
                fs.delete(folder)
                continue
            for name in names:
                if FRAME_FILE.fullmatch(name):
                    fs.delete(fs.join(folder, name))


def probe_all(spark, videos: list[str], max_pixels: int, settings: dict) -> dict:
    """URI -> (`Probe`, its segments) or the reason it cannot be colorized; probed and planned by Spark tasks, a few
    videos per task (a probe demuxes the whole file)."""
    sc = spark.sparkContext
    slices = max(1, min(len(videos), sc.defaultParallelism * 4))
    seconds, warmup = settings["segment_seconds"], settings["warmup_frames"]
    return dict(sc.parallelize(videos, slices).map(
        lambda uri: (uri, probe_and_plan(uri, max_pixels, seconds, warmup))).collect())


# A frame's fixed cost, the network's pass on its small input, in pixels' worth of the work that grows with the
# frame (decoding, colour conversion, upsampling, encoding): about 20 ms against 33 ms for a 400×300 frame's rest.
FRAME_OVERHEAD_PIXELS = 75_000


def colorize_segments(spark, plans: dict, chosen: dict, files: dict, payload, builds, plan: VideoPlan,
                      config: dict) -> dict:
    """URI -> its segments' outcomes, one Spark task per segment; `chosen` holds each video's reference (or None)
    and `files` its per-frame folders, which travel with each of its segments."""
    settings = config["video"]
    work = []
    for uri, planned in plans.items():
        if not isinstance(planned, tuple):
            continue
        probed, segments = planned
        encoding = Encoding.of(probed, settings["encoder_preset"], settings["crf"])
        shown = strip_frames(probed.frames, settings["strip_frames"])
        work += [(segment, encoding, shown, chosen[uri], files[uri]) for segment in segments]
    if not work:
        return {}
    log.info("%d video segment(s) to colorize", len(work))
    work = largest_first(work)
    outcomes = spark.sparkContext.parallelize(work, len(work)).map(
        lambda item: colorize_segment(*item, payload, builds, plan)).collect()
    by_video: dict[str, list[SegmentOutcome]] = {}
    for outcome in outcomes:
        by_video.setdefault(outcome.uri, []).append(outcome)
    return by_video


def largest_first(work: list[tuple]) -> list[tuple]:
    """The (segment, encoding, ...) tasks, the costliest first by frames × (pixels + FRAME_OVERHEAD_PIXELS): Spark
    hands the tasks out in order, and a long segment handed out last leaves the other cores idle while it runs."""
    return sorted(work, key=lambda item: item[0].frames * (item[1].width * item[1].height + FRAME_OVERHEAD_PIXELS),
                  reverse=True)


def strip_frames(frames: int, count: int) -> frozenset:
    """The frame numbers the report shows: `count` evenly spaced over the video, first and last included."""
    shown = min(count, frames)
    if shown <= 0:
        return frozenset()
    if shown == 1:
        return frozenset({frames // 2})
    return frozenset(round(i * (frames - 1) / (shown - 1)) for i in range(shown))


def base_row(uri: str, root: str) -> dict:
    return {"path": fs.display(uri), "relative_path": relative_output_path(uri, root), "status": "error",
            "error": None, "note": None, "video_path": None, "frames": None, "frames_lost": None, "fps": None,
            "duration": None, "width": None, "height": None, "rotation": None, "codec": None, "segments": None,
            "cuts": None, "seconds": None, "frames_path": None, "lab_path": None, "frame_jpegs": None,
            "frame_labs": None, "has_truth": False, "scored_frames": 0, "reference": None,
            "reference_divergence": None, "reference_looks_wrong": None,
            **dict.fromkeys(FLICKER_KEYS), **dict.fromkeys(SCORE_KEYS), "thumbs": []}


def finish_video(uri: str, probed, outcomes: list[SegmentOutcome], root: str, target: str,
                 files: FrameFiles) -> dict:
    """Join a video's segments into its MP4 and make its row, with its per-frame folders in `files`."""
    row = base_row(uri, root)
    if not isinstance(probed, Probe):
        return {**row, "error": probed}
    outcomes = sorted(outcomes, key=lambda o: o.index)
    written = sum(o.frames for o in outcomes)
    row.update(fps=float(probed.rate), width=probed.width, height=probed.height, rotation=probed.rotation,
               codec=probed.codec, segments=len(outcomes), cuts=sum(o.cuts for o in outcomes),
               frames=written, frames_lost=probed.frames + probed.frames_lost - written,
               duration=written / float(probed.rate), note=_notes(probed),
               seconds=round(sum(o.seconds for o in outcomes), 3))
    _add_frame_files(row, outcomes, files)
    errors = [o.error for o in outcomes if o.error]
    row["error"] = "; ".join(errors[:3]) if errors else None
    _add_figures(row, outcomes)
    if not written:
        row["error"] = row["error"] or "no frame could be colorized"
        return row
    started = time.perf_counter()
    try:
        join_segments([(o.part, o.first_frame) for o in outcomes if o.part], Encoding.of(probed, "", 0),
                      uri if probed.has_audio else None, target)
    except Exception as exc:
        return {**row, "error": f"joining the segments failed: {type(exc).__name__}: {exc}"}
    row.update(status="ok", video_path=fs.display(target), seconds=row["seconds"] + time.perf_counter() - started)
    return row


def _add_frame_files(row: dict, outcomes: list[SegmentOutcome], files: FrameFiles) -> None:
    """The per-frame files' counts and folders (a folder only once a file is in it): a frame the colorizer failed
    on is in the MP4 (gray) but has no files, so the counts fall short of `frames` by as many."""
    jpegs, labs = sum(o.frame_jpegs for o in outcomes), sum(o.frame_labs for o in outcomes)
    row.update(frame_jpegs=jpegs if files.jpeg else None, frame_labs=labs if files.lab else None,
               frames_path=fs.display(files.jpeg) if jpegs else None, lab_path=fs.display(files.lab) if labs else None)


def add_reference(row: dict, reference: Reference | None, outcomes: list[SegmentOutcome], warning: float) -> dict:
    """The video's reference in its row, once it steered a frame (as a photo's row names its reference only once
    it was colorized): its name, the mean over the frames of its divergence from the model's own prediction (the
    photos' measure, frame by frame, at no extra cost) and whether that mean is above `warning`, the photos'
    threshold (0: never)."""
    frames = sum(o.divergence[1] for o in outcomes)
    if reference is None or not frames:
        return row
    divergence = sum(o.divergence[0] for o in outcomes) / frames
    return {**row, "reference": reference.name, "reference_divergence": divergence,
            "reference_looks_wrong": 0 < warning < divergence}


def log_wrong_references(rows: list[dict]) -> None:
    for row in rows:
        if row["reference_looks_wrong"]:
            log.warning("reference looks wrong for video %s: %s (mean divergence over its frames %.2f)",
                        row["path"], row["reference"], row["reference_divergence"])


def _notes(probed: Probe) -> str | None:
    notes = []
    if probed.variable_rate:
        notes.append(f"variable frame rate: encoded at a constant {float(probed.rate):.3f} fps, so frame times differ "
                     "from the source's")
    if probed.rotation:
        notes.append(f"rotation tag {probed.rotation}° kept (frames colorized as stored)")
    if probed.frames_lost:
        notes.append(f"{probed.frames_lost} frame(s) announced by the header are not in the file (truncated?)")
    return "; ".join(notes) or None


def _add_figures(row: dict, outcomes: list[SegmentOutcome]) -> None:
    """Per-frame-averaged scores, flicker figures and the report's thumbnails, from the segments' sums."""
    sums: dict = {}
    for outcome in outcomes:
        for key, (total, n) in outcome.score_sums.items():
            mine = sums.setdefault(key, [0.0, 0])
            mine[0] += total
            mine[1] += n
    row.update({key: total / n for key, (total, n) in sums.items() if n})
    row["scored_frames"] = sum(o.scored for o in outcomes)
    row["has_truth"] = row["scored_frames"] > 0
    flicker = outcomes[0].flicker if outcomes else None
    for outcome in outcomes[1:]:
        flicker = flicker.merge(outcome.flicker)
    if flicker is not None:
        row.update(flicker.figures())
    row["thumbs"] = [pair for o in outcomes for _, pair in sorted(o.thumbs.items())]


def table_of(rows: list[dict]):
    """The OUT/videos table: one row per video, thumbnails left out."""
    import pyarrow as pa

    text = ("path", "relative_path", "status", "error", "note", "video_path", "frames_path", "lab_path", "codec",
            "reference")
    ints = ("frames", "frames_lost", "frame_jpegs", "frame_labs", "width", "height", "rotation", "segments", "cuts",
            "scored_frames")
    floats = ("fps", "duration", "seconds", "reference_divergence", *FLICKER_KEYS, *SCORE_KEYS)
    schema = pa.schema([*(pa.field(n, pa.string()) for n in text), *(pa.field(n, pa.int64()) for n in ints),
                        *(pa.field(n, pa.float64()) for n in floats), pa.field("has_truth", pa.bool_()),
                        pa.field("reference_looks_wrong", pa.bool_())])
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)
