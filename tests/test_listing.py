"""colorspark.listing without Spark: how a task gets the bytes of a file it was handed."""

from __future__ import annotations

import pytest

from colorspark.decode import DecodeError
from colorspark.listing import read_content


def test_content_from_binaryfile_is_used_as_it_is(tmp_path):
    assert read_content(str(tmp_path / "not-read.jpg"), bytearray(b"abc")) == b"abc"


def test_content_listed_through_the_storage_layer_is_read_by_the_task(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"jpeg bytes")
    assert read_content(f"file://{tmp_path}/a.jpg", None) == b"jpeg bytes"


def test_a_file_that_vanished_since_the_listing_is_a_bad_input_with_a_reason(tmp_path):
    with pytest.raises(DecodeError, match="could not read the file"):
        read_content(f"file://{tmp_path}/gone.jpg", None)
