"""The video pass's pieces without Spark: output names, the report's frames, rows for failed probes and segments, the
summary's counts, the report's video cards, and a segment task steered by a reference."""

from __future__ import annotations

import io
from fractions import Fraction
from types import SimpleNamespace

import av
import numpy as np
from PIL import Image
from videofactory import make_clip, scene

from colorspark import config, fs, labarrays, reference, video, video_job, video_tasks
from colorspark.colorizer import Failed, Rendering
from colorspark.colorspace import rgb_to_lab
from colorspark.reference import Reference
from colorspark.report import render_report
from colorspark.thumbnails import make_thumbnail
from colorspark.video_job import (
    VideoTally,
    add_reference,
    base_row,
    clear_frame_files,
    finish_video,
    output_stems,
    output_targets,
    strip_frames,
)
from colorspark.video_tasks import FrameFiles, SegmentOutcome, VideoPlan


def test_outputs_replace_the_extension_unless_names_collide():
    targets = output_targets(["file:///r/a.mov", "file:///r/A.mp4", "file:///r/sub/b.mkv"], "/r", "file:///o")
    assert targets == {"file:///r/a.mov": "file:///o/video/a.mov.mp4", "file:///r/A.mp4": "file:///o/video/A.mp4.mp4",
                       "file:///r/sub/b.mkv": "file:///o/video/sub/b.mp4"}


def test_per_frame_folders_follow_the_mp4s_names_and_are_off_by_default():
    stems = output_stems(["file:///r/a.mov", "file:///r/A.mp4", "file:///r/sub/b.mkv"], "/r")
    assert stems == {"file:///r/a.mov": "a.mov", "file:///r/A.mp4": "A.mp4", "file:///r/sub/b.mkv": "sub/b"}
    meta = {"input_size": 16, "temperature": 0.38, "prior": [1 / 313] * 313, "class_weights": [1.0] * 313}
    settings = config.load(overrides=["video.frames=jpeg,lab"])
    plan = VideoPlan.from_config(settings, meta, Rendering.from_config(settings, meta), "file:///o/s", "file:///o")
    assert plan.rendering.encode_jpeg and plan.frame_files("a.mov") == FrameFiles(
        "file:///o/video-frames/a.mov", "file:///o/video-lab/a.mov")
    assert plan.frame_files("A.mp4").jpeg == "file:///o/video-frames/A.mp4"
    without_lab = config.load(overrides=["video.frames=jpeg,lab", "output.lab_format=none"])
    assert VideoPlan.from_config(without_lab, meta, plan.rendering, "s", "file:///o").frame_files("x").lab is None
    default = config.load()
    off = VideoPlan.from_config(default, meta, Rendering.from_config(default, meta), "file:///o/s", "file:///o")
    assert off.frame_files("a") == FrameFiles() and not off.rendering.encode_jpeg


def test_segment_tasks_go_out_costliest_first():
    """Frames times pixels, plus each frame's fixed share: a full segment of a large video first, a short tail of a
    small one last, and a long segment of tiny frames ahead of a shorter one of larger frames."""
    def task(name, frames, width, height):
        segment = video.Segment(name, 0, 0, frames, 0, frames, 0, 0)
        return segment, video.Encoding(width, height, Fraction(25), 0)

    work = [task("tail", 10, 400, 300), task("small-long", 250, 176, 144), task("big", 190, 720, 405),
            task("mid", 250, 400, 300), task("small-short", 120, 200, 150)]
    assert [seg.uri for seg, _ in video_job.largest_first(work)] == ["big", "mid", "small-long", "small-short",
                                                                      "tail"]


def test_strip_frames_spread_over_the_video():
    assert strip_frames(41, 3) == {0, 20, 40}
    assert strip_frames(1, 6) == {0} and strip_frames(4, 6) == {0, 1, 2, 3} and strip_frames(10, 0) == frozenset()
    assert strip_frames(10, 1) == {5}


