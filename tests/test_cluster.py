"""The three jobs on a real Spark standalone cluster on 127.0.0.1, including lost workers and a lost driver.

Every job is a plain `spark-submit --master spark://127.0.0.1:PORT --properties-file conf/spark-standalone.conf
--py-files dist/colorspark-<version>.zip jobs/<job>.py ...` subprocess (in its own process group) against a
cluster of two one-core workers from tests/standalone.py. The submissions add only what the tests observe or pin:
`--total-executor-cores 2` (so the conf's minRegisteredResourcesRatio waits for both executors) and a plain
(uncompressed, not rolled) event log, from which the tests read which executor, hence which worker, ran each task;
and, for speed only, the JIT option JVM_OPTS for the short-lived driver and executor JVMs. The workers have fake
GPUs (FAKE_GPUS) for the GPU-scheduling test; the other applications ask for none and are scheduled as without them.

    pytest -m cluster tests/test_cluster.py     # the default cluster tests (a few minutes on two cores)
    pytest -m slow tests/test_cluster.py        # only the packed-environment test (runs ./build.sh package)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import imagefactory as factory  # noqa: E402
import numpy as np
import pytest
from standalone import cmdline, descendants, is_alive, standalone_cluster  # noqa: E402

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
SPARK_SUBMIT = ROOT / ".venv" / "bin" / "spark-submit"
STANDALONE_CONF = ROOT / "conf" / "spark-standalone.conf"
TMP_MARK = ".cs-tmp-"  # colorspark.fs.TMP_MARK (not imported: the tests look at the files from outside)
WORKERS = 2
# Fake GPU addresses per worker for Spark's resource scheduling (there is no GPU here). They differ between the
# workers so that an address also says whose it is.
FAKE_GPUS = [["0", "1"], ["2", "3"]]
EXTRA_PHOTOS = 24  # with the zoo's 21 files: 45 inputs for the pipeline
MANY_PHOTOS = 200  # with the zoo: 221 inputs for the worker-loss tests
JOB_TIMEOUT = 600
# Test speed only: the JVMs here live for a minute and spend much of their CPU on JIT compilation; the client
# compiler alone saves about 5 CPU-seconds per JVM (three per application) on this two-core machine.
JVM_OPTS = "-XX:TieredStopAtLevel=1"


# --- building and submitting -----------------------------------------------------------------------------------------

def _version() -> str:
    text = (ROOT / "colorspark" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


@pytest.fixture(scope="session")
def dist_zip() -> Path:
    """./build.sh: the venv is checked (not rebuilt when up to date) and dist/colorspark-<version>.zip rebuilt."""
    done = subprocess.run([str(ROOT / "build.sh")], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"./build.sh failed:\n{done.stdout}\n{done.stderr}"
    path = ROOT / "dist" / f"colorspark-{_version()}.zip"
    assert path.is_file(), f"./build.sh did not write {path}"
    return path


def wait_until(condition, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def wait_idle(cluster, timeout: float = 60.0) -> None:
    """No application holds the cluster's cores (a finished or killed driver's app is gone from the master)."""
    assert wait_until(lambda: not cluster.master_json().get("activeapps"), timeout, 0.5), (
        f"applications still active on the master after {timeout:.0f} s: {cluster.master_json().get('activeapps')}")


def _as_uri(arg) -> str:
    """Paths as file:// URIs: on a cluster master colorspark refuses plain paths for locations the executors share
    (they would name each machine's own disk); this cluster's workers all see the same disk."""
    return f"file://{arg}" if isinstance(arg, Path) else str(arg)


class Submission:
    """One spark-submit of a colorspark job against the standalone cluster, in its own process group."""

    def __init__(self, cluster, zip_path: Path, job: str | Path, args: list, workdir: Path, name: str, *,
                 submit_args: list | None = None, env: dict | None = None):
        wait_idle(cluster)
        self.name, self.cluster = name, cluster
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"{name}.log"
        self.events_dir = workdir / f"{name}-events"
        self.events_dir.mkdir()
        command = [str(SPARK_SUBMIT), "--master", cluster.master_url, "--properties-file", str(STANDALONE_CONF),
                   "--py-files", str(zip_path), "--total-executor-cores", str(cluster.workers * cluster.cores),
                   "--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir={self.events_dir.as_uri()}",
                   "--conf", "spark.eventLog.compress=false", "--conf", "spark.eventLog.rolling.enabled=false",
                   "--driver-java-options", JVM_OPTS, "--conf", f"spark.executor.extraJavaOptions={JVM_OPTS}",
                   *(submit_args or []),
                   str(job if isinstance(job, Path) else ROOT / "jobs" / f"{job}.py"), *map(_as_uri, args)]
        full_env = dict(os.environ)
        full_env.update({"PYSPARK_PYTHON": str(VENV_PY), "PYSPARK_DRIVER_PYTHON": str(VENV_PY),
                         "SPARK_LOCAL_IP": "127.0.0.1"})
        full_env.update(env or {})
        self.started = time.monotonic()
        self.seconds: float | None = None
        with open(self.log, "wb") as out:
            out.write(("$ " + " ".join(command) + "\n").encode())
            out.flush()
            self.proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        _SUBMITTED.append(self)

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float = JOB_TIMEOUT) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} did not finish within {timeout:.0f} s\n{self.tail()}")
        self.seconds = time.monotonic() - self.started
        _TIMINGS.append((self.name, self.seconds, code))
        return code

    def check(self, timeout: float = JOB_TIMEOUT) -> Submission:
        code = self.wait(timeout)
        assert code == 0, f"{self.name} exited with {code}\n{self.tail()}"
        return self

    def kill(self) -> None:
        """SIGKILL the whole driver: the spark-submit JVM and the Python driver it started (one process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        _TIMINGS.append((f"{self.name} (killed)", time.monotonic() - self.started, self.proc.returncode))
        assert wait_until(lambda: not _group_alive(self.proc.pid), 30), f"{self.name}: driver processes survived"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 60) -> str:
        return f"--- {self.log}:\n" + "\n".join(self.output().splitlines()[-lines:])

    def events(self) -> list[dict]:
        logs = [p for p in self.events_dir.iterdir() if not p.name.endswith(".inprogress")]
        assert len(logs) == 1, (f"{self.name}: expected one finished event log, "
                                f"found {sorted(os.listdir(self.events_dir))}")
        return [json.loads(line) for line in logs[0].read_text().splitlines() if line.strip()]


_SUBMITTED: list[Submission] = []
_TIMINGS: list[tuple[str, float, int]] = []


@pytest.fixture(scope="module", autouse=True)
def _report_job_times(request):
    """After the module: one line per spark-submit with its wall time (driver start to exit)."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and _TIMINGS:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for name, seconds, code in _TIMINGS:
                reporter.write_line(f"cluster job {name}: {seconds:.0f} s (exit {code})")


@pytest.fixture(autouse=True)
def _no_leftover_drivers():
    """A test that fails while a job runs must not leave that driver (and its application) behind."""
    yield
    while _SUBMITTED:
        sub = _SUBMITTED.pop()
        if sub.running():
            sub.kill()


def _group_alive(pgid: int) -> bool:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.getpgid(int(name)) == pgid and is_alive(int(name)):
                    return True
            except ProcessLookupError:
                pass
    return False


# --- reading the event log -------------------------------------------------------------------------------------------

def app_id(events: list[dict]) -> str:
    return next(e["App ID"] for e in events if e["Event"] == "SparkListenerApplicationStart")


def executor_worker_ports(events: list[dict]) -> dict[str, int]:
    """executor id -> web UI port of the standalone worker it ran under (from the executor's log URL)."""
    ports = {}
    for event in events:
        if event["Event"] == "SparkListenerExecutorAdded":
            urls = event["Executor Info"]["Log Urls"]
            ports[event["Executor ID"]] = urlparse(urls.get("stderr") or urls["stdout"]).port
    return ports


def executors_with_successful_tasks(events: list[dict]) -> set[str]:
    return {e["Task Info"]["Executor ID"] for e in events
            if e["Event"] == "SparkListenerTaskEnd" and e["Task End Reason"]["Reason"] == "Success"}


def removed_executors(events: list[dict]) -> dict[str, str]:
    return {e["Executor ID"]: e.get("Removed Reason", "") for e in events
            if e["Event"] == "SparkListenerExecutorRemoved"}


def assert_ran_on_both_workers(cluster, sub: Submission) -> None:
    """Tasks of the job succeeded on executors under two different workers, and both workers' work dirs hold an
    executor folder (with its stderr) of the application."""
    events = sub.events()
    ports = executor_worker_ports(events)
    used = executors_with_successful_tasks(events)
    worker_ports = {ports[e] for e in used}
    assert len(used) >= 2 and len(worker_ports) >= 2, (
        f"{sub.name}: successful tasks ran on executors {sorted(used)} under worker web ports {worker_ports}; "
        f"executors added: {ports}")
    app = app_id(events)
    for slot in range(cluster.workers):
        stderr_files = list((cluster.work_dir(slot) / app).glob("*/stderr"))
        assert stderr_files, f"{sub.name}: worker {slot} has no executor folder for {app} in {cluster.work_dir(slot)}"


# --- outputs ---------------------------------------------------------------------------------------------------------

def temp_leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if TMP_MARK in p.name or
                  p.name.startswith(".staging-"))


def read_results(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out / "results").to_pylist()


def jpeg_count(out: Path) -> int:
    folder = out / "jpeg"
    return sum(1 for p in folder.rglob("*.jpg") if not p.name.startswith(TMP_MARK)) if folder.is_dir() else 0


def check_colorize_outputs(out: Path, expect: dict) -> list[dict]:
    """One result row per input with the expected status; every ok row's files exist; no duplicates, no temps."""
    leftovers = temp_leftovers(out)
    assert not leftovers, f"temporary files left in the output: {leftovers}"
    rows = read_results(out)
    keys = [r["relative_path"] for r in rows]
    assert len(keys) == len(set(keys)), f"duplicate result rows: {sorted(k for k in set(keys) if keys.count(k) > 1)}"
    assert set(keys) == set(expect), (f"results do not match the inputs: missing {sorted(set(expect) - set(keys))}, "
                                      f"extra {sorted(set(keys) - set(expect))}")
    wrong = {r["relative_path"]: (r["status"], r["error"]) for r in rows
             if r["status"] != ("ok" if expect[r["relative_path"]].ok else "error")}
    assert not wrong, f"unexpected statuses: {wrong}"
    ok = [r for r in rows if r["status"] == "ok"]
    missing = [r["jpeg_path"] for r in ok if not r["jpeg_path"] or not Path(r["jpeg_path"]).is_file()]
    assert not missing, f"ok rows whose JPEG is missing: {missing[:10]}"
    missing_lab = [r["lab_path"] for r in ok if not r["lab_path"] or not Path(r["lab_path"]).is_file()]
    assert not missing_lab, f"ok rows whose Lab array is missing: {missing_lab[:10]}"
    jpegs = sorted((out / "jpeg").rglob("*.jpg"))
    labs = sorted((out / "lab").rglob("*.npy"))
    assert len(jpegs) == len(ok) and len(labs) == len(ok), (
        f"{len(jpegs)} JPEGs and {len(labs)} Lab arrays for {len(ok)} ok rows")
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["inputs"], summary["ok"], summary["errors"]) == (len(expect), len(ok), len(expect) - len(ok))
    return rows


