"""(executors) The colorize job's video work: probing a video, and colorizing one segment of it.

A segment task decodes its frames (after a few warm-up frames that only prime the temporal state), colorizes them
in batches through `colorizer.colorize_stream`, the photos' own code path (so a video's reference steers every frame
as it steers a photo, its logit shift made once per task), with `temporal.Smoother` adjusting each frame's predicted
ab in order, encodes the result as H.264 and writes it into the run's staging folder (a retried task writes the same
name again). It returns a small `SegmentOutcome`: frames written, why any are missing, score
and flicker sums, and the report's thumbnails. Nothing here raises for a bad video: the reason goes back as data.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from . import fs
from .colorizer import Colorized, Failed, Rendering, colorize_stream
from .inference import worker_model
from .metrics import SCORE_KEYS, rebalancing_pixel_weights, score_colorization
from .reference import Reference
from .runtime import freeze_imports
from .samples import L_SCALE
from .temporal import Smoother, Temporal
from .thumbnails import make_thumbnail
from .video import DecodeReport, Encoding, Segment, VideoError, decode_segment, encode_frames, plan_segments, probe
from .video_metrics import FlickerMeter, FlickerSums


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

    @classmethod
    def from_config(cls, config: dict, meta: dict, rendering: Rendering, staging: str) -> VideoPlan:
        video = config["video"]
        return cls(rendering=replace(rendering, encode_jpeg=False), temporal=Temporal.from_config(config),
                   encoder_preset=video["encoder_preset"], crf=video["crf"], parts=fs.join(staging, "video-parts"),
                   prior=tuple(meta["prior"]), thumb_size=config["output"]["thumb_size"],
                   score_every=video["score_every"], flicker=video["flicker"],
                   max_pixels=config["limits"]["max_pixels"])


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


def colorize_segment(segment: Segment, encoding: Encoding, shown: frozenset, reference: Reference | None, payload_bc,
                     builds, plan: VideoPlan) -> SegmentOutcome:
    """Colorize one segment into `plan.parts`; `shown` holds the frame numbers the report shows, `reference` (or
    None) steers every frame's colours, warm-up frames included."""
    freeze_imports()
    started = time.perf_counter()
    outcome = SegmentOutcome(segment.uri, segment.index, None, segment.first_frame, 0, segment.frames)
    report = DecodeReport()
    try:
        frames = _colorized_frames(segment, plan, payload_bc, builds, report, outcome, shown, reference)
        data, outcome.frames = encode_frames(frames, encoding)
        if outcome.frames:
            outcome.part = fs.join(plan.parts, part_name(segment))
            fs.write_bytes(outcome.part, data)
    except Exception as exc:  # encoding or writing failed: the segment's frames are lost, the row says why
        outcome.error = f"segment {segment.index}: {type(exc).__name__}: {exc}"
        outcome.part, outcome.frames = None, 0
    if report.error and not outcome.error:
        outcome.error = f"segment {segment.index}: {report.error}"
    outcome.seconds = time.perf_counter() - started
    return outcome


def _colorized_frames(segment: Segment, plan: VideoPlan, payload_bc, builds, report: DecodeReport,
                      outcome: SegmentOutcome, shown: frozenset, reference: Reference | None):
    """The segment's colorized frames as RGB, in order, at most `segment.frames` of them; scores, flicker sums and
    thumbnails recorded into `outcome` on the way. A frame the colorizer fails on is written as it came in."""
    smoother = Smoother(plan.temporal)
    meter = FlickerMeter(cut_threshold=plan.temporal.cut_threshold) if plan.flicker else None
    decoded = (((frame.warmup, frame.rgb), frame.rgb) for frame in decode_segment(segment, report))
    stream = colorize_stream(decoded, lambda: worker_model(payload_bc.value, builds), plan.rendering,
                             reference_of=(lambda key: reference) if reference is not None else None,
                             adjust=lambda warmup, x, ab: smoother.step(x, ab))
    number = segment.first_frame
    for (warmup, rgb_in), image in stream:
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
            yield image.rgb
        number += 1
    outcome.cuts = smoother.cuts


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
    if image.ab_true is None or not plan.score_every or number % plan.score_every:
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
