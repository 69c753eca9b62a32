"""colorspark.listing without Spark: how a task gets the bytes of a file it was handed."""

from __future__ import annotations

import pytest

from colorspark.decode import DecodeError
from colorspark.listing import read_content


def test_content_from_binaryfile_is_used_as_it_is(tmp_path):
    assert read_content(str(tmp_path / "not-read.jpg"), bytearray(b"abc"), 10) == b"abc"


def test_content_listed_through_the_storage_layer_is_read_by_the_task(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"jpeg bytes")
    assert read_content(f"file://{tmp_path}/a.jpg", None, 10) == b"jpeg bytes"


def test_a_file_that_vanished_since_the_listing_is_a_bad_input_with_a_reason(tmp_path):
    with pytest.raises(DecodeError, match="could not read the file"):
        read_content(f"file://{tmp_path}/gone.jpg", None, 10)


def test_a_task_stops_reading_a_file_over_the_size_limit(tmp_path, monkeypatch):
    from colorspark import fs

    (tmp_path / "big.jpg").write_bytes(b"x" * 1000)
    asked = []
    read_bytes = fs.read_bytes
    monkeypatch.setattr(fs, "read_bytes", lambda uri, limit=None: asked.append(limit) or read_bytes(uri, limit))
    with pytest.raises(DecodeError, match=r"^file too large: 1000 bytes > limit 999$"):
        read_content(f"file://{tmp_path}/big.jpg", None, 999)
    assert asked == [1000]
    assert read_content(f"file://{tmp_path}/big.jpg", None, 1000) == b"x" * 1000


def test_read_bytes_reads_no_further_than_its_limit(tmp_path):
    from colorspark import fs

    (tmp_path / "f").write_bytes(b"0123456789")
    assert fs.read_bytes(str(tmp_path / "f"), limit=4) == b"0123"
    assert fs.read_bytes(str(tmp_path / "f")) == b"0123456789" and fs.size(str(tmp_path / "f")) == 10