def check_preprocess_outputs(out: Path, expect: dict) -> dict:
    """Manifest counts match the input files; HDF5 shards readable and holding exactly the Parquet samples."""
    import h5py
    import pyarrow.dataset as ds

    leftovers = temp_leftovers(out)
    assert not leftovers, f"temporary files left in the output: {leftovers}"
    manifest = json.loads((out / "manifest.json").read_text())
    n_ok = sum(1 for e in expect.values() if e.ok)
    # inputs == ok + errors == the number of files, each with the outcome the image factory expects
    assert (manifest["inputs"], manifest["ok"], manifest["errors"]) == (len(expect), n_ok, len(expect) - n_ok), manifest
    crops = manifest["train_crops"] + manifest["val_crops"] + manifest["selection_crops"]
    assert crops > 0
    shard_files = sorted(p.name for p in (out / "hdf5").iterdir())
    assert shard_files == sorted(manifest["hdf5_shards"]), "files in hdf5/ differ from the manifest's shard list"
    shard_rows = 0
    for name in shard_files:
        with h5py.File(out / "hdf5" / name, "r") as h5:
            n = len(h5["l"])
            assert all(len(h5[key]) == n for key in ("ab", "bins", "split", "path", "colorful")), name
            assert h5["l"].shape[1:] == (manifest["size"], manifest["size"]), name
            shard_rows += n
    assert shard_rows == crops, f"HDF5 shards hold {shard_rows} samples, the manifest counts {crops}"
    parquet_rows = ds.dataset(out / "parquet", format="parquet", partitioning="hive").count_rows()
    assert parquet_rows == crops, f"Parquet holds {parquet_rows} samples, the manifest counts {crops}"
    errors = ds.dataset(out / "errors", format="parquet").to_table().to_pylist()
    assert len(errors) == manifest["errors"]
    return manifest


