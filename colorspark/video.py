"""Video containers through the storage layer: probe a file, cut it into segments at keyframes, decode one segment
(with warm-up frames before it), encode frames as H.264, and join encoded segments with the source's audio.

PyAV (FFmpeg) does the work; every byte comes and goes through `colorspark.fs`, so a video on S3 or HDFS is read
with ranged reads (`fs.open_input_file`) and an output appears atomically (`fs.local_file_for`).

Frames are identified by their presentation timestamps (pts) in the source's video stream. The probe demuxes the
packets without decoding (cheap) and knows every frame's pts and which are keyframes; a segment is the half-open pts
range [start, end) starting at a keyframe, so the segments of a video hold every frame exactly once, in order,
however its GOPs are laid out. A task seeks to the keyframe at or before its first warm-up frame and decodes
forward; the previous segment decodes past its end until it sees a frame at or after `end`, so open-GOP leading
frames are decoded where their references are.

Output frames are numbered: frame i of the video has pts i in the time base 1/rate, i.e. a constant frame rate (a
variable-rate source is encoded at its average rate and the row says so). Segments are encoded from pts 0 and the
join shifts each by its first frame's number, copying the packets without re-encoding.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from . import fs

# How far frame durations may stray from the mean (as a fraction of it) before a stream counts as variable-rate.
VFR_TOLERANCE = 0.05
# The display rotations H.264 in MP4 carries as a display matrix.
ROTATIONS = (0, 90, 180, 270, -90, -180, -270)


class VideoError(Exception):
    """A video that cannot be colorized, with the reason for its result row."""


@dataclass(frozen=True)
class Probe:
    """What the driver needs to plan a video: its frames' timestamps and keyframes, and the output's format."""
    uri: str
    width: int
    height: int
    rate: Fraction                  # frames per second of the output (the source's average rate)
    rotation: int                   # the display rotation tag, degrees counter-clockwise
    codec: str
    frames: int
    frame_pts: tuple                # every frame's pts in display order (stream time base); () once planned
    keyframe_pts: tuple             # the keyframes' pts, ascending; () once planned
    time_base: Fraction
    has_audio: bool
    variable_rate: bool
    frames_announced: int           # what the container's header promises (0: it does not say)

    def planned(self) -> Probe:
        """This probe without the per-frame timestamps, once its segments are planned: what travels to the driver
        stays small however long the video."""
        return replace(self, frame_pts=(), keyframe_pts=())

    @property
    def duration(self) -> float:
        return self.frames / float(self.rate)

    @property
    def frames_lost(self) -> int:
        """Frames the header announces but the file does not hold (a truncated file)."""
        return max(0, self.frames_announced - self.frames)


@dataclass(frozen=True)
class Segment:
    """One task's share of a video: the frames with start_pts <= pts < end_pts, the first of which is frame number
    `first_frame` of the video. The last segment ends one past the last frame the probe found, so a frame that a
    decoder flushes without a packet for it adds none. `warmup_pts` is the pts of the first frame decoded before
    the segment for the temporal state (equal to start_pts when there is none)."""
    uri: str
    index: int
    start_pts: int
    end_pts: int
    first_frame: int
    frames: int
    warmup_pts: int
    video_start_pts: int            # the video's first frame's pts


@dataclass(frozen=True)
class Encoding:
    """How colorized frames are encoded: the source's size, rate and rotation, and libx264's preset and CRF."""
    width: int
    height: int
    rate: Fraction
    rotation: int = 0
    preset: str = "veryfast"
    crf: int = 20

    @classmethod
    def of(cls, probe: Probe, preset: str, crf: int) -> Encoding:
        return cls(probe.width, probe.height, probe.rate, probe.rotation, preset, crf)


# --- probing ---------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def open_container(uri: str):
    """The video at `uri` opened for reading with PyAV; any FFmpeg error is a `VideoError` with its reason."""
    import av

    with fs.open_input_file(uri) as handle:
        try:
            container = av.open(handle, "r")
        except (av.FFmpegError, ValueError) as exc:
            raise VideoError(f"not a readable video container: {_reason(exc)}") from None
        try:
            yield container
        finally:
            container.close()


def _reason(exc: Exception) -> str:
    """FFmpeg's message without PyAV's errno prefix and placeholder file name."""
    import av

    if isinstance(exc, av.FFmpegError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def probe(uri: str, max_pixels: int) -> Probe:
    """Probe the video at `uri`: demux every video packet (no decoding) for the frames' timestamps and keyframes,
    and decode the first frame for its size and rotation tag. Raises VideoError for a file without a decodable video
    stream, with no frames, or with frames above `max_pixels`."""
    import av

    with open_container(uri) as container:
        if not container.streams.video:
            raise VideoError("no video stream (audio only?)" if container.streams.audio else "no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None or stream.codec_context.name is None:
            raise VideoError("unknown video codec")
        if stream.width * stream.height > max_pixels:
            raise VideoError(f"frames of {stream.width}×{stream.height} exceed limits.max_pixels ({max_pixels})")
        has_audio = bool(container.streams.audio)
        try:
            pts, keys = _packet_times(container, stream)
        except av.FFmpegError as exc:
            raise VideoError(f"cannot read the video's packets: {_reason(exc)}") from None
        if not pts:
            raise VideoError("the video has no frames")
        first = _first_frame(container, stream)
        time_base = Fraction(stream.time_base)
        rate = _frame_rate(stream, pts, time_base)
        return Probe(uri=uri, width=first.width, height=first.height, rate=rate, rotation=int(first.rotation or 0),
                     codec=stream.codec_context.name, frames=len(pts), frame_pts=tuple(pts), keyframe_pts=tuple(keys),
                     time_base=time_base, has_audio=has_audio,
                     variable_rate=_is_variable(pts, time_base, rate),
                     frames_announced=_announced_frames(container, stream, rate))


def _announced_frames(container, stream, rate: Fraction) -> int:
    """The frame count the header gives, or its video duration times the rate (the container's duration only
    without audio, which may run longer); 0 when it says neither."""
    if stream.frames:
        return int(stream.frames)
    if stream.duration:
        return round(stream.duration * Fraction(stream.time_base) * rate)
    if container.duration and not container.streams.audio:
        return round(Fraction(container.duration, 1_000_000) * rate)
    return 0


def _packet_times(container, stream) -> tuple[list[int], list[int]]:
    """(every video frame's pts sorted, the keyframes' pts sorted) from the packets. A packet without a pts (raw
    streams) takes its dts."""
    times, keys = [], []
    for packet in container.demux(stream):
        if not packet.size:
            continue
        when = packet.pts if packet.pts is not None else packet.dts
        if when is None:
            continue
        times.append(int(when))
        if packet.is_keyframe:
            keys.append(int(when))
    times.sort()
    return times, sorted(set(keys) & set(times))


def _first_frame(container, stream):
    import av

    container.seek(stream.start_time or 0, stream=stream)
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as exc:
        raise VideoError(f"the first frame does not decode ({stream.codec_context.name}): {_reason(exc)}") from None
    raise VideoError(f"no frame decodes ({stream.codec_context.name})")


def _frame_rate(stream, pts: list[int], time_base: Fraction) -> Fraction:
    """The output's frame rate: the stream's average rate, else one measured from the timestamps."""
    if stream.average_rate:
        return Fraction(stream.average_rate).limit_denominator(1001 * 1000)
    if len(pts) > 1 and pts[-1] > pts[0]:
        return (Fraction(len(pts) - 1) / ((pts[-1] - pts[0]) * time_base)).limit_denominator(1001 * 1000)
    return Fraction(25)


def _is_variable(pts: list[int], time_base: Fraction, rate: Fraction) -> bool:
    """Whether some frame's duration differs from 1/rate by more than VFR_TOLERANCE of it."""
    if len(pts) < 3:
        return False
    steps = np.diff(np.asarray(pts, dtype=np.float64)) * float(time_base)
    return bool(np.max(np.abs(steps * float(rate) - 1.0)) > VFR_TOLERANCE)


