"""colorspark.paths: output names below OUT/ from any input path, and the guard that keeps them inside OUT/."""

from __future__ import annotations

import os
import random
import unicodedata
from pathlib import Path

import pytest

from colorspark import fs
from colorspark.paths import (
    InputLocation,
    input_root,
    join_inside,
    relative_output_path,
    replace_with_extension,
    uri_to_posix,
)

# --- URIs and roots ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("uri, path", [
    ("file:/a/b c.jpg", "/a/b c.jpg"),
    ("file:///a/b", "/a/b"),
    ("hdfs://nn:8020/x/y.jpg", "/x/y.jpg"),
    ("s3a://bucket/k/v.png", "/k/v.png"),
    ("/plain/path/p.jpg", "/plain/path/p.jpg"),
    ("relative/p.jpg", "relative/p.jpg"),
    ("file:/a/x#1.jpg", "/a/x#1.jpg"),
    ("file:/a/what?.jpg", "/a/what?.jpg"),
    ("file:/a/a%20b.jpg", "/a/a%20b.jpg"),
    ("hdfs://nn/d/a#b?c%41.png", "/d/a#b?c%41.png"),
    ("file:/a/ü ñ.jpg", "/a/ü ñ.jpg"),
])
def test_uri_to_posix(uri, path):
    assert uri_to_posix(uri) == path


@pytest.mark.parametrize("given, root", [
    ("/data/*/x/*.jpg", "/data"),
    ("file:/data/photos/", "/data/photos"),
    ("hdfs://nn:8020/data/photos", "/data/photos"),
    ("/data/img?.jpg", "/data"),
    ("/data/{a,b}/x", "/data"),
    ("/data/[ab]/x", "/data"),
    ("/*.jpg", "/"),
    ("/", "/"),
])
def test_input_root(given, root):
    assert input_root(given) == root


# --- relative output paths --------------------------------------------------------------------------------------------


def test_nested_paths_are_kept():
    assert relative_output_path("file:/data/in/a/b/c.jpg", "/data/in") == "a/b/c.jpg"
    assert relative_output_path("hdfs://nn:8020/data/in/x/y.png", "/data/in") == "x/y.png"
    assert relative_output_path("/x.jpg", "/") == "x.jpg"


def test_root_with_trailing_slash():
    assert relative_output_path("file:/data/in/a.jpg", "/data/in/") == "a.jpg"


def test_unicode_is_kept_in_nfc():
    nfd = unicodedata.normalize("NFD", "Köln/straße ü.jpg")
    assert nfd != "Köln/straße ü.jpg"
    rel = relative_output_path("file:/data/in/" + nfd, "/data/in")
    assert rel == unicodedata.normalize("NFC", "Köln/straße ü.jpg")


def test_dot_components_are_neutralised():
    # '..' inside the path is resolved before deciding whether it is below the root
    assert relative_output_path("file:/data/in/a/../b/./c.jpg", "/data/in") == "b/c.jpg"
    escaped = relative_output_path("file:/data/in/../secret.jpg", "/data/in")
    assert escaped.startswith("_outside/") and escaped.endswith("/secret.jpg")
    for rel in (escaped, relative_output_path("../../etc/passwd", "/data/in")):
        parts = rel.split("/")
        assert ".." not in parts and "." not in parts and "" not in parts and not rel.startswith("/")


def test_control_characters_backslashes_and_colons_are_replaced():
    assert relative_output_path("file:/data/in/a\nb\\c:d\x00e\x7f.jpg", "/data/in") == "a_b_c_d_e_.jpg"
    assert relative_output_path("/data/in/..\\..\\x.jpg", "/data/in") == ".._.._x.jpg"


def test_whitespace_only_and_dot_only_components():
    rel = relative_output_path("/data/in/ /.. /x.jpg", "/data/in")
    parts = rel.split("/")
    assert len(parts) == 3 and parts[-1] == "x.jpg"
    assert all(p not in ("", ".", "..") and p.strip() == p for p in parts)


def test_outside_paths_go_under_outside_hash_and_do_not_collide():
    a = relative_output_path("file:/elsewhere/one/photo.jpg", "/data/in")
    b = relative_output_path("file:/elsewhere/two/photo.jpg", "/data/in")
    for rel in (a, b):
        prefix, digest, name = rel.split("/")
        assert prefix == "_outside" and name == "photo.jpg" and len(digest) == 10
        int(digest, 16)
    assert a != b
    assert a == relative_output_path("file:/elsewhere/one/photo.jpg", "/data/in")  # stable
    # a sibling directory sharing the root's name prefix is not "below" the root
    assert relative_output_path("/data/in2/x.jpg", "/data/in").startswith("_outside/")


def test_single_file_input():
    assert relative_output_path("file:/data/in/only.jpg", "/data/in/only.jpg") == "only.jpg"
    assert relative_output_path("/data/in/only.jpg", input_root("file:/data/in/only.jpg")) == "only.jpg"


