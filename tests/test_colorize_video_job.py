"""jobs/colorize.py on local[2] with videos beside a photo: one row per video, the MP4s keep every frame once with the
source's rate, size, rotation and audio, bad videos become error rows, nothing partial is left, and the summary and
the report account for the videos; a references table steers the videos of one folder; with video.frames every
MP4 frame also comes out as a JPEG and a Lab array."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pyarrow.parquet as pq
import pytest
from imagefactory import colour_photo, write_image
from videofactory import make_video_zoo, video_frames_and_audio

from colorspark import fs, labarrays
from colorspark.colorspace import rgb_to_lab

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def colorized(tmp_path_factory, run_job):
    root = tmp_path_factory.mktemp("video-job")
    inputs = root / "in"
    expect = make_video_zoo(inputs)
    write_image(inputs / "photo.png", colour_photo(64, 48, seed=1))
    out = root / "out"
    (root / "refs.csv").write_text("path,reference\nsub,palette:#c81e1e\n")
    proc = run_job("colorize", "--input", inputs, "--output", out, "--references", root / "refs.csv",
                   "--set", "colorize.reference_warning=0.001", "--set", "video.segment_seconds=0.4",
                   "--set", "video.warmup_frames=3", "--set", "video.strip_frames=3",
                   "--set", "limits.max_pixels=5000", "--set", "video.encoder_preset=ultrafast",
                   "--set", "video.frames=jpeg,lab")
    assert proc.returncode == 0, proc.log
    rows = {row["relative_path"]: row for row in pq.read_table(out / "videos").to_pylist()}
    return {"inputs": inputs, "out": out, "expect": expect, "rows": rows, "log": proc.log}


def test_one_row_per_video_good_and_bad(colorized):
    rows = colorized["rows"]
    assert set(rows) == set(colorized["expect"])
    for rel, reason in colorized["expect"].items():
        row = rows[rel]
        if reason is None:
            assert row["status"] == "ok" and row["error"] is None, (rel, row["error"])
        else:
            assert row["status"] == "error" and reason in row["error"], (rel, row["error"])
            assert row["video_path"] is None


def test_the_mp4_keeps_every_frame_rate_size_rotation_and_audio(colorized):
    row = colorized["rows"]["clip.mp4"]
    assert row["segments"] == 4 and row["frames"] == 40 and row["frames_lost"] == 0 and row["cuts"] == 1
    output = video_frames_and_audio(colorized["out"] / "video" / "clip.mp4")
    source = video_frames_and_audio(colorized["inputs"] / "clip.mp4")
    assert [p * output["time_base"] for p in output["pts"]] == [Fraction(i, 25) for i in range(40)]
    assert output["size"] == (64, 48) and output["rotation"] == 90 and "rotation" in row["note"]
    assert output["audio"] == source["audio"]
    assert row["fps"] == 25 and row["duration"] == pytest.approx(1.6)
    assert row["has_truth"] and row["scored_frames"] == 40 and row["psnr"] > 10 and row["auc_rebal_gray"] > 0
    assert 0 < row["warp_error_chroma"] < 0.05 and 0 < row["warp_error_rgb"] < 0.05 and 0 < row["cdc"] < 1


def test_damaged_and_variable_rate_videos_are_recorded(colorized):
    truncated = colorized["rows"]["sub/truncated.mkv"]
    assert 0 < truncated["frames"] < 40 and truncated["frames"] + truncated["frames_lost"] == 40
    assert (colorized["out"] / "video" / "sub" / "truncated.mp4").is_file()
    vfr = colorized["rows"]["vfr.mov"]
    assert vfr["frames"] == 20 and "variable frame rate" in vfr["note"]


def test_the_folders_reference_steers_its_videos_and_is_recorded(colorized):
    """sub/ has a reference: its one colorized video records it (flagged, with the warning threshold near 0) in
    the row, the summary, the log and the report; its audio-only file had no frame to steer; other videos none."""
    rows = colorized["rows"]
    steered = rows["sub/truncated.mkv"]
    assert steered["reference"] == "palette:#c81e1e" and steered["reference_divergence"] > 0.001
    assert steered["reference_looks_wrong"] is True
    assert all(row["reference"] is None for rel, row in rows.items() if rel != "sub/truncated.mkv")
    frames = video_frames_and_audio(colorized["out"] / "video" / "sub" / "truncated.mp4")["frames"]
    assert min(rgb_to_lab(frame)[..., 1].mean() for frame in frames) > 15  # every frame pulled to the red
    videos = json.loads((colorized["out"] / "summary.json").read_text())["videos"]
    assert videos["references"] == {"palette:#c81e1e": 1} and videos["wrong_references"] == 1
    assert "reference looks wrong for video" in colorized["log"] and "truncated.mkv" in colorized["log"]
    html = (colorized["out"] / "report.html").read_text()
    assert "reference palette:#c81e1e (looks wrong for this video" in html and html.count('alt="reference"') == 1


def test_nothing_partial_is_left_and_the_summary_counts_frames(colorized):
    out = colorized["out"]
    leftovers = [p for p in out.rglob("*") if p.name.startswith((fs.TMP_MARK, fs.STAGING_MARK))]
    assert not leftovers
    assert sorted(p.relative_to(out).as_posix() for p in (out / "video").rglob("*.mp4")) == [
        "video/clip.mp4", "video/sub/truncated.mp4", "video/vfr.mp4"]
    summary = json.loads((out / "summary.json").read_text())
    videos = summary["videos"]
    rows = colorized["rows"].values()
    assert videos["inputs"] == 9 and videos["ok"] == 3 and videos["errors"] == 6
    assert videos["frames"] == sum(row["frames"] or 0 for row in rows)
    assert summary["ok"] == 1  # the photo


def test_every_mp4_frame_has_its_jpeg_and_lab_array_named_in_order(colorized):
    """video.frames = jpeg, lab: OUT/video-frames/<stem>/000000.jpg... and OUT/video-lab/<stem>/000000.npy..., as
    many as the MP4 has frames (warm-up frames write none), the arrays in the MP4's colours up to H.264."""
    out, rows = colorized["out"], colorized["rows"]
    for rel, stem in (("clip.mp4", "clip"), ("vfr.mov", "vfr"), ("sub/truncated.mkv", "sub/truncated")):
        row, frames = rows[rel], video_frames_and_audio(out / "video" / f"{stem}.mp4")["frames"]
        names = [f"{n:06d}" for n in range(len(frames))]
        assert sorted(p.stem for p in (out / "video-frames" / stem).glob("*.jpg")) == names, rel
        assert sorted(p.stem for p in (out / "video-lab" / stem).glob("*.npy")) == names, rel
        assert row["frame_jpegs"] == row["frame_labs"] == row["frames"] == len(frames)
        assert row["frames_path"] == str(out / "video-frames" / stem)
        assert row["lab_path"] == str(out / "video-lab" / stem)
        last = labarrays.decode(np.load(out / "video-lab" / stem / f"{names[-1]}.npy"))
        assert last.shape == (48, 64, 3) and np.abs(rgb_to_lab(frames[-1]) - last)[..., 1:].mean() < 3, rel
    assert rows["sub/audio.m4v"]["frames_path"] is None and rows["sub/audio.m4v"]["frame_jpegs"] is None  # no probe
    videos = json.loads((out / "summary.json").read_text())["videos"]
    assert videos["frame_jpegs"] == videos["frame_labs"] == videos["frames"]


