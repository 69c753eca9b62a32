"""A video in and out on S3 (local[2], a real S3 server on 127.0.0.1): the colorize job reads the clip with ranged
reads through the storage layer, writes one MP4 object with every frame and the audio, and leaves no temporary or
staged object."""

from __future__ import annotations

import io
import json
from fractions import Fraction

import pyarrow.parquet as pq
import pytest
from videofactory import make_clip, video_frames_and_audio

from colorspark import fs

pytestmark = pytest.mark.spark


def test_a_video_in_and_out_on_s3(run_job, s3, tmp_path):
    source = tmp_path / "in" / "clips" / "street.mov"
    source.parent.mkdir(parents=True)
    source.write_bytes(make_clip(30, cut_at=12, audio_seconds=1.5, gop=10))
    bucket = s3.new_bucket("video")
    s3.upload_tree(tmp_path / "in", bucket, "in")
    proc = run_job("colorize", "--input", f"s3://{bucket}/in", "--output", f"s3://{bucket}/out",
                   "--set", "video.segment_seconds=0.4", "--set", "video.encoder_preset=ultrafast", env=s3.env)
    assert proc.returncode == 0, proc.log
    keys = s3.keys(bucket, "out")
    assert not [k for k in keys if fs.TMP_MARK in k or fs.STAGING_MARK in k]
    assert "video/clips/street.mp4" in keys and "summary.json" in keys
    (tmp_path / "street.mp4").write_bytes(keys["video/clips/street.mp4"])
    output, original = video_frames_and_audio(tmp_path / "street.mp4"), video_frames_and_audio(source)
    assert [p * output["time_base"] for p in output["pts"]] == [Fraction(i, 25) for i in range(30)]
    assert output["audio"] == original["audio"] and output["size"] == (64, 48)
    rows = [row for key, data in keys.items() if key.startswith("videos/")
            for row in pq.read_table(io.BytesIO(data)).to_pylist()]
    assert [(r["relative_path"], r["status"], r["frames"], r["segments"]) for r in rows] == [
        ("clips/street.mov", "ok", 30, 3)]
    assert rows[0]["video_path"] == f"s3://{bucket}/out/video/clips/street.mp4"
    assert json.loads(keys["summary.json"])["videos"]["frames"] == 30
    assert s3.secret not in proc.log