# --- inputs ----------------------------------------------------------------------------------------------------------

def _photos(folder: Path, count: int, sizes, seed0: int) -> dict:
    expect = {}
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        rel = f"photos/{i // 50:02d}/photo-{i:03d}.jpg"
        factory.write_image(folder / rel, factory.colour_photo(w, h, seed=seed0 + i), quality=90)
        expect[rel] = factory.Expect.good(w, h)
    return expect


@pytest.fixture(scope="module")
def zoo_inputs(tmp_path_factory) -> tuple[Path, dict]:
    """The image zoo (good, odd and broken files) plus colour photos: 45 inputs."""
    folder = tmp_path_factory.mktemp("zoo-inputs")
    expect = factory.make_image_zoo(folder)
    expect.update(_photos(folder, EXTRA_PHOTOS, [(96, 64), (120, 80), (80, 96), (128, 96)], seed0=100))
    assert len(expect) >= 40
    return folder, expect


@pytest.fixture(scope="module")
def many_inputs(tmp_path_factory) -> tuple[Path, dict]:
    """The zoo plus 200 small colour photos: enough work to lose a worker in the middle of a job."""
    folder = tmp_path_factory.mktemp("many-inputs")
    expect = factory.make_image_zoo(folder)
    expect.update(_photos(folder, MANY_PHOTOS, [(128, 96), (112, 84), (96, 128)], seed0=1000))
    assert len(expect) >= 200
    return folder, expect