# --- planning --------------------------------------------------------------------------------------------------------

def plan_segments(probe: Probe, segment_seconds: float, warmup_frames: int) -> list[Segment]:
    """Cut the video into segments of about `segment_seconds`, each starting at a keyframe (a segment is longer
    when keyframes are rarer); each is preceded by up to `warmup_frames` frames for the temporal state. Needs the
    probe's timestamps (see `Probe.planned`)."""
    pts = probe.frame_pts
    target = max(1, round(segment_seconds * float(probe.rate)))
    starts = [0]
    for key in probe.keyframe_pts:
        index = bisect.bisect_left(pts, key)
        if index - starts[-1] >= target and probe.frames - index >= 1:
            starts.append(index)
    segments = []
    for number, first in enumerate(starts):
        last = starts[number + 1] if number + 1 < len(starts) else probe.frames
        segments.append(Segment(uri=probe.uri, index=number, start_pts=pts[first],
                                end_pts=pts[last] if last < probe.frames else pts[-1] + 1, first_frame=first,
                                frames=last - first, warmup_pts=pts[max(0, first - warmup_frames)],
                                video_start_pts=pts[0]))
    return segments


# --- decoding --------------------------------------------------------------------------------------------------------

@dataclass
class Decoded:
    """One decoded frame: H×W×3 uint8 RGB (as stored: the rotation tag is not applied), its pts, and whether it
    is a warm-up frame before the segment proper."""
    rgb: np.ndarray
    pts: int
    warmup: bool


class DecodeReport:
    """What went wrong while decoding a segment, if anything (filled in as the frames are read)."""

    def __init__(self) -> None:
        self.error: str | None = None


