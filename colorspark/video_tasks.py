"""(executors) The colorize job's video work: probing a video, and colorizing one segment of it.

A segment task decodes its frames (after a few warm-up frames that only prime the temporal state), colorizes them
in batches through `colorizer.colorize_stream`, the photos' own code path (so a video's reference steers every frame
as it steers a photo, its logit shift made once per task), with `temporal.Smoother` adjusting each frame's predicted
ab in order, encodes the result as H.264 and writes it into the run's staging folder (a retried task writes the same
name again). With `video.frames` it also writes each output frame's JPEG and Lab array as photos get theirs
(`colorize_tasks.write_image_files`), named by frame number, so a retry rewrites the same files. It returns a small
`SegmentOutcome`: frames written, why any are missing, score and flicker sums, and the report's thumbnails. Nothing
here raises for a bad video: the reason goes back as data.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass, field, replace

import numpy as np

from . import fs, labarrays
from .colorize_tasks import write_image_files
from .colorizer import Colorized, Failed, Rendering, colorize_stream
from .inference import worker_model
from .metrics import SCORE_KEYS, rebalancing_pixel_weights, score_colorization
from .paths import join_inside
from .reference import Reference
from .runtime import freeze_imports
from .samples import L_SCALE
from .temporal import Smoother, Temporal
from .thumbnails import make_thumbnail
from .video import DecodeReport, Encoding, Segment, VideoError, decode_segment, encode_frames, plan_segments, probe
from .video_metrics import FlickerMeter, FlickerSums

# The names of a video's per-frame files: its frame numbers (`frame_name`) and, for hdf5, one file per segment.
FRAME_FILE = re.compile(r"\d{6,}\.(jpg|npy|mat)|segment-\d{5,}\.h5")


def frame_name(number: int) -> str:
    """A frame's files' name without extension: its number in the output video, six digits (more past 999,999)."""
    return f"{number:06d}"


@dataclass(frozen=True)
class FrameFiles:
    """Where one video's per-frame files go (`video.frames`): a folder for the JPEGs and one for the Lab arrays,
    each None when not asked for."""
    jpeg: str | None = None
    lab: str | None = None


@dataclass(frozen=True)
class VideoPlan:
    """What a segment task needs besides the model and its segment; small and picklable."""
    rendering: Rendering
    temporal: Temporal
    encoder_preset: str
    crf: int
    parts: str                      # the staging folder of the encoded segments
    prior: tuple
    thumb_size: int
    score_every: int
    flicker: bool
    max_pixels: int
    out: str = ""                   # the output folder, for the per-frame files
    frames: tuple = ()              # video.frames: "jpeg" and/or "lab"
    lab_format: str = "none"
    lab_encoding: str = "lab8"

    @classmethod
    def from_config(cls, config: dict, meta: dict, rendering: Rendering, staging: str, out: str) -> VideoPlan:
        """A frame is encoded as a JPEG only when `video.frames` asks for the JPEGs: the MP4 does not need it."""
        video, output = config["video"], config["output"]
        frames = tuple(video["frames"])
        return cls(rendering=replace(rendering, encode_jpeg="jpeg" in frames), temporal=Temporal.from_config(config),
                   encoder_preset=video["encoder_preset"], crf=video["crf"], parts=fs.join(staging, "video-parts"),
                   prior=tuple(meta["prior"]), thumb_size=output["thumb_size"],
                   score_every=video["score_every"], flicker=video["flicker"],
                   max_pixels=config["limits"]["max_pixels"], out=out, frames=frames,
                   lab_format=output["lab_format"], lab_encoding=output["lab_encoding"])

    def frame_files(self, stem: str) -> FrameFiles:
        """The per-frame folders of the video whose MP4 is OUT/video/`stem`.mp4: OUT/video-frames/`stem` and
        OUT/video-lab/`stem` (none with lab_format none)."""
        wants_lab = "lab" in self.frames and self.lab_format != "none"
        return FrameFiles(jpeg=join_inside(fs.join(self.out, "video-frames"), stem) if "jpeg" in self.frames else None,
                          lab=join_inside(fs.join(self.out, "video-lab"), stem) if wants_lab else None)


@dataclass
class SegmentOutcome:
    """What one segment task hands back to the driver."""
    uri: str
    index: int
    part: str | None                # the encoded segment's URI; None if no frame was written
    first_frame: int
    frames: int                     # frames written
    expected: int
    error: str | None = None
    failed_frames: int = 0          # frames the colorizer failed on, written gray
    seconds: float = 0.0
    cuts: int = 0
    score_sums: dict = field(default_factory=dict)
    scored: int = 0
    flicker: FlickerSums = field(default_factory=FlickerSums)
    thumbs: dict = field(default_factory=dict)  # frame number -> (input thumbnail, colorized thumbnail)
    divergence: list = field(default_factory=lambda: [0.0, 0])  # [sum, frames] of the reference's divergence
    frame_jpegs: int = 0            # per-frame files written (video.frames)
    frame_labs: int = 0


def probe_and_plan(uri: str, max_pixels: int, segment_seconds: float, warmup_frames: int):
    """(executors) (the video's `Probe` without its timestamps, its segments), or the reason it cannot be colorized,
    as a string."""
    try:
        probed = probe(uri, max_pixels)
        return probed.planned(), plan_segments(probed, segment_seconds, warmup_frames)
    except VideoError as exc:
        return str(exc)
    except Exception as exc:  # a bug or an unreadable file: still one row for this video
        return f"cannot read the video: {type(exc).__name__}: {exc}"


def part_name(segment: Segment) -> str:
    """The encoded segment's file name: the same in every attempt of its task, different for every segment."""
    return f"{hashlib.sha256(segment.uri.encode()).hexdigest()[:16]}-{segment.index:05d}.mp4"


def segment_lab_file(files: FrameFiles, segment: Segment, plan: VideoPlan) -> labarrays.Hdf5LabFile | None:
    """With lab_format hdf5, the segment's Lab arrays go into one file, `files.lab`/segment-<index>.h5, one dataset
    per frame (as a photo partition's go into one file); None otherwise."""
    if files.lab is None or plan.lab_format != "hdf5":
        return None
    return labarrays.Hdf5LabFile(join_inside(files.lab, f"segment-{segment.index:05d}.h5"), plan.lab_encoding)


def colorize_segment(segment: Segment, encoding: Encoding, shown: frozenset, reference: Reference | None,
                     files: FrameFiles, payload_bc, builds, plan: VideoPlan) -> SegmentOutcome:
    """Colorize one segment into `plan.parts` (and its frames' files into `files`); `shown` holds the frame numbers
    the report shows, `reference` (or None) steers every frame's colours, warm-up frames included."""
    freeze_imports()
    started = time.perf_counter()
    outcome = SegmentOutcome(segment.uri, segment.index, None, segment.first_frame, 0, segment.frames)
    report = DecodeReport()
    h5lab = segment_lab_file(files, segment, plan)
    try:
        frames = _colorized_frames(segment, plan, payload_bc, builds, report, outcome, shown, reference,
                                   _frame_writer(files, plan, outcome, h5lab))
        data, outcome.frames = encode_frames(frames, encoding)
        if outcome.frames:
            outcome.part = fs.join(plan.parts, part_name(segment))
            fs.write_bytes(outcome.part, data)
    except Exception as exc:  # encoding or writing failed: the segment's frames are lost, the row says why
        outcome.error = f"segment {segment.index}: {type(exc).__name__}: {exc}"
        outcome.part, outcome.frames = None, 0
    _publish_lab_file(h5lab, outcome)
    if report.error and not outcome.error:
        outcome.error = f"segment {segment.index}: {report.error}"
    outcome.seconds = time.perf_counter() - started
    return outcome


def _frame_writer(files: FrameFiles, plan: VideoPlan, outcome: SegmentOutcome, h5lab):
    """What writes one output frame's JPEG and Lab array (named by `frame_name`), counting them
    into `outcome`; None when `video.frames` asks for neither. A frame whose files cannot be written stays in the
    MP4: the error goes into the outcome and the counts leave it out."""
    if files.jpeg is None and files.lab is None:
        return None

    def write(image: Colorized, number: int) -> None:
        try:
            jpeg, lab = write_image_files(image, frame_name(number), files.jpeg, files.lab, plan.lab_format,
                                          plan.lab_encoding, h5lab)
        except Exception as exc:
            outcome.error = outcome.error or f"frame {number}: writing its files failed: {type(exc).__name__}: {exc}"
            return
        outcome.frame_jpegs += jpeg is not None
        outcome.frame_labs += lab is not None

    return write


def _publish_lab_file(h5lab, outcome: SegmentOutcome) -> None:
    """Publish the segment's HDF5 Lab file with the frames it holds, whatever happened to the MP4 segment (the
    counts say which frames have files); if that fails, none of them has its Lab array."""
    if h5lab is None:
        return
    try:
        h5lab.close()
    except Exception as exc:
        outcome.error = outcome.error or f"segment {outcome.index}: writing its Lab file failed: {exc}"
        outcome.frame_labs = 0


def _colorized_frames(segment: Segment, plan: VideoPlan, payload_bc, builds, report: DecodeReport,
                      outcome: SegmentOutcome, shown: frozenset, reference: Reference | None, write_files):
    """The segment's colorized frames as RGB, in order, at most `segment.frames` of them; scores, flicker sums and
    thumbnails recorded into `outcome` on the way, and each colorized frame's files written by `write_files` (if
    any). A frame the colorizer fails on is written as it came in, and gets no files; warm-up frames none either."""
    smoother = Smoother(plan.temporal)
    meter = FlickerMeter(cut_threshold=plan.temporal.cut_threshold) if plan.flicker else None
    stream = colorize_stream(_keyed(decode_segment(segment, report), segment.first_frame, plan.score_every),
                             lambda: worker_model(payload_bc.value, builds), plan.rendering,
                             reference_of=(lambda key: reference) if reference is not None else None,
                             adjust=lambda key, x, ab: smoother.step(x, ab), truth_of=lambda key: key[2])
    number = segment.first_frame
    for (warmup, rgb_in, _), image in stream:
        if warmup:
            continue
        if number >= segment.first_frame + segment.frames:
            break
        if isinstance(image, Failed):
            outcome.failed_frames += 1
            outcome.error = outcome.error or f"frame {number}: {image.error}"
            if meter is not None:
                meter.gap()
            yield rgb_in
        else:
            _record_frame(image, number, plan, outcome, meter, shown)
            if write_files is not None:
                write_files(image, number)
            yield image.rgb
        number += 1
    outcome.cuts = smoother.cuts


def _keyed(frames, first_frame: int, score_every: int):
    """(key, RGB) of decoded frames for `colorize_stream`; the key is (warm-up or not, RGB, whether the frame is
    scored against its own colours): every `score_every`-th frame from the video's start. The others need no Lab."""
    number = first_frame
    for frame in frames:
        scored = not frame.warmup and score_every > 0 and number % score_every == 0
        number += not frame.warmup
        yield (frame.warmup, frame.rgb, scored), frame.rgb


def _record_frame(image: Colorized, number: int, plan: VideoPlan, outcome: SegmentOutcome, meter, shown) -> None:
    """Scores (every `score_every`-th frame of a colour input), flicker sums, thumbnails and the reference's
    divergence (which `colorize_stream` computes for every frame with a reference) of one output frame."""
    if image.divergence is not None:
        outcome.divergence[0] += image.divergence
        outcome.divergence[1] += 1
    if meter is not None:
        meter.add(_gray_of(image), image.rgb, image.lab[..., 1:])
        outcome.flicker = meter.sums
    if number in shown:
        outcome.thumbs[number] = (make_thumbnail(image.gray_rgb(), plan.thumb_size),
                                  make_thumbnail(image.rgb, plan.thumb_size))
    if image.ab_true is None:  # a gray frame, or one that `_keyed` leaves unscored
        return
    weights = rebalancing_pixel_weights(image.ab_true, np.asarray(plan.prior))
    scores = score_colorization(image.rgb_in, image.rgb, image.gray_rgb(), image.ab_true, image.lab[..., 1:],
                                weights)
    outcome.scored += 1
    for key in SCORE_KEYS:
        if scores[key] is not None and math.isfinite(scores[key]):
            total = outcome.score_sums.setdefault(key, [0.0, 0])
            total[0] += scores[key]
            total[1] += 1


def _gray_of(image: Colorized) -> np.ndarray:
    """The input frame's lightness as uint8 codes, what the flow of the flicker metrics is computed on."""
    return np.clip(np.rint(image.lab[..., 0] * L_SCALE), 0, 255).astype(np.uint8)