# --- the cluster and the pipeline ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with standalone_cluster(workers=WORKERS, memory="2g", base_dir=tmp_path_factory.mktemp("standalone"),
                            gpus=FAKE_GPUS) as running:
        yield running


@pytest.fixture
def full_cluster(cluster):
    """The module's cluster with every worker alive (a previous test may have killed one) and no application."""
    cluster.ensure_workers()
    wait_idle(cluster)
    return cluster


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def preprocessed(cluster, dist_zip, zoo_inputs, jobs_dir):
    cluster.ensure_workers()
    folder, _ = zoo_inputs
    out = jobs_dir / "pre"
    sub = Submission(cluster, dist_zip, "preprocess", ["--input", folder, "--output", out], jobs_dir, "preprocess")
    return out, sub.check()


@pytest.fixture(scope="module")
def trained(cluster, dist_zip, preprocessed, jobs_dir):
    cluster.ensure_workers()
    data, _ = preprocessed
    model = jobs_dir / "model"
    sub = Submission(cluster, dist_zip, "train", ["--data", data, "--model-dir", model, "--preset", "tiny",
                                                  "--rounds", 1, "--workers", 2], jobs_dir, "train")
    return model, sub.check()


@pytest.fixture(scope="module")
def colorized(cluster, dist_zip, trained, zoo_inputs, jobs_dir):
    cluster.ensure_workers()
    folder, _ = zoo_inputs
    model, _ = trained
    out = jobs_dir / "colorized"
    sub = Submission(cluster, dist_zip, "colorize", ["--input", folder, "--output", out, "--model", model],
                     jobs_dir, "colorize")
    return out, sub.check()


# --- a. the three jobs, spread over both workers ----------------------------------------------------------------------

def test_preprocess_on_cluster(cluster, preprocessed, zoo_inputs):
    out, sub = preprocessed
    manifest = check_preprocess_outputs(out, zoo_inputs[1])
    assert manifest["size"] == 64  # the tiny preset's input size (data.size default)
    assert_ran_on_both_workers(cluster, sub)


def test_train_on_cluster(cluster, trained):
    model, sub = trained
    meta = json.loads((model / "colorspark.json").read_text())
    history = json.loads((model / "history.json").read_text())
    assert meta["settings"]["preset"] == "tiny" and meta["rounds_done"] == 1
    assert [h["round"] for h in history] == [1]
    assert history[0]["train_loss"] is not None and np.isfinite(history[0]["train_loss"])
    assert (model / "checkpoints" / "round-0001" / "state.json").is_file()
    assert {d["device"] for d in meta["devices"]} == {"cpu"}  # no GPU asked for, none assigned
    assert_ran_on_both_workers(cluster, sub)


def test_colorize_on_cluster(cluster, colorized, zoo_inputs):
    out, sub = colorized
    _, expect = zoo_inputs
    rows = check_colorize_outputs(out, expect)
    python_workers = {r["worker"] for r in rows if r["worker"]}
    assert len(python_workers) >= 2, f"all rows came from the Python worker(s) {python_workers}"
    assert {r["device"] for r in rows if r["worker"]} == {"cpu"}  # no GPU asked for, none assigned
    assert_ran_on_both_workers(cluster, sub)


# --- b. a worker dies in the middle of a job --------------------------------------------------------------------------

VICTIM = 1  # the worker slot that gets killed


def _python_processes(cluster, slot: int) -> list[int]:
    """The Python daemon and workers under the worker of `slot` (descendants of its JVM)."""
    pid = cluster.worker_pids()[slot]
    return [p for p in descendants(pid) if Path((cmdline(p) or [""])[0]).name.startswith("python")] if pid else []


