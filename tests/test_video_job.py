"""The video pass's pieces without Spark: output names, the report's frames, rows for failed probes and segments, the
summary's counts, the report's video cards, and a segment task steered by a reference."""

from __future__ import annotations

import io
from fractions import Fraction
from types import SimpleNamespace

import av
import numpy as np
from videofactory import make_clip, scene

from colorspark import config, fs, reference, video, video_tasks
from colorspark.colorizer import Rendering
from colorspark.colorspace import rgb_to_lab
from colorspark.reference import Reference
from colorspark.report import render_report
from colorspark.thumbnails import make_thumbnail
from colorspark.video_job import VideoTally, add_reference, base_row, finish_video, output_targets, strip_frames
from colorspark.video_tasks import SegmentOutcome, VideoPlan


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


class UndecidedModel:
    """Stands in for the Keras model: every pixel equally unsure of every bin (what a reference steers most)."""

    def predict_on_batch(self, x):
        return np.zeros((x.shape[0], x.shape[1] // 4, x.shape[2] // 4, 313), np.float32)


def _steered_segment(tmp_path, monkeypatch, ref: Reference | None):
    """The second segment of a 20-frame clip (2 warm-up frames) colorized by a task, without Spark."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "c.mp4").write_bytes(make_clip(20, gop=10))
    probed = video.probe(fs.to_uri(tmp_path / "c.mp4"), 10**6)
    segment = video.plan_segments(probed, 0.4, 2)[1]
    settings = config.load(overrides=["colorize.batch_size=4"])
    meta = {"input_size": 16, "temperature": 0.38, "prior": [1 / 313] * 313, "class_weights": [1.0] * 313}
    plan = VideoPlan.from_config(settings, meta, Rendering.from_config(settings, meta), fs.to_uri(tmp_path / "s"))
    monkeypatch.setattr(video_tasks, "worker_model", lambda payload, builds: UndecidedModel())
    outcome = video_tasks.colorize_segment(segment, video.Encoding.of(probed, "ultrafast", 23), frozenset(), ref,
                                           SimpleNamespace(value=None), None, plan)
    with av.open(io.BytesIO(fs.read_bytes(outcome.part))) as c:
        frames = [frame.to_ndarray(format="rgb24") for frame in c.decode(video=0)]
    return segment, outcome, frames


def test_a_segment_task_steers_every_frame_with_one_shift_and_no_cast_guard(tmp_path, monkeypatch):
    shifts = []
    plain_shift = Rendering.shift
    monkeypatch.setattr(Rendering, "shift", lambda self, ref: shifts.append(ref.name) or plain_shift(self, ref))
    red = Reference("palette:#c81e1e", reference.palette_distribution([(200, 30, 30)]))
    segment, outcome, frames = _steered_segment(tmp_path, monkeypatch, red)
    assert outcome.error is None and outcome.frames == segment.frames == len(frames) == 10
    assert shifts == ["palette:#c81e1e"]  # once for the task's 12 frames (warm-up included), not once per frame
    assert outcome.divergence[1] == 10 and outcome.divergence[0] / 10 > 1.0  # undecided: far from pure red
    chroma = [float(np.hypot(*rgb_to_lab(f)[..., 1:].mean(axis=(0, 1)))) for f in frames]
    assert min(chroma) > 20  # red throughout: the cast guard (guard_cast = 7 by default) left steered frames alone
    _, plain, plain_frames = _steered_segment(tmp_path / "none", monkeypatch, None)
    assert plain.divergence == [0.0, 0] and max(np.hypot(*rgb_to_lab(f)[..., 1:].mean(axis=(0, 1)))
                                                for f in plain_frames) < 8


def test_a_videos_row_summary_and_card_record_its_reference(tmp_path):
    swatch = make_thumbnail(np.full((20, 40, 3), (200, 30, 30), np.uint8))
    red = Reference("palette:#c81e1e", reference.palette_distribution([(200, 30, 30)]), swatch)
    steered = [SegmentOutcome("u", i, "p", 0, 5, 5, divergence=[total, 5]) for i, total in enumerate((4.0, 11.0))]
    row = {**base_row("file:///in/a.mp4", "/in"), "status": "ok", "frames": 10}
    looks_right = add_reference(row, red, steered, warning=2.0)
    assert (looks_right["reference"], looks_right["reference_divergence"]) == ("palette:#c81e1e", 1.5)
    assert looks_right["reference_looks_wrong"] is False
    wrong = add_reference(row, red, steered, warning=1.0)
    assert wrong["reference_looks_wrong"] is True and add_reference(row, None, steered, 1.0) == row
    assert add_reference(row, red, [SegmentOutcome("u", 0, None, 0, 0, 5, error="lost")], 1.0) == row  # no frame
    summary = VideoTally([wrong, row, looks_right]).summary()
    assert summary["references"] == {"palette:#c81e1e": 2} and summary["wrong_references"] == 1
    thumb = make_thumbnail(scene(0, 64, 48), 32)
    html = render_report([], {"inputs": 0}, total_rows=0,
                         videos=[{**wrong, "thumbs": [(thumb, thumb)], "thumb_reference": swatch}])
    poster = html.split('class="poster"')[1].split("</div>")[0]
    assert poster.index('alt="poster"') < poster.index('alt="reference"')
    assert "reference palette:#c81e1e (looks wrong for this video: mean divergence over its frames 1.50)" in html
