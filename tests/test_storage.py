"""colorspark.storage: atomic writes, temp sweeping, path handling and HDF5 shards."""

from __future__ import annotations

import json
import os
import random
import unicodedata
from pathlib import Path

import h5py
import numpy as np
import pytest

from colorspark.storage import (
    TMP_MARK,
    atomic_path,
    input_root,
    join_inside,
    relative_output_path,
    replace_with_extension,
    save_npy_atomic,
    sha256_file,
    sweep_temp_files,
    temp_path_for,
    uri_to_posix,
    write_bytes_atomic,
    write_hdf5_shard,
    write_json_atomic,
)


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(TMP_MARK)]


# --- atomic writes ----------------------------------------------------------------------------------------------------


def test_atomic_path_renames_on_success_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(TMP_MARK) and tmp.name.endswith("out.txt")
        tmp.write_text("new")
        assert not target.exists()  # readers never see a half-written target
    assert target.read_text() == "new"
    assert _temps(tmp_path) == []


def test_atomic_path_replaces_an_existing_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_exception_inside_leaves_target_unchanged_and_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_exception_inside_with_a_temp_directory_removes_it(tmp_path):
    target = tmp_path / "tree"
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            (tmp / "a").mkdir(parents=True)
            (tmp / "a" / "f").write_text("x")
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_exception_before_writing_anything(tmp_path):
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "x.bin"):
            raise KeyError("early")
    assert list(tmp_path.iterdir()) == []


def test_temp_names_are_unique(tmp_path):
    names = {temp_path_for(tmp_path / "a.txt").name for _ in range(100)}
    assert len(names) == 100


def test_write_json_atomic(tmp_path):
    target = tmp_path / "doc.json"
    document = {"b": np.float32(1.5), "a": np.arange(3), "n": np.int64(7), "s": "ü"}
    write_json_atomic(target, document)
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": [0, 1, 2], "b": 1.5, "n": 7, "s": "ü"}
    assert target.read_text().endswith("\n")
    assert _temps(tmp_path) == []


def test_write_json_atomic_rejects_unserialisable_and_keeps_old(tmp_path):
    target = tmp_path / "doc.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"v": object()})
    assert json.loads(target.read_text()) == {"v": 1}
    assert _temps(tmp_path) == []


def test_save_npy_atomic(tmp_path):
    array = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    target = tmp_path / "lab" / "x.npy"
    save_npy_atomic(target, array)
    loaded = np.load(target)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, array)
    assert _temps(tmp_path) == []


def test_write_bytes_atomic_and_sha256(tmp_path):
    target = tmp_path / "b.bin"
    write_bytes_atomic(target, b"abc")
    assert target.read_bytes() == b"abc"
    assert sha256_file(target) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# --- sweeping ---------------------------------------------------------------------------------------------------------


def test_sweep_removes_only_marked_temps(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    keep = [tmp_path / "keep.txt", tmp_path / "a" / "cs-tmp-lookalike", tmp_path / "a" / "b" / "x.cs-tmp-.npy",
            tmp_path / "a" / "b" / "keep.npy"]
    for path in keep:
        path.write_text("k")
    temp_files = [tmp_path / f"{TMP_MARK}1-x.npy", tmp_path / "a" / "b" / f"{TMP_MARK}2-y.h5"]
    for path in temp_files:
        path.write_text("t")
    temp_dir = tmp_path / "a" / f"{TMP_MARK}3-part"
    (temp_dir / "inner").mkdir(parents=True)
    (temp_dir / "inner" / "data").write_text("t")
    (temp_dir / f"{TMP_MARK}nested").write_text("t")  # inside a removed dir: not counted twice
    assert sweep_temp_files(tmp_path) == 3
    assert all(path.exists() for path in keep)
    assert not any(path.exists() for path in temp_files) and not temp_dir.exists()
    assert sweep_temp_files(tmp_path) == 0


def test_sweep_of_missing_root_is_zero(tmp_path):
    assert sweep_temp_files(tmp_path / "nothing-here") == 0


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
        target = join_inside(base, rel)  # must never raise for sanitised output
        assert target == base.resolve() or base.resolve() in target.parents, (uri, rel)
        assert "\x00" not in rel and "\\" not in rel and "\n" not in rel
        assert not rel.startswith("/")
        assert all(p not in (".", "..", "") for p in rel.split("/") if rel)
        outside += rel.startswith("_outside/")
        nested += rel.count("/") >= 2 and not rel.startswith("_outside/")
    assert outside > 100 and nested > 100  # both branches were exercised


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../../x", "a/../../../etc/passwd"])
def test_join_inside_refuses_escapes(tmp_path, rel):
    with pytest.raises(ValueError, match="escapes"):
        join_inside(tmp_path, rel)


def test_join_inside_allows_normal_paths(tmp_path):
    assert join_inside(tmp_path, "a/b/c.jpg") == tmp_path.resolve() / "a" / "b" / "c.jpg"
    assert join_inside(tmp_path, "a/../b.jpg") == tmp_path.resolve() / "b.jpg"


def test_join_inside_refuses_a_symlink_leading_out(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "base" / "link")
    with pytest.raises(ValueError):
        join_inside(tmp_path / "base", "link/x.jpg")


def test_replace_with_extension():
    assert replace_with_extension("a/b.c/photo.jpeg", ".npy") == "a/b.c/photo.npy"
    assert replace_with_extension("a/noext", ".jpg") == "a/noext.jpg"
    assert replace_with_extension("a/x.tar.gz", "") == "a/x.tar"


# --- HDF5 shards ------------------------------------------------------------------------------------------------------


def test_write_hdf5_shard_round_trips_with_plain_h5py(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "l": rng.integers(0, 256, size=(3, 16, 16), dtype=np.uint8),
        "ab": rng.integers(-100, 100, size=(3, 4, 4, 2), dtype=np.int8),
        "bins": rng.integers(0, 313, size=(3, 4, 4), dtype=np.int16),
        "max_chroma": rng.random(3).astype(np.float32),
        "key": np.array(["a/b.jpg", "Köln/ü ñ.png", "x#?%20.jpg"]),
        "split": np.array(["train", "val", "train"], dtype=object),
    }
    target = tmp_path / "shards" / "part-0.h5"
    write_hdf5_shard(target, arrays, {"size": 16, "version": "1.0"})
    assert _temps(tmp_path) == []
    with h5py.File(target, "r") as h5:
        assert set(h5) == set(arrays)
        for name in ("l", "ab", "bins", "max_chroma"):
            assert h5[name].dtype == arrays[name].dtype
            assert np.array_equal(h5[name][()], arrays[name])
        for name in ("key", "split"):
            assert h5py.check_string_dtype(h5[name].dtype).encoding == "utf-8"
            values = h5[name].asstr()[()].tolist()
            assert values == [str(v) for v in arrays[name]]
            assert all(type(v) is str for v in values)
        assert h5.attrs["size"] == 16
        assert h5.attrs["version"] == "1.0"


def test_write_hdf5_shard_failure_keeps_old_file(tmp_path):
    target = tmp_path / "part-0.h5"
    write_hdf5_shard(target, {"x": np.arange(3)})
    with pytest.raises(TypeError):  # h5py cannot store an arbitrary object as an attribute
        write_hdf5_shard(target, {"x": np.arange(5), "y": np.ones(5)}, {"attr": object()})
    with h5py.File(target, "r") as h5:
        assert list(h5) == ["x"] and np.array_equal(h5["x"][()], np.arange(3))
    assert _temps(tmp_path) == []