def _open_temp_files(pids) -> list[tuple[int, str]]:
    """(pid, path) of every file with the temp marker that one of `pids` holds open."""
    found = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if TMP_MARK in os.path.basename(target):
                found.append((pid, target))
    return found


def _kill_victim(cluster, sub: Submission, ready, what: str, interval: float = 0.05) -> dict:
    """Poll `ready()` while the job runs; then SIGKILL the victim worker's JVM, executor and Python workers."""
    assert wait_until(lambda: ready() or not sub.running(), 300, interval), (
        f"{sub.name}: never saw {what}\n{sub.tail()}")
    assert sub.running(), f"{sub.name} finished before {what} could be interrupted; make the input larger\n{sub.tail()}"
    executors = cluster.executor_pids(VICTIM)
    assert executors, f"worker {VICTIM} runs no executor while {sub.name} is running"
    port = cluster.worker_web_port(VICTIM)
    killed = cluster.kill_worker(VICTIM)
    assert set(executors) <= set(killed)
    return {"port": port, "killed": killed}


def _check_executor_lost(sub: Submission, facts: dict) -> None:
    """The driver lost the killed worker's executor while one of its tasks was running, and carried on."""
    events = sub.events()
    ports = executor_worker_ports(events)
    lost = {e for e, _ in removed_executors(events).items() if ports.get(e) == facts["port"]}
    assert lost, f"{sub.name}: the driver never lost an executor of the killed worker; removed: " \
                 f"{removed_executors(events)}, executors: {ports}"
    interrupted = [e for e in events if e["Event"] == "SparkListenerTaskEnd"
                   and e["Task End Reason"]["Reason"] == "ExecutorLostFailure"
                   and e["Task End Reason"].get("Executor ID") in lost]
    assert interrupted, f"{sub.name}: no task was running on the killed executor {sorted(lost)}"


def test_colorize_survives_worker_loss(full_cluster, dist_zip, trained, many_inputs, tmp_path):
    cluster = full_cluster
    folder, expect = many_inputs
    model, _ = trained
    out = tmp_path / "out"
    n_ok = sum(1 for e in expect.values() if e.ok)
    at_kill = {}

    def some_jpegs_written():
        at_kill["jpegs"] = jpeg_count(out)
        return at_kill["jpegs"] >= 8

    sub = Submission(cluster, dist_zip, "colorize", [
        "--input", folder, "--output", out, "--model", model, "--set", "colorize.batch_size=4",
        "--set", "colorize.partitions=6"], tmp_path, "colorize-worker-loss")
    facts = _kill_victim(cluster, sub, some_jpegs_written, "the first colorized JPEGs")
    assert at_kill["jpegs"] < n_ok, "the worker was killed after all images were done"
    sub.check()
    _check_executor_lost(sub, facts)
    check_colorize_outputs(out, expect)


def test_colorize_to_s3_survives_worker_loss(full_cluster, dist_zip, trained, many_inputs, tmp_path, s3):
    """The same loss with the outputs on S3 (a real S3 server on 127.0.0.1): afterwards exactly one JPEG per ok
    input, no temporary or partial object, one results row per input; the secret in no event log or output."""
    import io

    import pyarrow.parquet as pq

    cluster = full_cluster
    folder, expect = many_inputs
    model, _ = trained
    bucket = s3.new_bucket("cluster")
    n_ok = sum(1 for e in expect.values() if e.ok)
    credentials = [item for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
                   for item in ("--conf", f"spark.executorEnv.{key}={s3.env[key]}")]
    at_kill = {}

    def some_jpegs_written():
        at_kill["jpegs"] = sum(1 for key in s3.names(bucket, "out/jpeg/") if key.endswith(".jpg"))
        return at_kill["jpegs"] >= 8

    sub = Submission(cluster, dist_zip, "colorize", [
        "--input", folder, "--output", f"s3://{bucket}/out", "--model", model, "--set", "colorize.batch_size=4",
        "--set", "colorize.partitions=6"], tmp_path, "colorize-s3-worker-loss", env=s3.env, submit_args=credentials)
    facts = _kill_victim(cluster, sub, some_jpegs_written, "the first colorized JPEGs in the bucket")
    assert at_kill["jpegs"] < n_ok, "the worker was killed after all images were done"
    sub.check()
    _check_executor_lost(sub, facts)

    objects = s3.keys(bucket, "out")
    odd = sorted(k for k in objects if TMP_MARK in k or ".staging-" in k)
    assert not odd, f"temporary or staged objects left: {odd[:10]}"
    rows = [r for key, data in objects.items() if key.startswith("results/")
            for r in pq.read_table(io.BytesIO(data)).to_pylist()]
    keys = [r["relative_path"] for r in rows]
    assert sorted(keys) == sorted(expect), "not exactly one results row per input"
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == n_ok, {r["relative_path"]: r["error"] for r in rows if r["status"] != "ok"}
    jpegs = sorted(k for k in objects if k.startswith("jpeg/"))
    assert jpegs == sorted(r["jpeg_path"].split("/out/", 1)[1] for r in ok), "not exactly one JPEG per ok input"
    assert all(objects[k][:2] == b"\xff\xd8" and objects[k][-2:] == b"\xff\xd9" for k in jpegs), "a partial JPEG"
    assert json.loads(objects["summary.json"])["ok"] == n_ok
    secret = s3.secret.encode()
    assert not any(secret in data for data in objects.values())
    assert not any(secret in p.read_bytes() for p in sub.events_dir.rglob("*") if p.is_file()), \
        "the secret is in the event log"


