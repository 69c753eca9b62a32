"""A real Spark standalone cluster on 127.0.0.1, started from the project's .venv, for the cluster tests.

    with standalone_cluster(workers=2, memory="2g") as cluster:
        subprocess.run([".venv/bin/spark-submit", "--master", cluster.master_url, ...])
        cluster.kill_worker(0)      # SIGKILL worker 0's JVM, its executors and their Python workers
        cluster.ensure_workers()    # start replacements until all slots are alive again

The master and each worker are `spark-class` processes (the script execs the JVM, so the pid is the JVM's), each
in its own process group and with a marker variable in its environment. Executors and their Python workers inherit
that environment from the worker JVM, so `stop()` and `kill_worker()` end exactly the processes started here and
their descendants (found through /proc, by parent pid and by marker), and nothing else on the machine.

Everything binds to 127.0.0.1 (SPARK_LOCAL_IP and --host): the master's RPC and web UI ports and each worker's web
UI port are free loopback ports picked here; worker and executor RPC ports are chosen by Spark.

`gpus=[["0", "1"], ["2", "3"]]` gives the workers fake GPUs for Spark's resource scheduling: each worker slot gets a
discovery script that reports its addresses (there is no GPU behind them), passed to the worker JVM as
`-Dspark.worker.resource.gpu.*` in SPARK_WORKER_OPTS. Applications that ask for no GPU are scheduled as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPARK_CLASS = ROOT / ".venv" / "bin" / "spark-class"
# pip's pyspark is the Spark installation; spark-class would otherwise ask `python3` on PATH where it is.
SPARK_HOME = next(iter(sorted((ROOT / ".venv" / "lib").glob("python3*/site-packages/pyspark"))), None)
MARKER = "COLORSPARK_TEST_CLUSTER"
EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"

# Loopback requests must never go through an HTTP proxy from the environment.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ClusterError(RuntimeError):
    """The cluster did not come up (or a process of it died); the message carries the relevant log tails."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- /proc helpers (bench/_common.py uses them too) ------------------------------------------------------------------

