"""The three jobs on S3 end to end (local[2], a real S3 server on 127.0.0.1), checked against the same runs on local
disk; and the clear exit-2 errors for a missing bucket, a refused secret and hdfs:// without libhdfs.

The jobs reach the server only through the standard AWS variables. Spark's pip distribution has no S3 connector, so
these runs also prove the path without one: inputs listed and read through pyarrow, every output written through
colorspark's storage layer.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from imagefactory import colour_photo, write_image

pytestmark = pytest.mark.spark

FAST = ["--preset", "tiny", "--set", "train.batch_size=4", "--set", "train.max_val_rows=16"]
# One partition on both sides: part files are named after their partition, and Spark's round-robin repartition
# spreads the same files differently when they were listed differently (binaryFile here, pyarrow on S3).
PREPROCESS = ["--set", "data.crops=3", "--set", "data.val_fraction=0.25", "--set", "data.partitions=1",
              "--format", "both"]
COLORIZE = ["--set", "colorize.partitions=1"]


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(rgb.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, run_job, s3):
    """preprocess -> train (1 round, then --resume to 2) -> colorize, once into a bucket and once on local disk."""
    root = tmp_path_factory.mktemp("s3jobs")
    for i in range(14):
        write_image(root / "photos" / f"p{i}.png", colour_photo(72, 64, seed=i))
    for i in range(3):
        write_image(root / "gray" / "sub" / f"g{i}.jpg", _gray(colour_photo(90, 60, seed=20 + i)))
    write_image(root / "gray" / "colour.png", colour_photo(50, 40, seed=40))
    (root / "gray" / "broken.jpg").write_bytes(b"not a jpeg")
    bucket = s3.new_bucket("jobs")
    s3.upload_tree(root / "photos", bucket, "photos")
    s3.upload_tree(root / "gray", bucket, "gray")
    base, local = f"s3://{bucket}", root / "local"
    logs = {}

    def run(name, *args, **kwargs):
        proc = run_job(name, *map(str, args), env=s3.env, **kwargs)
        assert proc.returncode == 0, proc.log
        logs.setdefault(name, []).append(proc.log)
        return proc

    run("preprocess", "--input", f"{base}/photos", "--output", f"{base}/data", *PREPROCESS)
    run("preprocess", "--input", root / "photos", "--output", local / "data", *PREPROCESS)
    run("train", "--data", f"{base}/data", "--model-dir", f"{base}/model", "--rounds", "1", *FAST)
    history_1 = json.loads(s3.keys(bucket, "model")["history.json"])
    resumed = run("train", "--data", f"{base}/data", "--model-dir", f"{base}/model", "--rounds", "2", "--resume",
                  *FAST)
    run("train", "--data", local / "data", "--model-dir", local / "model", "--rounds", "2", *FAST)
    run("colorize", "--input", f"{base}/gray", "--model", f"{base}/model", "--output", f"{base}/out", *COLORIZE)
    run("colorize", "--input", root / "gray", "--model", f"{base}/model", "--output", local / "out", *COLORIZE)
    return {"s3": s3, "bucket": bucket, "local": local, "logs": logs, "history_1": history_1,
            "resumed": resumed.log}


def test_preprocess_on_s3_writes_what_it_writes_on_local_disk(runs):
    remote, local = runs["s3"].keys(runs["bucket"], "data"), _tree(runs["local"] / "data")
    assert sorted(remote) == sorted(local)
    assert {"manifest.json", "prior.npy"} <= set(remote) and any(k.startswith("hdf5/part-") for k in remote)
    assert remote["prior.npy"] == local["prior.npy"]  # a sum over all partitions: the same bytes
    manifest, local_manifest = json.loads(remote["manifest.json"]), json.loads(local["manifest.json"])
    for key in ("inputs", "ok", "errors", "train", "val", "train_crops", "val_crops", "hdf5_shards"):
        assert manifest[key] == local_manifest[key], key

    def samples(tree):
        rows = [r for name, data in tree.items() if name.startswith("parquet/") for r in
                pq.read_table(io.BytesIO(data)).to_pylist()]
        return sorted((r["path"].rsplit("/", 1)[-1], r["crop"], r["l"], r["ab"], r["bins"]) for r in rows)

    assert samples(remote) == samples(local) and len(samples(remote)) == 3 * 14


def test_train_on_s3_resumes_and_writes_the_local_layout(runs):
    remote, local = runs["s3"].keys(runs["bucket"], "model"), _tree(runs["local"] / "model")
    assert sorted(remote) == sorted(local)
    assert {"model.keras", "colorspark.json", "history.json", "history.png", "checkpoints/round-0001/state.json",
            "checkpoints/round-0002/model.keras"} <= set(remote)
    history = json.loads(remote["history.json"])
    assert [h["round"] for h in history] == [1, 2] and history[0] == runs["history_1"][0]
    assert "resuming after round 1" in runs["resumed"] and "round 1/2" not in runs["resumed"]
    meta = json.loads(remote["colorspark.json"])
    import hashlib
    assert meta["model_sha256"] == hashlib.sha256(remote["model.keras"]).hexdigest()


def test_colorize_on_s3_writes_the_same_images_as_on_local_disk(runs):
    remote, local = runs["s3"].keys(runs["bucket"], "out"), _tree(runs["local"] / "out")
    assert sorted(remote) == sorted(local)
    images = [k for k in remote if k.startswith(("jpeg/", "lab/"))]
    assert sorted(images) == ["jpeg/colour.jpg", "jpeg/sub/g0.jpg", "jpeg/sub/g1.jpg", "jpeg/sub/g2.jpg",
                              "lab/colour.npy", "lab/sub/g0.npy", "lab/sub/g1.npy", "lab/sub/g2.npy"]
    for name in images:
        assert remote[name] == local[name], name
    lab = np.load(io.BytesIO(remote["lab/sub/g0.npy"]))
    assert lab.shape == (60, 90, 3) and lab.dtype == np.uint8  # the default lab8 encoding
    rows = [r for name, data in remote.items() if name.startswith("results/")
            for r in pq.read_table(io.BytesIO(data)).to_pylist()]
    assert sorted((r["relative_path"], r["status"]) for r in rows) == [
        ("broken.jpg", "error"), ("colour.png", "ok"), ("sub/g0.jpg", "ok"), ("sub/g1.jpg", "ok"),
        ("sub/g2.jpg", "ok")]
    assert {r["jpeg_path"] for r in rows if r["status"] == "ok"} == {
        f"s3://{runs['bucket']}/out/{name}" for name in images if name.startswith("jpeg/")}
    summary = json.loads(remote["summary.json"])
    assert summary["inputs"] == 5 and summary["ok"] == 4 and summary["errors"] == 1 and summary["scored"] == 1
    assert b"<html" in remote["report.html"][:200].lower()


def test_no_secret_in_any_log_or_output(runs):
    secret = runs["s3"].secret.encode()
    for name, logs in runs["logs"].items():
        for log in logs:
            assert runs["s3"].secret not in log, name
    for prefix in ("data", "model", "out"):
        for key, data in runs["s3"].keys(runs["bucket"], prefix).items():
            assert secret not in data, key


def test_a_missing_bucket_is_a_clear_usage_error(run_job, s3, tmp_path):
    write_image(tmp_path / "in" / "a.png", colour_photo(32, 32))
    proc = run_job("colorize", "--input", tmp_path / "in", "--output", "s3://no-such-bucket-here/out", env=s3.env)
    assert proc.returncode == 2, proc.log
    assert "the bucket 'no-such-bucket-here' does not exist" in proc.log and "Traceback" not in proc.log


def test_a_refused_secret_is_a_clear_usage_error_and_is_never_printed(run_job, s3, tmp_path):
    bucket = s3.new_bucket("secret")
    secret = "WrOnG-SeCrEt-5f3a9c"
    env = {**s3.env, "AWS_SECRET_ACCESS_KEY": secret}
    proc = run_job("preprocess", "--input", f"s3://{bucket}/photos", "--output", f"s3://{bucket}/data", env=env)
    assert proc.returncode == 2, proc.log
    assert "refused the credentials" in proc.log and "Traceback" not in proc.log
    assert secret not in proc.log and s3.secret not in proc.log
    assert s3.keys(bucket) == {}


def test_hdfs_without_libhdfs_says_what_is_missing(run_job, tmp_path):
    proc = run_job("train", "--data", tmp_path, "--model-dir", "hdfs://namenode:8020/models/x")
    assert proc.returncode == 2, proc.log
    assert "ARROW_LIBHDFS_DIR" in proc.log and "CLASSPATH" in proc.log
    assert "Traceback" not in proc.log and "dlopen" not in proc.log


def test_a_plain_output_path_is_refused_on_a_cluster_master(run_job, tmp_path):
    """A plain path would name every executor's own disk; the job says to use a URI (no cluster is started: the
    check happens before the Spark session)."""
    proc = run_job("colorize", "--input", tmp_path, "--output", tmp_path / "out", master="spark://127.0.0.1:1")
    assert proc.returncode == 2, proc.log
    assert "plain path" in proc.log and f"file://{tmp_path}/out" in proc.log
