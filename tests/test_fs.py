"""colorspark.fs, the storage layer: atomic writes, listing, publishing and location checks, on local disk and on a
real S3 server."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from colorspark import fs


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(fs.TMP_MARK)]


# --- URIs -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("given, uri", [
    ("/a/b", "file:///a/b"),
    ("file:/a/b", "file:///a/b"),
    ("file:///a/b/", "file:///a/b"),
    ("file://localhost/a/b", "file:///a/b"),
    ("s3://bucket/key/", "s3://bucket/key"),
    ("hdfs://nn:8020/x", "hdfs://nn:8020/x"),
])
def test_to_uri(given, uri):
    assert fs.to_uri(given) == uri


def test_relative_paths_become_absolute_and_display_as_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fs.to_uri("out/x") == f"file://{tmp_path}/out/x"
    assert fs.display(fs.to_uri("out/x")) == f"{tmp_path}/out/x"
    assert fs.display("s3://b/k") == "s3://b/k"
    assert fs.scheme_of("S3A://b/k") == "s3a" and fs.scheme_of("/x") == "file" and fs.scheme_of("C:/x") == "file"


# --- atomic writes on a local disk ------------------------------------------------------------------------------------


def test_write_bytes_creates_folders_replaces_and_leaves_no_temp(tmp_path):
    target = fs.to_uri(tmp_path / "sub" / "out.bin")
    fs.write_bytes(target, b"old")
    fs.write_bytes(target, b"new")
    assert (tmp_path / "sub" / "out.bin").read_bytes() == b"new" and fs.read_bytes(target) == b"new"
    assert _temps(tmp_path) == []


def test_write_json_round_trips_numpy_and_keeps_the_old_file_on_failure(tmp_path):
    target = str(tmp_path / "doc.json")
    fs.write_json(target, {"b": np.float32(1.5), "a": np.arange(3), "n": np.int64(7), "s": "ü"})
    assert fs.read_json(target) == {"a": [0, 1, 2], "b": 1.5, "n": 7, "s": "ü"}
    assert (tmp_path / "doc.json").read_text().endswith("\n")
    with pytest.raises(TypeError):
        fs.write_json(target, {"v": object()})
    assert json.loads((tmp_path / "doc.json").read_text())["n"] == 7
    assert _temps(tmp_path) == []


def test_local_file_holding_gives_the_bytes_a_path_only_inside_the_block():
    with fs.local_file_holding(b"\x00keras bytes", suffix=".keras") as local:
        assert local.suffix == ".keras" and local.read_bytes() == b"\x00keras bytes"
    assert not local.exists() and not local.parent.exists()


def test_local_file_for_publishes_on_success_only(tmp_path):
    target = tmp_path / "shards" / "part-0.h5"
    with fs.local_file_for(str(target), ".h5") as local, h5py.File(local, "w") as h5:
        assert local.parent == target.parent and local.name.startswith(fs.TMP_MARK)
        h5["x"] = np.arange(3)
        assert not target.exists()  # readers never see a half-written file
    with h5py.File(target, "r") as h5:
        assert list(h5["x"][()]) == [0, 1, 2]
    with pytest.raises(RuntimeError, match="boom"), fs.local_file_for(str(target), ".h5") as local:
        local.write_bytes(b"half")
        raise RuntimeError("boom")
    with h5py.File(target, "r") as h5:
        assert list(h5["x"][()]) == [0, 1, 2]
    assert _temps(tmp_path) == []


def test_temp_names_are_unique():
    assert len({fs.temp_name("a.txt") for _ in range(100)}) == 100


def test_list_files_children_and_delete(tmp_path):
    for name in ("a/x.jpg", "a/b/y.png", "top.txt", f"a/{fs.TMP_MARK}1-z.jpg", f"{fs.STAGING_MARK}1/w.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"12345")
    root = fs.to_uri(tmp_path)
    assert fs.list_files(root) == [(f"{root}/a/b/y.png", 5), (f"{root}/a/x.jpg", 5), (f"{root}/top.txt", 5)]
    assert fs.list_files(f"{root}/top.txt") == [(f"{root}/top.txt", 5)]
    assert fs.list_files(f"{root}/missing") == []
    assert fs.children(root) == sorted([f"{fs.STAGING_MARK}1", "a", "top.txt"])
    fs.delete(f"{root}/a")
    fs.delete(f"{root}/top.txt")
    fs.delete(f"{root}/not-there")
    assert fs.children(root) == [f"{fs.STAGING_MARK}1"]


def test_sweep_removes_only_marked_temps(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    keep = [tmp_path / "keep.txt", tmp_path / "a" / "cs-tmp-lookalike", tmp_path / "a" / "b" / "x.cs-tmp-.npy",
            tmp_path / "a" / "b" / "keep.npy"]
    for path in keep:
        path.write_text("k")
    temp_files = [tmp_path / f"{fs.TMP_MARK}1-x.npy", tmp_path / "a" / "b" / f"{fs.TMP_MARK}2-y.h5"]
    for path in temp_files:
        path.write_text("t")
    temp_dir = tmp_path / "a" / f"{fs.TMP_MARK}3-part"
    (temp_dir / "inner").mkdir(parents=True)
    (temp_dir / "inner" / "data").write_text("t")
    (temp_dir / f"{fs.TMP_MARK}nested").write_text("t")  # inside a removed folder: not counted twice
    assert fs.sweep_temp_files(str(tmp_path)) == 3
    assert all(path.exists() for path in keep)
    assert not any(path.exists() for path in temp_files) and not temp_dir.exists()
    assert fs.sweep_temp_files(str(tmp_path)) == 0
    assert fs.sweep_temp_files(str(tmp_path / "nothing-here")) == 0


def _stage(root: Path, run: str, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        (root / run / name).parent.mkdir(parents=True, exist_ok=True)
        (root / run / name).write_bytes(data)
    return fs.to_uri(root / run)


def test_publish_replaces_old_outputs_and_removes_staging(tmp_path):
    out = tmp_path / "out"
    (out / "parquet" / "old-part").parent.mkdir(parents=True)
    (out / "parquet" / "old-part").write_bytes(b"old")
    (out / "prior.npy").write_bytes(b"old prior")
    (out / "errors").mkdir()
    (out / "unrelated.txt").write_bytes(b"kept")
    staging = _stage(out, ".staging-1", {"parquet/split=train/part-0.parquet": b"p", "prior.npy": b"new prior"})
    fs.publish(staging, fs.to_uri(out), ["parquet", "hdf5", "errors", "prior.npy"])
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "parquet/split=train/part-0.parquet", "prior.npy", "unrelated.txt"]
    assert not (out / "errors").exists()  # an output this run did not make does not survive from an older run
    assert (out / "prior.npy").read_bytes() == b"new prior"


# --- location checks --------------------------------------------------------------------------------------------------


def test_check_location_refuses_plain_paths_on_a_cluster_only(tmp_path):
    with pytest.raises(fs.StorageError, match="plain path.*file://") as err:
        fs.check_location(str(tmp_path / "out"), what="--output", cluster=True, output=True)
    assert err.value.exit_code == 2
    assert fs.check_location(str(tmp_path / "out"), what="--output", cluster=False, output=True) == \
        fs.to_uri(tmp_path / "out")
    assert fs.check_location(f"file://{tmp_path}/out", what="--output", cluster=True, output=True) == \
        f"file://{tmp_path}/out"


def test_check_location_refuses_a_file_as_output_folder(tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(fs.StorageError, match="is a file"):
        fs.check_location(str(tmp_path / "f"), what="--output", cluster=False, output=True)


@pytest.mark.parametrize("uri, message", [
    ("foo://host/x", "no filesystem here serves the scheme 'foo:'"),
    ("s3:///no-bucket", "Missing bucket name"),
    ("hdfs://namenode:8020/data", "ARROW_LIBHDFS_DIR"),
])
def test_check_location_explains_what_cannot_be_served(uri, message, capfd):
    with pytest.raises(fs.StorageError, match=message):
        fs.check_location(uri, what="--output", cluster=False, output=True)
    assert "dlopen" not in capfd.readouterr().err  # libhdfs's search is not shown to the user


# --- S3 (a real server, tests/s3server.py) ----------------------------------------------------------------------------


def test_s3_atomic_writes_listing_and_reading(s3, s3_env, tmp_path):
    bucket = s3.new_bucket()
    base = f"s3://{bucket}/run"
    fs.write_bytes(f"{base}/a/x.jpg", b"jpeg")
    fs.write_json(f"{base}/doc.json", {"k": 1})
    with fs.local_file_for(f"{base}/lab/part-0.h5", ".h5") as local, h5py.File(local, "w") as h5:
        h5["lab"] = np.ones((2, 2, 3), np.float32)
    with pytest.raises(RuntimeError), fs.local_file_for(f"{base}/lab/part-1.h5", ".h5") as local:
        local.write_bytes(b"half")
        raise RuntimeError("task killed")
    assert sorted(s3.keys(bucket, "run")) == ["a/x.jpg", "doc.json", "lab/part-0.h5"]  # no partial object
    assert fs.read_json(f"{base}/doc.json") == {"k": 1} and fs.is_file(f"{base}/a/x.jpg")
    assert fs.exists(f"{base}/a") and not fs.exists(f"{base}/nothing")
    assert [uri for uri, _ in fs.list_files(base)] == [f"{base}/a/x.jpg", f"{base}/doc.json",
                                                       f"{base}/lab/part-0.h5"]
    assert fs.children(base) == ["a", "doc.json", "lab"]
    with fs.local_copy(f"{base}/lab/part-0.h5") as local, h5py.File(local, "r") as h5:
        assert h5["lab"].shape == (2, 2, 3)
    assert fs.read_bytes(f"s3a://{bucket}/run/a/x.jpg") == b"jpeg"  # Hadoop's name for the same object


def test_a_process_whose_first_s3_key_has_spaces_and_accents_can_use_it(s3, s3_env):
    """The filesystem is opened from the bucket alone: Arrow cannot parse a URI whose key has spaces or accents,
    and a fresh Python worker (a retried task's) may meet such a key first."""
    bucket = s3.new_bucket()
    fs.forget_filesystems()
    fs.write_bytes(f"s3://{bucket}/out/jpeg/Über Straße ünïcödé.jpg", b"jpeg")
    assert sorted(s3.keys(bucket, "out")) == ["jpeg/Über Straße ünïcödé.jpg"]


def test_s3_publish_copies_staged_outputs_over_old_ones(s3, s3_env):
    bucket = s3.new_bucket()
    out = f"s3://{bucket}/data"
    fs.write_bytes(f"{out}/parquet/old.parquet", b"old")
    fs.write_bytes(f"{out}/keep.txt", b"kept")
    fs.write_bytes(f"{out}/.staging-1/parquet/split=val/part-00000.parquet", b"new")
    fs.write_bytes(f"{out}/.staging-1/prior.npy", b"prior")
    fs.publish(f"{out}/.staging-1", out, ["parquet", "prior.npy", "errors"])
    assert s3.keys(bucket, "data") == {"keep.txt": b"kept", "parquet/split=val/part-00000.parquet": b"new",
                                       "prior.npy": b"prior"}


def test_s3_missing_bucket_and_refused_secret_are_clear_and_keep_the_secret(s3, s3_env, monkeypatch):
    with pytest.raises(fs.StorageError, match="bucket 'no-such-bucket' does not exist") as err:
        fs.check_location("s3://no-such-bucket/out", what="--output", cluster=False, output=True)
    assert err.value.exit_code == 2
    bucket = s3.new_bucket()
    secret = "WRONG-secret-0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    fs.forget_filesystems()
    with pytest.raises(fs.StorageError, match="refused the credentials") as err:
        fs.check_location(f"s3://{bucket}/out", what="--output", cluster=False, output=True)
    assert secret not in str(err.value) and s3.secret not in str(err.value)



def test_credentials_written_into_a_uri_are_masked_wherever_it_is_shown():
    assert fs.display("s3://AKIAEXAMPLE:s3cr3t@bucket/photos") == "s3://***@bucket/photos"
    assert fs.display("s3://AKIAEXAMPLE:s3/cr3t@bucket/p") == "s3://***@bucket/p"  # unencoded: malformed, still masked
    assert fs.display("abfs://container@account.dfs.core.windows.net/x") == "abfs://container@account.dfs.core.windows.net/x"
    assert fs.display("hdfs://nn/a@b/c") == "hdfs://nn/a@b/c"  # an '@' in the path is not a password
    with pytest.raises(fs.StorageError) as err:
        fs.check_location("foo://user:s3cr3t@host/x", what="--output", cluster=False, output=True)
    assert "s3cr3t" not in str(err.value)
    with pytest.raises(fs.StorageError) as err:  # Arrow cannot parse it, and quotes it in its message
        fs.check_location("s3://AKIAEXAMPLE:s3/cr3t@bucket/x", what="--output", cluster=False, output=True)
    assert "s3/cr3t" not in str(err.value)


def test_credentials_in_an_s3_uri_are_used_and_not_taken_for_the_bucket(s3, s3_env, monkeypatch):
    bucket = s3.new_bucket()
    from urllib.parse import quote

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")  # so only the URI's secret can work
    fs.forget_filesystems()
    with pytest.raises(fs.StorageError, match="refused the credentials"):
        fs.check_location(f"s3://{bucket}/x.bin", what="--output", cluster=False, output=True)
    uri = f"s3://{s3.access_key}:{quote(s3.secret, safe='')}@{bucket}/x.bin"
    fs.write_bytes(uri, b"with credentials from the URI")
    assert s3.keys(bucket) == {"x.bin": b"with credentials from the URI"}
    assert fs.display(uri) == f"s3://***@{bucket}/x.bin"



def test_a_failed_write_leaves_no_temporary(tmp_path):
    (tmp_path / "taken").mkdir()  # a folder where the file should go: the rename fails
    with pytest.raises(OSError):
        fs.write_bytes(str(tmp_path / "taken"), b"data")
    assert _temps(tmp_path) == [] and (tmp_path / "taken").is_dir()
