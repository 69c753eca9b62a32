"""The video pass's driver-side pieces without Spark: output names, the report's frames, rows for failed probes and
segments, the summary's counts, and the report's video cards."""

from __future__ import annotations

from fractions import Fraction

from videofactory import make_clip, scene

from colorspark import fs, video
from colorspark.report import render_report
from colorspark.thumbnails import make_thumbnail
from colorspark.video_job import VideoTally, base_row, finish_video, output_targets, strip_frames
from colorspark.video_tasks import SegmentOutcome


def test_outputs_replace_the_extension_unless_names_collide():
    targets = output_targets(["file:///r/a.mov", "file:///r/A.mp4", "file:///r/sub/b.mkv"], "/r", "file:///o")
    assert targets == {"file:///r/a.mov": "file:///o/video/a.mov.mp4", "file:///r/A.mp4": "file:///o/video/A.mp4.mp4",
                       "file:///r/sub/b.mkv": "file:///o/video/sub/b.mp4"}


def test_strip_frames_spread_over_the_video():
    assert strip_frames(41, 3) == {0, 20, 40}
    assert strip_frames(1, 6) == {0} and strip_frames(4, 6) == {0, 1, 2, 3} and strip_frames(10, 0) == frozenset()
    assert strip_frames(10, 1) == {5}


def test_rows_for_a_failed_probe_and_for_a_video_without_frames(tmp_path):
    uri = fs.to_uri(tmp_path / "x.mp4")
    failed = finish_video(uri, "no video stream (audio only?)", [], str(tmp_path), fs.to_uri(tmp_path / "o.mp4"))
    assert failed["status"] == "error" and failed["error"] == "no video stream (audio only?)"
    (tmp_path / "x.mp4").write_bytes(make_clip(10))
    probed = video.probe(uri, 10**6).planned()
    lost = SegmentOutcome(uri, 0, None, 0, 0, 10, error="segment 0: decoding stopped: Invalid data")
    row = finish_video(uri, probed, [lost], str(tmp_path), fs.to_uri(tmp_path / "o.mp4"))
    assert row["status"] == "error" and "decoding stopped" in row["error"] and row["frames_lost"] == 10
    assert not (tmp_path / "o.mp4").exists()
    tally = VideoTally([failed, row, {**base_row(uri, str(tmp_path)), "status": "ok", "frames": 7, "frames_lost": 3,
                                      "seconds": 1.5, "warp_error_chroma": 2e-5}])
    summary = tally.summary()
    assert (summary["inputs"], summary["ok"], summary["errors"], summary["frames"], summary["frames_lost"]) == (
        3, 1, 2, 7, 13)
    assert summary["mean_flicker"]["warp_error_chroma"] == 2e-5


def test_the_report_shows_a_video_card_with_poster_strip_and_link():
    thumb = make_thumbnail(scene(0, 64, 48), 32)
    row = {**base_row("file:///in/<b>clip</b>.mp4", "/in"), "status": "ok", "frames": 40, "fps": 25.0,
           "width": 64, "height": 48, "frames_lost": 0, "warp_error_chroma": 1.5e-5, "video_href": "video/clip.mp4",
           "note": "rotation tag 90° kept", "thumbs": [(thumb, thumb)] * 3}
    html = render_report([], {"inputs": 0}, total_rows=0, videos=[row])
    assert "<h2>Videos</h2>" in html and 'href="video/clip.mp4"' in html and "40 frames · 25 fps · 64×48" in html
    assert "&lt;b&gt;clip&lt;/b&gt;.mp4" in html and "<b>clip" not in html
    assert html.count('alt="poster"') == 1 and html.count('alt="colorized"') == 3 and "rotation tag" in html
    assert "chroma warping error 1.50e-05" in html


def test_probe_planned_keeps_the_counts_without_the_timestamps(tmp_path):
    (tmp_path / "c.mkv").write_bytes(make_clip(12, container="matroska"))
    probed = video.probe(str(tmp_path / "c.mkv"), 10**6)
    planned = probed.planned()
    assert planned.frame_pts == () and planned.frames == 12 and planned.rate == Fraction(25)
    assert planned.duration == probed.duration