def test_colorize_video_survives_worker_loss(full_cluster, dist_zip, tmp_path):
    """A worker dies while the segments of one video are colorized: the job exits 0, the MP4 holds every frame
    exactly once and in order, with the audio, and no temporary file is left."""
    from fractions import Fraction

    from videofactory import make_clip, video_frames_and_audio

    cluster = full_cluster
    source = tmp_path / "in" / "long.mp4"
    source.parent.mkdir()
    source.write_bytes(make_clip(300, 96, 64, cut_at=150, audio_seconds=12.0, gop=10))
    out = tmp_path / "out"

    def some_segments_written():
        return len(list(out.glob(".staging-*/video-parts/*.mp4"))) >= 3

    sub = Submission(cluster, dist_zip, "colorize", [
        "--input", tmp_path / "in", "--output", out, "--model", ROOT / "models" / "small",
        "--set", "video.segment_seconds=0.4", "--set", "video.encoder_preset=ultrafast"],
        tmp_path, "colorize-video-worker-loss")
    facts = _kill_victim(cluster, sub, some_segments_written, "the first colorized segments")
    sub.check()
    _check_executor_lost(sub, facts)
    output = video_frames_and_audio(out / "video" / "long.mp4")
    assert [p * output["time_base"] for p in output["pts"]] == [Fraction(i, 25) for i in range(300)]
    assert output["audio"] == video_frames_and_audio(source)["audio"]
    assert not temp_leftovers(out) and not list(out.glob(".staging-*"))


def test_preprocess_survives_worker_loss(full_cluster, dist_zip, many_inputs, tmp_path):
    """The worker is lost at the worst moment: its executor is half-way through writing an HDF5 shard.

    The victim's Python worker is frozen (SIGSTOP) as soon as it holds a temporary shard open, so the kill cannot
    miss that window; then the whole worker is SIGKILLed as in the other tests.
    """
    cluster = full_cluster
    folder, expect = many_inputs
    out = tmp_path / "out"
    frozen = {}
    watched = {"pids": [], "at": 0.0}

    def victim_writing_a_shard():
        if time.monotonic() - watched["at"] > 0.25:
            watched.update(pids=_python_processes(cluster, VICTIM), at=time.monotonic())
        for pid, path in _open_temp_files(watched["pids"]):
            if path.endswith(".h5") and "/.staging-" in path:
                os.kill(pid, signal.SIGSTOP)
                if Path(path).exists():  # still unfinished: it cannot be renamed while stopped
                    frozen.update(pid=pid, path=path)
                    return True
                os.kill(pid, signal.SIGCONT)  # it finished in between; wait for the next shard
        return False

    sub = Submission(cluster, dist_zip, "preprocess", [
        "--input", folder, "--output", out, "--set", "data.partitions=6"], tmp_path, "preprocess-worker-loss")
    facts = _kill_victim(cluster, sub, victim_writing_a_shard, "the victim writing an HDF5 shard", interval=0.002)
    assert frozen["pid"] in facts["killed"]
    sub.check()
    _check_executor_lost(sub, facts)
    check_preprocess_outputs(out, expect)


# --- c. the driver dies during training -------------------------------------------------------------------------------

