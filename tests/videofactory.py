"""Small synthetic videos made with PyAV for the video tests: moving coloured shapes on a textured background, an
optional scene cut, rotation tag and audio track, and the bad files the colorize job must survive."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 8000
AUDIO_FRAME = 1024


def scene(index: int, width: int, height: int, shot: int = 0) -> np.ndarray:
    """Frame `index` of shot `shot`: a smooth colour gradient and a coloured square moving 2 px per frame. Each shot
    has its own colours, so a cut is a large change."""
    rng = np.random.default_rng(shot)
    base = rng.uniform(40, 200, size=3)
    tilt = rng.uniform(-60, 60, size=3)
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    image = np.broadcast_to(base + tilt * ramp, (height, width, 3)).copy()
    side = max(4, min(width, height) // 3)
    x = (2 * index) % max(1, width - side)
    y = (height - side) // 2
    image[y:y + side, x:x + side] = rng.uniform(0, 255, size=3)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_clip(frames: int = 30, width: int = 64, height: int = 48, rate: Fraction | int = 25, *,
              cut_at: int | None = None, rotation: int = 0, audio_seconds: float = 0.0, gop: int = 10,
              container: str = "mp4", codec: str = "libx264") -> bytes:
    """A clip's bytes: `frames` frames of `scene` (shot 1 from `cut_at` on), keyframes every `gop` frames, the
    display rotation tag `rotation`, and `audio_seconds` of a 440 Hz tone (AAC)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        video = out.add_stream(codec, rate=Fraction(rate))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            video.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "preset": "ultrafast"}
        else:
            video.options = {"g": str(gop)}
        if rotation:
            video.set_display_rotation(rotation)
        audio = out.add_stream("aac", rate=AUDIO_RATE) if audio_seconds else None
        for i in range(frames):
            shot = int(cut_at is not None and i >= cut_at)
            frame = av.VideoFrame.from_ndarray(scene(i, width, height, shot), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            _write_tone(out, audio, audio_seconds)
    return buffer.getvalue()


def _write_tone(out, audio, seconds: float) -> None:
    samples = int(seconds * AUDIO_RATE)
    t = np.arange(samples, dtype=np.float32) / AUDIO_RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, samples, AUDIO_FRAME):
        chunk = tone[start:start + AUDIO_FRAME][None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, start
        out.mux(audio.encode(frame))
    out.mux(audio.encode(None))


def make_variable_rate_clip(frames: int = 20, width: int = 64, height: int = 48) -> bytes:
    """An MP4 whose frames are 40 ms apart, except every third, which comes 120 ms after the one before."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, 25)
        video.options = {"preset": "ultrafast", "bf": "0"}
        pts = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(scene(i, width, height), format="rgb24")
            frame.pts = pts
            pts += 3 if i % 3 == 2 else 1
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return buffer.getvalue()


def make_audio_only() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        _write_tone(out, out.add_stream("aac", rate=AUDIO_RATE), 0.5)
    return buffer.getvalue()


def make_zero_frames() -> bytes:
    """An MP4 with a video stream that holds no frame."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        out.start_encoding()
    return buffer.getvalue()


def video_frames_and_audio(path: Path) -> dict:
    """What a test checks of an output: decoded frames (RGB), their pts, rate, size, rotation and audio packets."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        info = {"frames": [f.to_ndarray(format="rgb24") for f in frames], "pts": [f.pts for f in frames],
                "time_base": Fraction(stream.time_base), "rate": Fraction(stream.average_rate),
                "size": (stream.width, stream.height), "rotation": frames[0].rotation if frames else None}
    with av.open(str(path)) as container:
        info["audio"] = [bytes(p) for s in container.streams.audio[:1] for p in container.demux(s) if p.size]
    return info


def make_unknown_codec() -> bytes:
    """A Matroska file whose video track names a codec no decoder knows."""
    return make_clip(10, container="matroska").replace(b"V_MPEG4/ISO/AVC", b"V_QQQQQ/ISO/XYZ")


def make_video_zoo(folder: Path) -> dict[str, str | None]:
    """Good and bad videos below `folder`; relative path -> None for a good one, else a substring of its error."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sub").mkdir(exist_ok=True)
    truncated = make_clip(40, gop=10, container="matroska")
    files = {
        "clip.mp4": (make_clip(40, cut_at=20, rotation=90, audio_seconds=2.0, gop=10), None),
        "vfr.mov": (make_variable_rate_clip(20), None),
        "sub/truncated.mkv": (truncated[:len(truncated) * 6 // 10], None),
        "sub/audio.m4v": (make_audio_only(), "audio only"),
        "garbage.avi": (bytes(range(256)) * 20, "not a readable video"),
        "empty.mp4": (b"", "not a readable video"),
        "no frames.mp4": (make_zero_frames(), "no video stream"),
        "unknown.mkv": (make_unknown_codec(), "unknown video codec"),
        "large.webm": (make_clip(6, 96, 64, container="webm", codec="libvpx"), "max_pixels"),
    }
    for rel, (data, _) in files.items():
        (folder / rel).write_bytes(data)
    return {rel: reason for rel, (_, reason) in files.items()}