def test_rows_for_a_failed_probe_and_for_a_video_without_frames(tmp_path):
    uri = fs.to_uri(tmp_path / "x.mp4")
    failed = finish_video(uri, "no video stream (audio only?)", [], str(tmp_path), fs.to_uri(tmp_path / "o.mp4"),
                          FrameFiles())
    assert failed["status"] == "error" and failed["error"] == "no video stream (audio only?)"
    (tmp_path / "x.mp4").write_bytes(make_clip(10))
    probed = video.probe(uri, 10**6).planned()
    lost = SegmentOutcome(uri, 0, None, 0, 0, 10, error="segment 0: decoding stopped: Invalid data")
    row = finish_video(uri, probed, [lost], str(tmp_path), fs.to_uri(tmp_path / "o.mp4"), FrameFiles())
    assert row["status"] == "error" and "decoding stopped" in row["error"] and row["frames_lost"] == 10
    assert not (tmp_path / "o.mp4").exists()
    tally = VideoTally([failed, row, {**base_row(uri, str(tmp_path)), "status": "ok", "frames": 7, "frames_lost": 3,
                                      "seconds": 1.5, "warp_error_chroma": 2e-5}])
    summary = tally.summary()
    assert (summary["inputs"], summary["ok"], summary["errors"], summary["frames"], summary["frames_lost"]) == (
        3, 1, 2, 7, 13)
    assert summary["mean_flicker"]["warp_error_chroma"] == 2e-5
    assert (summary["frame_jpegs"], summary["frame_labs"]) == (0, 0) and failed["frames_path"] is None


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