def test_the_report_shows_each_video_with_a_link(colorized):
    html = (colorized["out"] / "report.html").read_text()
    assert '<h2>Videos</h2>' in html and 'href="video/clip.mp4"' in html and 'href="video/sub/truncated.mp4"' in html
    assert "audio only" in html and html.count('alt="poster"') == 3


def test_resume_skips_the_videos_already_written(colorized, run_job):
    """Runs last in this module: it rewrites the module's output folder."""
    out = colorized["out"]
    before = {p: p.stat().st_mtime_ns for p in (out / "video").rglob("*.mp4")}
    proc = run_job("colorize", "--input", colorized["inputs"], "--output", out, "--resume",
                   "--set", "limits.max_pixels=5000")
    assert proc.returncode == 0, proc.log
    rows = {row["relative_path"]: row for row in pq.read_table(out / "videos").to_pylist()}
    assert {rel for rel, row in rows.items() if row["status"] == "skipped"} == {
        "clip.mp4", "vfr.mov", "sub/truncated.mkv"}
    assert all(rows[rel]["status"] == "error" for rel, reason in colorized["expect"].items() if reason)
    assert {p: p.stat().st_mtime_ns for p in (out / "video").rglob("*.mp4")} == before
    assert json.loads((out / "summary.json").read_text())["videos"]["skipped"] == 3