def test_training_resumes_after_driver_loss(full_cluster, dist_zip, preprocessed, tmp_path):
    cluster = full_cluster
    data, _ = preprocessed
    model = tmp_path / "model"
    args = ["--data", data, "--model-dir", model, "--preset", "tiny", "--rounds", 3, "--workers", 2]
    first = Submission(cluster, dist_zip, "train", args, tmp_path, "train-killed")
    checkpoint = model / "checkpoints" / "round-0001" / "state.json"
    assert wait_until(lambda: checkpoint.is_file() or not first.running(), 400, 0.05), first.tail()
    assert first.running(), f"training finished before the driver could be killed\n{first.tail()}"
    first.kill()
    assert not (model / "colorspark.json").exists()
    wait_idle(cluster)  # the master noticed the lost driver and released its executors
    assert wait_until(lambda: not any(cluster.executor_pids(s) for s in range(cluster.workers)), 60, 0.5), (
        "executors of the killed driver's application are still running")

    second = Submission(cluster, dist_zip, "train", [*args, "--resume"], tmp_path, "train-resumed").check()
    log = second.output()
    match = re.search(r"resuming after round (\d+)", log)
    assert match, f"the rerun did not resume from a checkpoint\n{second.tail()}"
    k = int(match.group(1))
    assert 1 <= k < 3, f"resumed after round {k}"
    trained_again = [int(n) for n in re.findall(r"round (\d+)/3:", log)]
    assert trained_again == list(range(k + 1, 4)), f"the rerun trained rounds {trained_again} after resuming at {k}"
    history = json.loads((model / "history.json").read_text())
    assert [h["round"] for h in history] == [1, 2, 3]
    assert json.loads((model / "colorspark.json").read_text())["rounds_done"] == 3


# --- d. the packed environment (opt-in: pytest -m slow) ---------------------------------------------------------------

@pytest.mark.slow  # opt-in (pytest -m slow): packs ~1.4 GB and takes minutes
def test_colorize_with_packed_environment(full_cluster, dist_zip, trained, zoo_inputs, tmp_path):
    cluster = full_cluster
    started = time.monotonic()
    packed = subprocess.run([str(ROOT / "build.sh"), "package"], cwd=ROOT, capture_output=True, text=True,
                            timeout=3600)
    assert packed.returncode == 0, f"./build.sh package failed:\n{packed.stdout}\n{packed.stderr}"
    pack_seconds = time.monotonic() - started
    archive = ROOT / "dist" / "colorspark-env.tar.gz"
    assert archive.is_file()

    folder, expect = zoo_inputs
    model, _ = trained
    out = tmp_path / "out"
    env_python = "./environment/bin/python"
    sub = Submission(cluster, dist_zip, "colorize", ["--input", folder, "--output", out, "--model", model],
                     tmp_path, "colorize-packed", env={"PYSPARK_PYTHON": env_python},
                     submit_args=["--archives", f"{archive}#environment",
                                  "--conf", f"spark.executorEnv.PYSPARK_PYTHON={env_python}"])
    seen = set()
    try:
        while sub.running():
            for pid in cluster.processes():
                argv = cmdline(pid)
                if argv and argv[0] == env_python:
                    seen.add(pid)
            time.sleep(0.2)
        sub.check()
        check_colorize_outputs(out, expect)
        assert seen, "no executor Python process ran ./environment/bin/python"
        assert_ran_on_both_workers(cluster, sub)
        app = app_id(sub.events())
        unpacked = [p for slot in range(cluster.workers)
                    for p in (cluster.work_dir(slot) / app).glob("*/environment/bin/python")]
        assert unpacked, "no executor unpacked the archive as ./environment"
        print(f"\npacked environment: ./build.sh package {pack_seconds:.0f} s "
              f"({archive.stat().st_size / 2**20:.0f} MiB), colorize {sub.seconds:.0f} s")
    finally:
        for slot in range(cluster.workers):  # the unpacked copies are ~3 GB each
            for folder_ in (cluster.work_dir(slot)).glob("*/*/environment"):
                shutil.rmtree(folder_, ignore_errors=True)


# --- e. GPU scheduling, on the workers' fake GPUs ---------------------------------------------------------------------

GPU_CONF = ["--conf", "spark.executor.resource.gpu.amount=1", "--conf", "spark.task.resource.gpu.amount=1"]
ASSIGNED_ON_CPU = re.compile(r"cpu \(assigned gpu:(\d+)\)")  # colorspark.devices' record of an address it lacks


def executor_gpus(events: list[dict]) -> dict[str, list[str]]:
    """executor id -> the GPU addresses its worker gave it."""
    return {e["Executor ID"]: e["Executor Info"].get("Resources", {}).get("gpu", {}).get("addresses", [])
            for e in events if e["Event"] == "SparkListenerExecutorAdded"}