def decode_segment(segment: Segment, report: DecodeReport) -> Iterator[Decoded]:
    """The segment's warm-up frames and then its own frames, in display order. Decoding stops at the first frame
    at or after the segment's end; a decoding error ends the segment early, with the reason in `report` (the caller
    counts the frames it got against `segment.frames`)."""
    import av

    with open_container(segment.uri) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in _decoded_from(container, stream, segment.warmup_pts, segment.video_start_pts):
                if frame.pts is None or frame.pts < segment.warmup_pts:
                    continue
                if frame.pts >= segment.end_pts:
                    return
                yield Decoded(frame.to_ndarray(format="rgb24"), int(frame.pts), frame.pts < segment.start_pts)
        except av.FFmpegError as exc:
            report.error = f"decoding stopped: {_reason(exc)}"


def _decoded_from(container, stream, target: int, start: int):
    """The stream's frames decoded from a keyframe at or before pts `target`. FFmpeg's seek lands there in most
    containers, but in MPEG-PS it lands on the keyframe after; then it seeks again further back, as far as the
    file's start (`start`, the first frame's pts) if need be."""
    backoff = 0
    while True:
        position = target - backoff
        if position <= start:
            container.seek(0)  # the file's start
        else:
            container.seek(position, stream=stream)
        frames = container.decode(stream)
        first = next(frames, None)
        if first is None or first.pts is None or first.pts <= target or position <= start:
            break
        backoff = max(2 * backoff, 2 * (first.pts - target))
    if first is not None:
        yield first
    yield from frames


# --- encoding and joining --------------------------------------------------------------------------------------------

def encode_frames(frames: Iterable[np.ndarray], encoding: Encoding) -> tuple[bytes, int]:
    """(an MP4 holding `frames` (H×W×3 uint8 RGB) as H.264 at the encoding's rate from pts 0, how many frames).
    Without B-frames, so that the decoding timestamps of joined segments keep rising across their seams. Odd sizes,
    which 4:2:0 chroma cannot hold, are encoded 4:4:4."""
    import av

    buffer = io.BytesIO()
    count = 0
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=encoding.rate)
        stream.width, stream.height = encoding.width, encoding.height
        even = encoding.width % 2 == 0 and encoding.height % 2 == 0
        stream.pix_fmt = "yuv420p" if even else "yuv444p"
        stream.options = {"preset": encoding.preset, "crf": str(encoding.crf), "bf": "0"}
        if encoding.rotation:
            stream.set_display_rotation(encoding.rotation)
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = count
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
    return buffer.getvalue(), count


def join_segments(parts: list[tuple[str, int]], encoding: Encoding, audio_source: str | None, target: str) -> int:
    """Join encoded segments, (URI, number of its first frame) in order, into one MP4 at `target` without
    re-encoding, with the first audio stream of `audio_source` copied unchanged; the file appears atomically.
    Returns the number of video frames written."""
    import av

    with fs.local_file_for(target, suffix=".mp4") as local, av.open(str(local), "w", format="mp4") as out, \
            contextlib.ExitStack() as stack:
        with open_container(parts[0][0]) as first:
            video = out.add_stream_from_template(first.streams.video[0])
        if encoding.rotation:
            video.set_display_rotation(encoding.rotation)
        streams = [_joined_video(parts, video, encoding.rate)]
        if audio_source is not None:
            source = stack.enter_context(open_container(audio_source))
            if source.streams.audio:
                audio = out.add_stream_from_template(source.streams.audio[0])
                streams.append(_shifted_packets(source.streams.audio[0], source, audio, -_start_seconds(source)))
        frames = 0
        for _, packet in heapq.merge(*streams, key=lambda timed: timed[0]):
            frames += packet.stream.type == "video"
            out.mux(packet)
    return frames


def _joined_video(parts: list[tuple[str, int]], target, rate: Fraction) -> Iterator[tuple[Fraction, object]]:
    """The segments' video packets one segment after the other, each shifted to its first frame's time."""
    for uri, first in parts:
        with open_container(uri) as container:
            yield from _shifted_packets(container.streams.video[0], container, target, Fraction(first) / rate)


def _start_seconds(container) -> Fraction:
    """When the source's video starts, in seconds: its audio is shifted by as much, so both start together."""
    stream = container.streams.video[0] if container.streams.video else None
    if stream is None or stream.start_time is None:
        return Fraction(0)
    return stream.start_time * Fraction(stream.time_base)


def _shifted_packets(stream, container, target, shift: Fraction) -> Iterator[tuple[Fraction, object]]:
    """(time in seconds, packet) of `stream`'s packets moved by `shift` seconds and addressed to the output stream
    `target`. Packets before 0 are kept (the MP4 muxer shifts them into an edit list), so the audio stays whole,
    codec priming included."""
    base = Fraction(stream.time_base)
    offset = round(shift / base)
    for packet in container.demux(stream):
        if packet.dts is None or not packet.size:
            continue
        packet.pts = packet.pts + offset if packet.pts is not None else None
        packet.dts += offset
        packet.stream = target
        yield packet.dts * base, packet