def test_long_names_that_differ_late_do_not_collide():
    """Two files whose names share a 210-character prefix are different inputs and need different outputs
    (otherwise one silently overwrites the other); the output name should also keep its extension."""
    stem = "a" * 210
    one = relative_output_path(f"file:/data/in/{stem}_1.jpg", "/data/in")
    two = relative_output_path(f"file:/data/in/{stem}_2.jpg", "/data/in")
    assert one != two
    assert one.endswith(".jpg") and two.endswith(".jpg")


def test_components_fit_in_a_filesystem_name():
    """NAME_MAX is 255 bytes on ext4/xfs/HDFS: a long non-ASCII S3 key component must still give a writable name."""
    rel = relative_output_path("s3a://bucket/in/" + "ü" * 150 + ".jpg", "/in")
    assert all(len(part.encode("utf-8")) <= 255 for part in rel.split("/"))


HOSTILE = ["..", ".", "", "/", "\\", "\x00", "\n", "a", "ü", " ", "~", "$HOME", "%2e%2e"]


def test_hostile_names_always_stay_inside_base(tmp_path):
    base = tmp_path / "out"
    base_uri = fs.to_uri(base)
    base.mkdir()
    (tmp_path / "secret").mkdir()
    rng = random.Random(1234)
    roots = ["/data/in", "/", "/data/in/", "data/in"]
    outside = nested = 0
    for _ in range(3000):
        parts = ["".join(rng.choice(HOSTILE) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(1, 6))]
        tail = "/".join(parts)
        root = rng.choice(roots)
        prefix = rng.choice(["file:", "hdfs://nn:8020", "", "file://"]) + (root if rng.random() < 0.8 else "/other")
        uri = prefix.rstrip("/") + "/" + tail
        rel = relative_output_path(uri, root)
        target = Path(fs.display(join_inside(base_uri, rel)))  # must never raise for sanitised output
        assert target == base.resolve() or base.resolve() in target.resolve().parents, (uri, rel)
        assert "\x00" not in rel and "\\" not in rel and "\n" not in rel
        assert not rel.startswith("/")
        assert all(p not in (".", "..", "") for p in rel.split("/") if rel)
        outside += rel.startswith("_outside/")
        nested += rel.count("/") >= 2 and not rel.startswith("_outside/")
    assert outside > 100 and nested > 100  # both branches were exercised


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../../x", "a/../../../etc/passwd"])
def test_join_inside_refuses_escapes(tmp_path, rel):
    with pytest.raises(ValueError, match="escapes"):
        join_inside(fs.to_uri(tmp_path), rel)
    with pytest.raises(ValueError, match="escapes"):
        join_inside("s3://bucket/out", rel)


def test_join_inside_allows_normal_paths(tmp_path):
    base = fs.to_uri(tmp_path)
    assert join_inside(base, "a/b/c.jpg") == base + "/a/b/c.jpg"
    assert join_inside(base, "a/../b.jpg") == base + "/b.jpg"
    assert join_inside("s3://bucket/out", "a/b.jpg") == "s3://bucket/out/a/b.jpg"


def test_join_inside_refuses_a_symlink_leading_out(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "base" / "link")
    with pytest.raises(ValueError):
        join_inside(fs.to_uri(tmp_path / "base"), "link/x.jpg")


def test_replace_with_extension():
    assert replace_with_extension("a/b.c/photo.jpeg", ".npy") == "a/b.c/photo.npy"
    assert replace_with_extension("a/noext", ".jpg") == "a/noext.jpg"
    assert replace_with_extension("a/x.tar.gz", "") == "a/x.tar"


@pytest.mark.parametrize("given, root_uri, root, pattern", [
    ("s3://bucket/in/*.jpg", "s3://bucket/in", "/in", "/in/*.jpg"),
    ("s3://bucket", "s3://bucket/", "/", None),
    ("hdfs://nn:8020/data/photos/", "hdfs://nn:8020/data/photos", "/data/photos", None),
    ("file:/data/x/*/a.png", "file:/data/x", "/data/x", "/data/x/*/a.png"),
    ("/data/photos", "/data/photos", "/data/photos", None),
    ("photos/*.png", "photos", "photos", "photos/*.png"),
])
def test_input_location_is_parsed_once_into_root_uri_and_posix_root(given, root_uri, root, pattern):
    location = InputLocation.parse(given)
    assert (location.given, location.root_uri, location.root, location.pattern) == (given, root_uri, root, pattern)
    assert location.relative(f"{root_uri}/a b/c.jpg") == "a b/c.jpg"


def test_input_location_qualified_keeps_the_given_input_and_pattern():
    location = InputLocation.parse("data/*.png").qualified("file:/home/u/data")
    assert (location.given, location.root_uri, location.root, location.pattern) == (
        "data/*.png", "file:/home/u/data", "/home/u/data", "data/*.png")