def check_task_devices(sub: Submission, records: list[dict]) -> None:
    """Each executor got one of its worker's GPUs; every task saw exactly one address, its executor's (a Python
    worker lives in one executor, so it always sees the same one), and ran on the CPU, as recorded."""
    given = executor_gpus(sub.events())
    assert given and all(len(addresses) == 1 for addresses in given.values()), f"{sub.name}: executors got {given}"
    for executor, addresses in given.items():
        assert any(addresses[0] in fake for fake in FAKE_GPUS), f"{sub.name}: executor {executor} got {addresses}"
    seen: dict[str, set] = {}
    for record in records:
        match = ASSIGNED_ON_CPU.fullmatch(record["device"] or "")
        assert match, f"{sub.name}: {record['worker']} recorded device {record['device']!r}"
        seen.setdefault(record["worker"], set()).add(match.group(1))
    assert all(len(addresses) == 1 for addresses in seen.values()), f"{sub.name}: addresses per worker {seen}"
    used = set().union(*seen.values())
    assert used == {a for addresses in given.values() for a in addresses}, (
        f"{sub.name}: tasks saw GPUs {sorted(used)}, the executors were given {given}")


def test_gpu_scheduled_jobs_pin_each_task_to_its_gpu(full_cluster, dist_zip, preprocessed, tmp_path):
    """train and colorize asking for one GPU per executor and task, on workers whose discovery scripts report fake
    GPUs: both complete on the CPU, and colorspark.json / the results and summary.json record each worker's device."""
    cluster = full_cluster
    data, _ = preprocessed
    model = tmp_path / "model"
    train = Submission(cluster, dist_zip, "train", ["--data", data, "--model-dir", model, "--preset", "tiny",
                                                    "--rounds", 1, "--workers", 2], tmp_path, "train-gpu",
                       submit_args=GPU_CONF).check()
    meta = json.loads((model / "colorspark.json").read_text())
    check_task_devices(train, meta["devices"])
    assert json.loads((model / "history.json").read_text())[0]["devices"] == meta["devices"]
    assert_ran_on_both_workers(cluster, train)

    photos = tmp_path / "photos"
    expect = _photos(photos, 8, [(96, 64), (80, 96)], seed0=500)
    out = tmp_path / "colorized"
    colorize = Submission(cluster, dist_zip, "colorize", ["--input", photos, "--output", out, "--model", model,
                                                          "--set", "colorize.partitions=4"],
                          tmp_path, "colorize-gpu", submit_args=GPU_CONF).check()
    rows = check_colorize_outputs(out, expect)
    check_task_devices(colorize, rows)
    summary = json.loads((out / "summary.json").read_text())
    assert [(d["worker"], d["device"]) for d in summary["devices"]] == sorted({(r["worker"], r["device"])
                                                                               for r in rows})


API_SCRIPT = '''
import sys
from pyspark.sql import SparkSession
import colorspark

spark = SparkSession.builder.appName("colorize-dataframe-worker-loss").getOrCreate()
images, listed, table = sys.argv[1:4]
photos = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(images)
photos.select("path").write.parquet(listed)  # the rows the table must account for
colorized = colorspark.colorize_dataframe(photos.repartition(6), batch_size=4)  # the shipped model, from the zip
colorized.select("path", "length", "colorized_jpeg", "status", "error").write.parquet(table)
spark.stop()
'''


def test_colorize_dataframe_survives_worker_loss(full_cluster, dist_zip, many_inputs, tmp_path):
    """A user's DataFrame pipeline (binaryFile -> colorize_dataframe -> Parquet) loses a worker mid-transform; the
    written table still has exactly one row per input."""
    import pyarrow.parquet as pq

    cluster = full_cluster
    folder, expect = many_inputs
    script = tmp_path / "colorize_table.py"
    script.write_text(API_SCRIPT)
    listed, table = tmp_path / "listed", tmp_path / "table"
    sub = Submission(cluster, dist_zip, script, [folder, listed, table], tmp_path, "colorize-dataframe-worker-loss")

    def a_task_committed():
        return any(table.glob("_temporary/*/task_*/part-*"))

    facts = _kill_victim(cluster, sub, a_task_committed, "the first committed task of the table")
    sub.check()
    _check_executor_lost(sub, facts)
    rows = pq.read_table(table).to_pylist()
    inputs = pq.read_table(listed).column("path").to_pylist()
    # Spark's file scans skip zero-byte files, so those never reach a user's DataFrame (the jobs list the files
    # themselves and report an empty one as an error row); every other file must be listed
    listed_names = sorted(Path(unquote(urlparse(p).path)).relative_to(folder).as_posix() for p in inputs)
    assert listed_names == sorted(rel for rel in expect if (folder / rel).stat().st_size > 0)
    assert sorted(r["path"] for r in rows) == sorted(inputs), "not exactly one table row per input row"
    for row in rows:
        ok = expect[Path(unquote(urlparse(row["path"]).path)).relative_to(folder).as_posix()].ok
        assert (row["status"] == "ok") == ok, (row["path"], row["error"])
        assert (row["colorized_jpeg"] is not None) == ok