def _steered_segment(tmp_path, monkeypatch, ref: Reference | None, overrides=()):
    """The second segment of a 20-frame clip (2 warm-up frames) colorized by a task, without Spark; its per-frame
    files (config `overrides`) go to tmp_path/out/video-frames/c and video-lab/c."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "c.mp4").write_bytes(make_clip(20, gop=10))
    probed = video.probe(fs.to_uri(tmp_path / "c.mp4"), 10**6)
    segment = video.plan_segments(probed, 0.4, 2)[1]
    settings = config.load(overrides=["colorize.batch_size=4", *overrides])
    meta = {"input_size": 16, "temperature": 0.38, "prior": [1 / 313] * 313, "class_weights": [1.0] * 313}
    plan = VideoPlan.from_config(settings, meta, Rendering.from_config(settings, meta), fs.to_uri(tmp_path / "s"),
                                 fs.to_uri(tmp_path / "out"))
    monkeypatch.setattr(video_tasks, "worker_model", lambda payload, builds: UndecidedModel())
    outcome = video_tasks.colorize_segment(segment, video.Encoding.of(probed, "ultrafast", 23), frozenset(), ref,
                                           plan.frame_files("c"), SimpleNamespace(value=None), None, plan)
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
    assert not (tmp_path / "out").exists() and (outcome.frame_jpegs, outcome.frame_labs) == (0, 0)  # off by default
    _, plain, plain_frames = _steered_segment(tmp_path / "none", monkeypatch, None)
    assert plain.divergence == [0.0, 0] and max(np.hypot(*rgb_to_lab(f)[..., 1:].mean(axis=(0, 1)))
                                                for f in plain_frames) < 8


RED = Reference("palette:#c81e1e", reference.palette_distribution([(200, 30, 30)]))


def test_only_the_scored_frames_of_a_colour_video_get_their_own_lab(tmp_path, monkeypatch):
    """`video.score_every = 3` over frames 10-19 (8 and 9 warm up): frames 12, 15 and 18 are scored, and they are
    the only ones whose input Lab (a and b) is computed; the others need L alone."""
    from colorspark import colorizer

    converted = []
    plain_rgb_to_lab = colorizer.rgb_to_lab
    monkeypatch.setattr(colorizer, "rgb_to_lab", lambda rgb: converted.append(rgb.shape) or plain_rgb_to_lab(rgb))
    segment, outcome, frames = _steered_segment(tmp_path, monkeypatch, None, ["video.score_every=3"])
    assert outcome.error is None and len(frames) == 10
    assert outcome.scored == 3 and len(converted) == 3
    assert outcome.score_sums["psnr"][1] == 3


def test_a_segment_task_writes_each_frames_jpeg_and_lab_but_not_warmup_or_failed_frames(tmp_path, monkeypatch):
    """Frames 10-19 (8 and 9 warm up): a JPEG and a .npy each, named by frame number, except frame 12, which the
    colorizer fails on (it is in the MP4, gray, and the counts leave it out); the arrays decode to the JPEGs'
    colours, and a second attempt of the task writes the same names."""
    plain_stream = video_tasks.colorize_stream

    def failing_frame_12(*args, **kwargs):
        for i, (key, image) in enumerate(plain_stream(*args, **kwargs)):
            yield key, (Failed("boom") if i == 4 else image)  # items 0 and 1 are the warm-up frames

    monkeypatch.setattr(video_tasks, "colorize_stream", failing_frame_12)
    segment, outcome, frames = _steered_segment(tmp_path, monkeypatch, RED, ["video.frames=jpeg,lab"])
    written = [n for n in range(10, 20) if n != 12]
    assert len(frames) == 10 and outcome.failed_frames == 1 and (outcome.frame_jpegs, outcome.frame_labs) == (9, 9)
    jpegs, labs = tmp_path / "out" / "video-frames" / "c", tmp_path / "out" / "video-lab" / "c"
    assert sorted(p.name for p in jpegs.iterdir()) == [f"{n:06d}.jpg" for n in written]
    assert sorted(p.name for p in labs.iterdir()) == [f"{n:06d}.npy" for n in written]
    for n in written:
        lab = labarrays.decode(np.load(labs / f"{n:06d}.npy"))
        shown = rgb_to_lab(np.asarray(Image.open(jpegs / f"{n:06d}.jpg").convert("RGB")))
        assert lab.shape == (48, 64, 3) and np.abs(lab - shown).mean(axis=(0, 1)).max() < 3, n
        assert np.abs(rgb_to_lab(frames[n - 10]) - lab)[..., 1:].mean() < 3  # the MP4's frame, up to H.264
    before = {p.name: p.stat().st_mtime_ns for p in jpegs.iterdir()}
    _steered_segment(tmp_path, monkeypatch, RED, ["video.frames=jpeg,lab"])
    assert {p.name for p in jpegs.iterdir()} == set(before)


def test_a_segment_task_writes_one_hdf5_lab_file_with_a_dataset_per_frame(tmp_path, monkeypatch):
    import h5py

    _, outcome, frames = _steered_segment(tmp_path, monkeypatch, RED, [
        "video.frames=lab", "output.lab_format=hdf5", "output.lab_encoding=float16"])
    assert (outcome.frame_jpegs, outcome.frame_labs) == (0, 10) and not (tmp_path / "out" / "video-frames").exists()
    assert [p.name for p in (tmp_path / "out" / "video-lab" / "c").iterdir()] == ["segment-00001.h5"]
    with h5py.File(tmp_path / "out" / "video-lab" / "c" / "segment-00001.h5") as h5:
        assert sorted(h5) == [f"{n:06d}" for n in range(10, 20)] and h5["000010"].attrs["encoding"] == "float16"
        lab = labarrays.decode(h5["000019"][()])
    assert np.abs(rgb_to_lab(frames[-1]) - lab)[..., 1:].mean() < 3


def test_a_video_row_records_its_frame_files_and_a_new_run_clears_old_ones(tmp_path):
    files = FrameFiles(fs.to_uri(tmp_path / "f"), fs.to_uri(tmp_path / "l"))
    (tmp_path / "f").mkdir()
    for name in ("000007.jpg", "notes.txt"):
        (tmp_path / "f" / name).write_bytes(b"x")
    (tmp_path / "f" / "sub").mkdir()  # another video's folder (f/sub.mp4's frames)
    clear_frame_files([files])
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["notes.txt", "sub"]
    (tmp_path / "x.mp4").write_bytes(make_clip(10))
    uri = fs.to_uri(tmp_path / "x.mp4")
    probed = video.probe(uri, 10**6).planned()
    part = SegmentOutcome(uri, 0, None, 0, 0, 10, frame_jpegs=9, error="frame 3: boom")
    row = finish_video(uri, probed, [part], str(tmp_path), fs.to_uri(tmp_path / "o.mp4"), files)
    assert (row["frame_jpegs"], row["frame_labs"]) == (9, 0)
    assert row["frames_path"] == str(tmp_path / "f") and row["lab_path"] is None  # no Lab file was written
    assert VideoTally([row, row]).summary()["frame_jpegs"] == 18


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