def stat_fields(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()  # the command name may contain spaces and parentheses


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None when it is gone."""
    fields = stat_fields(pid)
    return None if fields is None else (fields[0].decode(), int(fields[1]))


def is_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(pid: int, parents: dict[int, int] | None = None) -> list[int]:
    """Descendants of `pid` (children, grandchildren, ...) by the links in `parents` (pid -> ppid), by default those
    of the live processes in /proc. Each pid is taken once: /proc is read one process at a time, so a pid reused
    meanwhile could close a loop."""
    if parents is None:
        parents = {child: stat[1] for child in all_pids()
                   if (stat := _proc_stat(child)) is not None and stat[0] != "Z"}
    children: dict[int, list[int]] = {}
    for child, ppid in parents.items():
        children.setdefault(ppid, []).append(child)
    found, seen, stack = [], {pid}, [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                found.append(child)
                stack.append(child)
    return found


def _environ_marker(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            entries = fh.read().split(b"\0")
    except OSError:
        return None
    prefix = f"{MARKER}=".encode()
    for entry in entries:
        if entry.startswith(prefix):
            return entry[len(prefix):].decode(errors="replace")
    return None


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [part.decode(errors="replace") for part in fh.read().split(b"\0") if part]
    except OSError:
        return []


def _signal_all(pids, sig) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(pids, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if is_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if is_alive(p)]
    return alive


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- the cluster -----------------------------------------------------------------------------------------------------

@dataclass
class _Daemon:
    role: str  # "master" or "worker-<slot>-<generation>"
    proc: subprocess.Popen
    marker: str
    log: Path
    web_port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None


class StandaloneCluster:
    """A Spark master and `workers` workers (each `cores` cores, `memory` for executors) on 127.0.0.1."""

    def __init__(self, workers: int = 2, memory: str = "2g", cores: int = 1, base_dir: str | Path | None = None,
                 startup_timeout: float = 120.0, gpus: list[list[str]] | None = None):
        if workers < 1:
            raise ValueError("a cluster needs at least one worker")
        if gpus is not None and len(gpus) != workers:
            raise ValueError(f"gpus names the fake GPU addresses of each of the {workers} workers, got {len(gpus)}")
        if not SPARK_CLASS.exists() or SPARK_HOME is None:
            raise ClusterError(f"{SPARK_CLASS} or pyspark in {ROOT / '.venv'} is missing: run ./build.sh first")
        self.workers, self.memory, self.cores, self.startup_timeout = workers, memory, cores, startup_timeout
        self.gpus = gpus
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir is not None else Path(tempfile.mkdtemp(prefix="cs-standalone-"))
        self.log_dir = self.base_dir / "logs"
        self.token = uuid.uuid4().hex[:12]
        self.master_port = free_port()
        self.master_web_port = free_port()
        self._master: _Daemon | None = None
        self._slots: list[_Daemon | None] = [None] * workers
        self._all: list[_Daemon] = []  # every daemon ever started, killed ones included
        self._generation = 0

    # --- addresses and state ---

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def master_web_url(self) -> str:
        return f"http://127.0.0.1:{self.master_web_port}"

    def work_dir(self, slot: int) -> Path:
        """The worker's --work-dir: one folder per application, one per executor inside, with stdout/stderr."""
        return self.base_dir / f"worker-{slot}"

    def worker_web_port(self, slot: int) -> int | None:
        daemon = self._slots[slot]
        return daemon.web_port if daemon is not None else None

    def worker_pids(self) -> list[int | None]:
        """The worker JVM pid of each slot, None for a slot whose worker was killed or has exited."""
        return [d.pid if d is not None and d.running() else None for d in self._slots]

    def executor_pids(self, slot: int) -> list[int]:
        """Executor JVMs running under the worker of `slot` (children of the worker JVM)."""
        daemon = self._slots[slot]
        if daemon is None or not daemon.running():
            return []
        return [pid for pid in descendants(daemon.pid) if EXECUTOR_CLASS in cmdline(pid)]

    def processes(self) -> list[int]:
        """Every live process of this cluster: the daemons and all their descendants."""
        pids = {p for p in all_pids() if (m := _environ_marker(p)) and m.startswith(f"{self.token}/")}
        for daemon in self._all:
            if daemon.running():
                pids.add(daemon.pid)
                pids.update(descendants(daemon.pid))
        return sorted(p for p in pids if is_alive(p))

    def master_json(self) -> dict:
        """The master's status document (workers, alive workers, active and completed applications)."""
        with _http.open(f"{self.master_web_url}/json/", timeout=5) as response:
            return json.load(response)

    def alive_workers(self) -> list[dict]:
        return [w for w in self.master_json().get("workers", []) if w.get("state") == "ALIVE"]

    # --- starting ---

    def _env(self, marker: str) -> dict:
        env = dict(os.environ)
        env.update({
            "SPARK_HOME": str(SPARK_HOME),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.log_dir),
            "SPARK_WORKER_DIR": str(self.base_dir / "worker-default"),
            "SPARK_PID_DIR": str(self.base_dir / "pids"),
            "SPARK_LOCAL_DIRS": str(self.base_dir / "local"),  # executors' scratch space and fetched files
            "SPARK_DAEMON_JAVA_OPTS": "-XX:TieredStopAtLevel=1",  # faster start of the master and worker JVMs
            MARKER: marker,
        })
        for key in ("SPARK_MASTER_HOST", "SPARK_MASTER_PORT", "SPARK_WORKER_CORES", "SPARK_WORKER_MEMORY",
                    "SPARK_WORKER_PORT", "SPARK_WORKER_WEBUI_PORT", "SPARK_MASTER_WEBUI_PORT"):
            env.pop(key, None)
        return env

    def _spawn(self, role: str, args: list[str], web_port: int, extra_env: dict | None = None) -> _Daemon:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        marker = f"{self.token}/{role}"
        log = self.log_dir / f"{role}.log"
        env = {**self._env(marker), **(extra_env or {})}
        with open(log, "ab") as out:
            proc = subprocess.Popen([str(SPARK_CLASS), *args], cwd=self.base_dir, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        daemon = _Daemon(role, proc, marker, log, web_port)
        self._all.append(daemon)
        return daemon

    def start(self) -> StandaloneCluster:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._master = self._spawn("master", [
                "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(self.master_port),
                "--webui-port", str(self.master_web_port)], self.master_web_port)
            self._wait(lambda: self._master_up(), "the master to answer on its web UI", [self._master])
            for slot in range(self.workers):
                self.start_worker(slot, wait=False)
            self.wait_for_workers(self.workers)
        except BaseException:
            self.stop()
            raise
        return self

    def start_worker(self, slot: int, wait: bool = True) -> int:
        """Start a worker in `slot` (after a kill: a new worker JVM with the same work dir); returns its pid."""
        old = self._slots[slot]
        if old is not None and old.running():
            raise ClusterError(f"worker slot {slot} is still running (pid {old.pid})")
        self._generation += 1
        web_port = free_port()
        work_dir = self.work_dir(slot)
        work_dir.mkdir(parents=True, exist_ok=True)
        daemon = self._spawn(f"worker-{slot}-{self._generation}", [
            "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", str(self.cores),
            "--memory", self.memory, "--webui-port", str(web_port), "--work-dir", str(work_dir),
            self.master_url], web_port, self._gpu_options(slot))
        self._slots[slot] = daemon
        if wait:
            self.wait_for_workers(sum(1 for pid in self.worker_pids() if pid is not None))
        return daemon.pid

    def _gpu_options(self, slot: int) -> dict:
        """SPARK_WORKER_OPTS giving the worker of `slot` its fake GPUs through a discovery script (none without
        `gpus`)."""
        if self.gpus is None:
            return {}
        addresses = self.gpus[slot]
        script = self.base_dir / f"discover-gpus-{slot}.sh"
        script.write_text("#!/bin/sh\n# fake GPUs for colorspark's cluster tests: no device behind these addresses\n"
                          f"echo '{json.dumps({'name': 'gpu', 'addresses': addresses})}'\n")
        script.chmod(0o755)
        return {"SPARK_WORKER_OPTS": f"-Dspark.worker.resource.gpu.amount={len(addresses)} "
                                     f"-Dspark.worker.resource.gpu.discoveryScript={script}"}

    def ensure_workers(self) -> None:
        """Restart every slot whose worker is not running, then wait until all slots are registered and alive."""
        for slot, pid in enumerate(self.worker_pids()):
            if pid is None:
                self.start_worker(slot, wait=False)
        self.wait_for_workers(self.workers)

    def _master_up(self) -> bool:
        try:
            self.master_json()
            return True
        except OSError:
            return False

    def wait_for_workers(self, count: int, timeout: float | None = None) -> None:
        """Wait until the master reports exactly `count` ALIVE workers whose web UI ports are our live slots."""
        def ready():
            live = {d.web_port for d in self._slots if d is not None and d.running()}
            try:
                alive = self.alive_workers()
            except OSError:
                return False
            ports = {int(w.get("webuiaddress", "").rsplit(":", 1)[-1] or 0) for w in alive}
            return len(alive) == count and ports == live and len(live) == count
        daemons = [self._master] + [d for d in self._slots if d is not None]
        self._wait(ready, f"{count} alive workers at {self.master_url}", daemons, timeout)

    def _wait(self, condition, what: str, daemons, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        while time.monotonic() < deadline:
            if condition():
                return
            dead = [d for d in daemons if d is not None and not d.running()]
            if dead:
                raise ClusterError(f"waiting for {what}: {', '.join(d.role for d in dead)} exited\n" + "\n".join(
                    f"--- {d.role} ({d.log}):\n{_tail(d.log)}" for d in dead))
            time.sleep(0.25)
        raise ClusterError(f"timed out waiting for {what}\n" + "\n".join(
            f"--- {d.role} ({d.log}):\n{_tail(d.log)}" for d in daemons if d is not None))

    # --- faults ---

    def kill_worker(self, slot: int) -> list[int]:
        """SIGKILL the worker JVM of `slot` together with its executors and their Python workers, like a lost host.

        Returns the pids that were killed (the worker JVM first). Waits until all of them are gone.
        """
        daemon = self._slots[slot]
        if daemon is None or not daemon.running():
            raise ClusterError(f"worker slot {slot} is not running")
        victims = [daemon.pid, *descendants(daemon.pid)]
        victims += [p for p in all_pids() if p not in victims and _environ_marker(p) == daemon.marker]
        _signal_all(victims, signal.SIGKILL)
        daemon.proc.wait(timeout=30)
        left = _wait_gone(victims, 30)
        if left:
            raise ClusterError(f"processes {left} of worker slot {slot} survived SIGKILL")
        return victims

    # --- stopping ---

    def stop(self) -> None:
        """End every process this cluster started, and their descendants: SIGTERM, then SIGKILL after 15 s."""
        pids = self.processes()
        for daemon in self._all:
            if daemon.running():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(daemon.pid, signal.SIGTERM)  # its own group (start_new_session)
        _signal_all(pids, signal.SIGTERM)
        left = _wait_gone(pids, 15)
        _signal_all(left, signal.SIGKILL)
        for daemon in self._all:
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.proc.wait(timeout=10)
        stragglers = self.processes()  # anything that was starting up while we collected pids
        _signal_all(stragglers, signal.SIGKILL)
        _wait_gone(stragglers, 10)
        self._slots = [None] * self.workers
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def standalone_cluster(workers: int = 2, memory: str = "2g", cores: int = 1, base_dir: str | Path | None = None,
                       gpus: list[list[str]] | None = None) -> Iterator[StandaloneCluster]:
    """Start a standalone cluster, yield it, and stop exactly its processes on the way out (also on errors)."""
    cluster = StandaloneCluster(workers=workers, memory=memory, cores=cores, base_dir=base_dir, gpus=gpus)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
