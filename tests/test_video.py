"""colorspark.video on synthetic clips: probing, segments at keyframes that hold every frame once and in order,
warm-up frames, and encode + join keeping frame count, rate, size, rotation and audio; the bad files."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
from videofactory import (
    make_audio_only,
    make_clip,
    make_unknown_codec,
    make_variable_rate_clip,
    make_zero_frames,
    scene,
    video_frames_and_audio,
)

from colorspark import fs, video


def _write(folder, name: str, data: bytes) -> str:
    path = folder / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """40 frames at 25 fps, a keyframe every 10, a cut at frame 20, rotation 90, 2 s of audio."""
    folder = tmp_path_factory.mktemp("clip")
    return _write(folder, "clip.mp4", make_clip(40, cut_at=20, rotation=90, audio_seconds=2.0, gop=10))


def test_probe_reads_frames_rate_size_rotation_audio(clip):
    probe = video.probe(clip, max_pixels=10**6)
    assert (probe.frames, probe.rate, probe.width, probe.height) == (40, Fraction(25), 64, 48)
    assert probe.rotation == 90 and probe.has_audio and not probe.variable_rate
    assert probe.keyframe_pts == tuple(probe.frame_pts[i] for i in (0, 10, 20, 30))
    assert probe.frames_lost == 0 and probe.duration == pytest.approx(1.6)


@pytest.mark.parametrize("seconds, starts", [(0.4, [0, 10, 20, 30]), (0.5, [0, 20]), (0.8, [0, 20]),
                                             (100.0, [0])])
def test_segments_start_at_keyframes_and_hold_every_frame_once_in_order(clip, seconds, starts):
    probe = video.probe(clip, max_pixels=10**6)
    segments = video.plan_segments(probe, seconds, warmup_frames=3)
    assert [s.first_frame for s in segments] == starts
    assert sum(s.frames for s in segments) == probe.frames
    seen = []
    for segment in segments:
        report = video.DecodeReport()
        own = [frame.pts for frame in video.decode_segment(segment, report) if not frame.warmup]
        assert report.error is None and len(own) == segment.frames
        seen += own
    assert seen == list(probe.frame_pts)  # every timestamp exactly once, in order


def test_warmup_frames_are_the_ones_just_before_the_segment(clip):
    probe = video.probe(clip, max_pixels=10**6)
    second = video.plan_segments(probe, 0.4, warmup_frames=3)[1]
    decoded = list(video.decode_segment(second, video.DecodeReport()))
    assert [f.pts for f in decoded if f.warmup] == list(probe.frame_pts[7:10])
    assert [f.pts for f in decoded if not f.warmup] == list(probe.frame_pts[10:20])
    # the decoded pixels are the scene's (lossy codec: close, not equal)
    assert np.abs(decoded[3].rgb.astype(int) - scene(10, 64, 48)).mean() < 6


def test_encode_and_join_keep_frames_rate_size_rotation_and_audio(clip, tmp_path):
    probe = video.probe(clip, max_pixels=10**6)
    encoding = video.Encoding.of(probe, preset="ultrafast", crf=18)
    parts, originals = [], []
    for segment in video.plan_segments(probe, 0.4, warmup_frames=2):
        frames = [f.rgb for f in video.decode_segment(segment, video.DecodeReport()) if not f.warmup]
        originals += frames
        data, count = video.encode_frames(frames, encoding)
        assert count == segment.frames
        uri = fs.to_uri(tmp_path / f"part-{segment.index}.mp4")
        fs.write_bytes(uri, data)
        parts.append((uri, segment.first_frame))
    target = fs.to_uri(tmp_path / "out" / "joined.mp4")
    assert video.join_segments(parts, encoding, clip, target) == 40
    out, source = video_frames_and_audio(tmp_path / "out" / "joined.mp4"), video_frames_and_audio(clip)
    assert len(out["frames"]) == 40 and out["rate"] == 25 and out["size"] == (64, 48) and out["rotation"] == 90
    times = [p * out["time_base"] for p in out["pts"]]
    assert times == [Fraction(i, 25) for i in range(40)]  # constant rate, no frame twice, none missing
    assert out["audio"] == source["audio"] and out["audio"]  # the audio packets, byte for byte
    errors = [np.abs(a.astype(int) - b).mean() for a, b in zip(out["frames"], originals)]
    assert max(errors) < 4  # each output frame is its own input frame, in order
    assert [n for n in os.listdir(tmp_path / "out")] == ["joined.mp4"]  # no temporary left


def test_odd_frame_sizes_are_encoded(tmp_path):
    frames = [scene(i, 33, 21) for i in range(3)]
    data, count = video.encode_frames(frames, video.Encoding(33, 21, Fraction(10), preset="ultrafast"))
    probe = video.probe(_write(tmp_path, "odd.mp4", data), max_pixels=10**6)
    assert count == probe.frames == 3 and (probe.width, probe.height) == (33, 21)


@pytest.mark.parametrize("container, codec, extension", [("matroska", "libx264", "mkv"), ("webm", "libvpx", "webm"),
                                                          ("mpeg", "mpeg2video", "mpg")])
def test_other_containers_are_segmented_exactly(tmp_path, container, codec, extension):
    path = _write(tmp_path, f"clip.{extension}", make_clip(40, gop=5, container=container, codec=codec))
    probe = video.probe(path, max_pixels=10**6)
    segments = video.plan_segments(probe, 0.2, warmup_frames=2)
    assert probe.frames == 40 and len(segments) > 1
    seen = []
    for segment in segments:
        decoded = list(video.decode_segment(segment, video.DecodeReport()))
        warmup = [f.pts for f in decoded if f.warmup]
        assert warmup == list(probe.frame_pts[max(0, segment.first_frame - 2):segment.first_frame])
        seen += [f.pts for f in decoded if not f.warmup]
    assert seen == list(probe.frame_pts)


def test_variable_frame_rate_is_detected(tmp_path):
    probe = video.probe(_write(tmp_path, "vfr.mp4", make_variable_rate_clip(20)), max_pixels=10**6)
    assert probe.variable_rate and probe.frames == 20


def test_truncated_stream_counts_the_lost_frames(tmp_path):
    data = make_clip(40, gop=10, container="matroska")
    probe = video.probe(_write(tmp_path, "cut.mkv", data[:len(data) * 6 // 10]), max_pixels=10**6)
    assert 0 < probe.frames < 40 and probe.frames_lost == 40 - probe.frames


@pytest.mark.parametrize("name, data, reason", [
    ("truncated.mp4", make_clip(20)[:1500], "not a readable video"),
    ("garbage.mp4", bytes(range(256)) * 20, "not a readable video"),
    ("audio.m4v", make_audio_only(), "audio only"),
    ("empty.mp4", make_zero_frames(), "no video stream"),
    ("unknown.mkv", make_unknown_codec(), "unknown video codec"),
    ("zero.mp4", b"", "not a readable video"),
])
def test_bad_files_raise_video_errors_with_reasons(tmp_path, name, data, reason):
    with pytest.raises(video.VideoError, match=reason):
        video.probe(_write(tmp_path, name, data), max_pixels=10**6)


def test_frames_above_the_pixel_limit_are_refused(clip):
    with pytest.raises(video.VideoError, match="max_pixels"):
        video.probe(clip, max_pixels=64 * 48 - 1)
