"""Shared helpers of the colorspark benchmarks (plain Python; never shipped to Spark executors).

* machine facts and load checks (`machine_info`, `wait_for_idle`, `CpuMonitor`: how much CPU *other* processes used
  while a phase ran, so a noisy neighbour is visible in the figures instead of hidden in them), reading /proc with the
  process helpers of tests/standalone.py;
* memory sampling of process trees (`MemorySampler`: RSS and PSS by component every second) and its trend over a
  phase (`memory_trend`: quarter means and slopes);
* input replication into /tmp (the shared photos are never copied into the repository);
* running a driver script under `spark-submit` with an event log, and reading that event log back into job/stage/task
  figures (`parse_event_log`);
* the BENCHMARKS.md section writer (each benchmark owns one marked section and replaces only that).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import glob
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT / "tests"))  # appended, so that no module in tests/ can shadow an installed one

import standalone  # noqa: E402
from standalone import all_pids, descendants, stat_fields  # noqa: E402

BENCH = ROOT / "bench"
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
SPARK_SUBMIT = VENV / "bin" / "spark-submit"
PHOTOS = (ROOT / ".." / "shared" / "data" / "photos").resolve()
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
FOREIGN_PATTERNS = ("spark-submit", "pytest", "org.apache.spark.deploy", "SparkSubmit", "pyspark.daemon")


# --- machine ----------------------------------------------------------------------------------------------------------

def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def mem_total_gib() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2 ** 20
    return float("nan")


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("numpy", "PIL", "pyspark", "tensorflow", "keras", "elephas", "pyarrow", "h5py"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version
            out[name] = version({"PIL": "pillow"}.get(name, name))
    return out


def machine_info() -> dict:
    return {"nproc": os.cpu_count(), "cpu": cpu_model(), "mem_gib": round(mem_total_gib(), 1),
            "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "kernel": platform.release(),
            "loadavg": loadavg(), "versions": versions()}


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable, ROOT)] + [
        os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])


# --- processes --------------------------------------------------------------------------------------------------------

def _stat(pid: int):
    """(ppid, utime+stime seconds, starttime ticks) of a process, or None."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[19])


def tree_of(root: int, parents: dict[int, int] | None = None) -> set[int]:
    """`root` and all its descendants, zombies included (CpuMonitor counts the CPU time they used)."""
    if parents is None:
        parents = {pid: st[0] for pid in all_pids() if (st := _stat(pid))}
    return {root, *descendants(root, parents)}


def cmdline(pid: int) -> str:
    """The command line of `pid` as one string, for matching patterns and printing ("" once it is gone)."""
    return " ".join(standalone.cmdline(pid))


def foreign_heavy_processes() -> list[str]:
    """Spark / pytest processes that are not this benchmark or its children (what the brief says to wait for)."""
    mine = tree_of(os.getpid())
    found = []
    for pid in all_pids():
        if pid in mine:
            continue
        cl = cmdline(pid)
        if any(p in cl for p in FOREIGN_PATTERNS):
            found.append(f"{pid} {cl[:160]}")
    return found


class CpuMonitor:
    """CPU seconds used by this process tree vs. by every other process between `start()` and `stop()`.

    A background thread reads /proc/<pid>/stat of every process every `interval` s and remembers each process's own
    utime+stime (keyed by pid and start time); a process counts as ours if it was ever a descendant of this process.
    Processes that end lose at most their last `interval` of CPU time. (RUSAGE_CHILDREN is no use here: Spark's
    Python daemon and workers are not always reaped by their parents, so their CPU time would go missing.)
    """

    def __init__(self, interval: float = 0.5):
        import threading

        self.interval = interval
        self.base: dict = {}
        self.last: dict = {}
        self.ours: set = set()
        self._stop = threading.Event()
        self._thread = None
        self.result: dict = {}

    def _scan(self, first: bool = False) -> None:
        procs = {pid: st for pid in all_pids() if (st := _stat(pid))}
        parents = {pid: v[0] for pid, v in procs.items()}
        mine = tree_of(os.getpid(), parents)
        for pid, (_, cpu, start) in procs.items():
            key = (pid, start)
            if key not in self.base:
                self.base[key] = cpu if first else 0.0
            self.last[key] = cpu
            if pid in mine:
                self.ours.add(key)

    @staticmethod
    def _machine_busy() -> float:
        with open("/proc/stat") as fh:
            parts = fh.readline().split()[1:]
        vals = [int(x) for x in parts]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return (sum(vals[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def _loop(self):
        while not self._stop.wait(self.interval):
            self._scan()

    def start(self) -> CpuMonitor:
        import threading

        self.t0, self.busy0, self.load0 = time.time(), self._machine_busy(), loadavg()[0]
        self._scan(first=True)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self._scan()
        wall = time.time() - self.t0
        busy = self._machine_busy() - self.busy0
        ours = sum(self.last[k] - self.base[k] for k in self.ours)
        foreign = sum(self.last[k] - self.base[k] for k in self.last if k not in self.ours)
        top = sorted(((self.last[k] - self.base[k], k[0]) for k in self.last if k not in self.ours), reverse=True)[:3]
        self.result = {"wall_s": wall, "machine_cpu_s": busy, "our_cpu_s": ours, "foreign_cpu_s": foreign,
                       "foreign_cores": foreign / wall if wall > 0 else 0.0,
                       "our_cores": ours / wall if wall > 0 else 0.0,
                       "unattributed_cpu_s": busy - ours - foreign,
                       "top_foreign": [(round(c, 1), pid, cmdline(pid)[:80]) for c, pid in top if c > 0.5],
                       "load_before": self.load0, "load_after": loadavg()[0]}
        return self.result


def wait_for_idle(max_load: float = 0.5, timeout: float = 3 * 3600, poll: float = 30.0, skip: bool = False,
                  log=print) -> dict:
    """Block until the 1-min load average is below `max_load` and no foreign Spark/pytest process runs."""
    started = time.time()
    while True:
        load = loadavg()
        others = foreign_heavy_processes()
        if skip or (load[0] < max_load and not others):
            return {"waited_s": round(time.time() - started), "loadavg": load, "foreign_processes": others,
                    "skipped_check": skip, "idle": load[0] < max_load and not others}
        if time.time() - started > timeout:
            log(f"[bench] gave up waiting for an idle machine after {timeout:.0f} s (load {load}); running anyway")
            return {"waited_s": round(time.time() - started), "loadavg": load, "foreign_processes": others,
                    "skipped_check": False, "idle": False}
        log(f"[bench] {time.strftime('%H:%M:%S')} waiting for an idle machine: load {load[0]:.2f} "
            f"(want < {max_load}), {len(others)} other spark/pytest processes")
        time.sleep(poll)


def settle(max_foreign_cores: float = 0.15, window: float = 3.0, timeout: float = 900, skip: bool = False,
           log=print) -> dict:
    """Between our own phases: wait until other processes use < `max_foreign_cores` (the 1-min load average still
    reflects our previous phase, so it is no use here) and no foreign Spark/pytest process runs."""
    started = time.time()
    if skip:
        return {"foreign_cores": None, "loadavg": loadavg(), "foreign_processes": [], "waited_s": 0}
    while True:
        mon = CpuMonitor().start()
        time.sleep(window)
        r = mon.stop()
        others = foreign_heavy_processes()
        if (r["foreign_cores"] < max_foreign_cores and not others) or time.time() - started > timeout:
            return {"foreign_cores": round(r["foreign_cores"], 3), "loadavg": loadavg(), "foreign_processes": others,
                    "waited_s": round(time.time() - started)}
        log(f"[bench] other processes busy ({r['foreign_cores']:.2f} cores, {len(others)} spark/pytest): waiting")
        time.sleep(10)


# --- memory -----------------------------------------------------------------------------------------------------------

def proc_kb(pid: int, name: str, field: str) -> int:
    """The kB figure of the `field` line of /proc/<pid>/<name> (0 when the process or the line is gone)."""
    try:
        with open(f"/proc/{pid}/{name}") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_kind(pid: int) -> str:
    """Which part of a Spark application (or cluster) a process is, from its command line."""
    cl = cmdline(pid)
    if "CoarseGrainedExecutorBackend" in cl:
        return "executor_jvm"
    if "java" in cl.split(" ", 1)[0]:
        if "deploy.master" in cl or "deploy.worker" in cl:
            return "cluster_daemon_jvm"
        return "driver_jvm" if "SparkSubmit" in cl else "other_jvm"
    if "pyspark.daemon" in cl or "pyspark/daemon" in cl or "pyspark.worker" in cl:
        return "python_workers"
    if "jobs/colorize.py" in cl:
        return "python_driver"
    return "other"


def memory_of(pids) -> dict:
    """RSS (shared pages counted in each process) and PSS (shared pages split: the honest total) of `pids`, in MB,
    with the RSS and process count of each kind (`process_kind`): rss_<kind>, n_<kind>."""
    row = {"procs": 0, "rss_mb": 0.0, "pss_mb": 0.0}
    for pid in pids:
        rss = proc_kb(pid, "status", "VmRSS:")
        if not rss:
            continue
        kind = process_kind(pid)
        row["procs"] += 1
        row["rss_mb"] += rss / 1024
        row["pss_mb"] += proc_kb(pid, "smaps_rollup", "Pss:") / 1024
        row[f"rss_{kind}"] = row.get(f"rss_{kind}", 0.0) + rss / 1024
        row[f"n_{kind}"] = row.get(f"n_{kind}", 0) + 1
    return row


class MemorySampler:
    """Every `interval` s, in a background thread: `memory_of` each named group of processes that `groups()` returns
    (name -> pids; a group may come and go, e.g. an executor). `t` is seconds since `t0`."""

    def __init__(self, groups, interval: float = 1.0, t0: float | None = None):
        import threading

        self.groups, self.interval = groups, interval
        self.t0 = time.time() if t0 is None else t0
        self.samples: list[dict] = []  # {"t": s, group name: memory_of(its pids), ...}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            row = {"t": round(time.time() - self.t0, 2)}
            row.update({name: memory_of(pids) for name, pids in self.groups().items()})
            self.samples.append(row)
            self._stop.wait(self.interval)

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> MemorySampler:
        self._stop.set()
        self._thread.join()
        return self

    def names(self) -> list[str]:
        """The groups seen, in the order they first appeared."""
        return list(dict.fromkeys(name for s in self.samples for name in s if name != "t"))

    def series(self, name: str) -> list[dict]:
        """The samples of one group as flat rows: {"t", "procs", "rss_mb", "pss_mb", "rss_<kind>", ...}."""
        return [{"t": s["t"], **s[name]} for s in self.samples if name in s]


def write_memory_csv(path: Path, rows: list[dict]) -> None:
    import csv

    first = ["t", "procs", "rss_mb", "pss_mb"]
    keys = first + sorted({k for r in rows for k in r} - set(first))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, keys)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()})


def _slope_per_min(rows: list[dict], key: str) -> float:
    """Least-squares slope of `key` over `t`, per minute (NaN with fewer than 3 rows)."""
    if len(rows) < 3:
        return float("nan")
    ts, ys = [r["t"] for r in rows], [r[key] for r in rows]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    den = sum((t - mt) ** 2 for t in ts) or 1.0
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den * 60.0


def memory_trend(rows: list[dict], start: float, end: float) -> dict:
    """Peaks over all `rows` (one group's `MemorySampler.series`), and the trend inside the phase [start, end] (all
    rows when none falls inside): the mean PSS and RSS of each quarter of its samples (q1..q4; q1 also holds the
    warm-up: worker start, imports, model load) and its RSS by kind, and least-squares PSS slopes in MB/min
    over the whole phase and from q2 on."""
    phase = [r for r in rows if start <= r["t"] <= end] or rows
    q = max(1, len(phase) // 4)
    quarters = [phase[:q], phase[q:2 * q], phase[2 * q:3 * q], phase[-q:]]

    def mean(part, key):
        return sum(r.get(key, 0.0) for r in part) / len(part) if part else float("nan")

    kinds = sorted({k[4:] for r in rows for k in r if k.startswith("rss_") and k != "rss_mb"})
    out = {"peak_rss_mb": max((r["rss_mb"] for r in rows), default=0.0),
           "peak_pss_mb": max((r["pss_mb"] for r in rows), default=0.0),
           "peak_by_component": {c: max((r.get(f"rss_{c}", 0.0) for r in rows), default=0.0) for c in kinds},
           "max_procs": max((r["procs"] for r in rows), default=0),
           "slope_mb_per_min": _slope_per_min(phase, "pss_mb"),
           "slope_after_warmup_mb_per_min": _slope_per_min(phase[q:], "pss_mb"),
           "phase_s": (phase[-1]["t"] - phase[0]["t"]) if phase else 0.0, "phase_samples": len(phase)}
    for i, part in enumerate(quarters, 1):
        out[f"q{i}_pss_mb"], out[f"q{i}_rss_mb"] = mean(part, "pss_mb"), mean(part, "rss_mb")
        out[f"q{i}_by_component"] = {c: mean(part, f"rss_{c}") if part and all(f"rss_{c}" in r for r in part)
                                     else None for c in kinds}
    return out


# --- inputs -----------------------------------------------------------------------------------------------------------

def photo_files(photos: Path = PHOTOS) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png"}
    files = sorted(p for p in Path(photos).iterdir() if p.suffix.lower() in exts)
    if not files:
        raise SystemExit(f"no photos under {photos}")
    return files


def _convert_one(job):
    src, dst, gray, max_side, quality, scale = job
    from PIL import Image, ImageOps

    with Image.open(src) as im:
        im = ImageOps.exif_transpose(im)
        im = im.convert("L" if gray else "RGB")
        if scale != 1.0:
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
        if max_side and max(im.size) > max_side:
            im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        tmp = dst.with_name(".tmp-" + dst.name)
        im.save(tmp, format="JPEG", quality=quality)
        os.replace(tmp, dst)
    return str(dst)


def replicate(dst: Path, count: int, subdirs: int = 4, gray: bool = False, max_side: int = 0, quality: int = 90,
              photos: Path = PHOTOS, processes: int = 2, colour_every: int = 0, scale: float = 1.0,
              log=print) -> list[Path]:
    """`count` distinct files under dst/sub-XX/ made from the shared photos (copies, or gray/rescaled versions;
    with gray and colour_every=k, every k-th file stays in colour; `scale` resizes each photo by that factor, e.g.
    to reach a pixel count the shared photos do not have).

    Reuses an existing replica set with the same recipe (a stamp file records it)."""
    dst = Path(dst)
    recipe = {"count": count, "subdirs": subdirs, "gray": gray, "max_side": max_side, "quality": quality,
              "photos": str(photos), "colour_every": colour_every, "scale": scale}
    stamp = dst / ".recipe.json"
    src = photo_files(photos)
    plan = []
    converted = gray or max_side or scale != 1.0
    for i in range(count):
        s = src[i % len(src)]
        name = f"{s.stem}-r{i // len(src):03d}{'.jpg' if converted else s.suffix.lower()}"
        plan.append((s, dst / f"sub-{i % subdirs:02d}" / name))
    if stamp.is_file() and json.loads(stamp.read_text()) == recipe and all(p.is_file() for _, p in plan):
        return [p for _, p in plan]
    if dst.exists():
        shutil.rmtree(dst)
    for k in range(subdirs):
        (dst / f"sub-{k:02d}").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if converted:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(processes) as pool:
            jobs = [(s, d, gray and not (colour_every and i % colour_every == 0), max_side, quality, scale)
                    for i, (s, d) in enumerate(plan)]
            for _ in pool.imap_unordered(_convert_one, jobs, 64):
                pass
    else:
        for s, d in plan:
            shutil.copyfile(s, d)
    stamp.write_text(json.dumps(recipe))
    log(f"[bench] replicated {count} images into {dst} in {time.time() - t0:.1f} s")
    return [p for _, p in plan]


def dir_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(dirpath, f))
    return total


# --- spark-submit -----------------------------------------------------------------------------------------------------

def build_zip(log=print) -> Path:
    """./build.sh (fast when .venv exists); returns the --py-files zip."""
    r = subprocess.run([str(ROOT / "build.sh")], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"./build.sh failed:\n{r.stdout}\n{r.stderr}")
    zips = sorted((ROOT / "dist").glob("colorspark-*.zip"))
    if not zips:
        raise SystemExit("./build.sh produced no dist/colorspark-*.zip")
    return zips[-1]


def spark_submit(script: Path | str, script_args: list[str], *, master: str = "local[2]", zip_path: Path,
                 event_dir: Path | None = None, conf: dict | None = None, driver_memory: str | None = None,
                 log_path: Path | None = None, extra_env: dict | None = None, log=print,
                 properties_file: Path | str | None = None) -> tuple[int, float]:
    """Run `spark-submit script args`; returns (exit code, wall seconds). stdout+stderr go to `log_path`.
    `master`, `driver_memory` and `conf` override the values in `properties_file`."""
    cmd = [str(SPARK_SUBMIT)] + (["--properties-file", str(properties_file)] if properties_file else [])
    cmd += ["--master", master, "--py-files", str(zip_path)]
    if driver_memory:
        cmd += ["--driver-memory", driver_memory]
    conf = dict(conf or {})
    if event_dir is not None:
        Path(event_dir).mkdir(parents=True, exist_ok=True)
        conf.update({"spark.eventLog.enabled": "true", "spark.eventLog.dir": f"file:{event_dir}",
                     "spark.eventLog.compress": "false", "spark.eventLog.rolling.enabled": "false"})
    for k, v in conf.items():
        cmd += ["--conf", f"{k}={v}"]
    cmd += [str(script)] + [str(a) for a in script_args]
    env = {**os.environ, "PYSPARK_PYTHON": str(PY), "PYSPARK_DRIVER_PYTHON": str(PY), **(extra_env or {})}
    log(f"[bench] $ {' '.join(shlex.quote(c) for c in cmd)}")
    t0 = time.time()
    with open(log_path or os.devnull, "w") as fh:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    return rc, time.time() - t0


def preprocessed(source: Path, data: Path, crops: int, *, work: Path, master: str, zip_path: Path,
                 extra_args: tuple[str, ...] = ()) -> Path:
    """`data`: jobs/preprocess.py's output for the photos in `source` at `crops` crops of 64 px, made once and reused
    while a stamp file says it was made from the same recipe."""
    recipe = {"crops": crops, "size": 64, "input": str(source)}
    stamp = data / ".bench-recipe.json"
    if (data / "manifest.json").is_file() and stamp.is_file() and json.loads(stamp.read_text()) == recipe:
        return data
    rc, seconds = spark_submit(ROOT / "jobs" / "preprocess.py",
                               ["--input", str(source), "--output", str(data), "--set", f"data.crops={crops}",
                                "--set", "data.size=64", *extra_args], master=master, zip_path=zip_path,
                               log_path=work / "preprocess.log", log=say)
    if rc != 0:
        raise SystemExit(f"preprocess failed:\n{tail(work / 'preprocess.log')}")
    stamp.write_text(json.dumps(recipe))
    say(f"[bench] preprocessed {source} in {seconds:.0f} s -> {data}")
    return data


def timed_user_run(cmd: list[str], log_path: Path) -> tuple[float, dict]:
    """Run a job's spark-submit command line from the repository root as a user does (PYSPARK_PYTHON set, colorspark
    only through --py-files), timed from launch to exit with the CPU use of the run; exits with the log's tail when
    it fails. Returns (seconds, CPU record)."""
    env = {**os.environ, "PYSPARK_PYTHON": str(PY)}
    env.pop("PYTHONPATH", None)
    monitor = CpuMonitor().start()
    started = time.time()
    with open(log_path, "w") as fh:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    seconds = time.time() - started
    cpu = monitor.stop()
    if rc != 0:
        raise SystemExit(f"spark-submit failed (exit {rc}); log tail:\n{tail(log_path, 40)}")
    return seconds, cpu


def tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "".join(open(path, errors="replace").readlines()[-lines:])
    return ""


def machine_args(p, *, max_load: float = 0.5, max_wait: float = 3 * 3600) -> None:
    """The options every benchmark takes: waiting for an idle machine, and whether to update BENCHMARKS.md."""
    p.add_argument("--no-wait", action="store_true", help="do not wait for an idle machine (quick checks, tests)")
    p.add_argument("--max-load", type=float, default=max_load,
                   help=f"1-min load average counted as idle (default {max_load})")
    p.add_argument("--max-wait", type=float, default=max_wait,
                   help=f"give up waiting for an idle machine after this many seconds (default {max_wait:.0f})")
    p.add_argument("--no-md", action="store_true", help="do not update BENCHMARKS.md")


def plain_processes(script: str, per_process: list[list[str]]) -> tuple[float, list[dict], dict]:
    """Run bench/`script` once per argument list, all at once, each with one BLAS thread (as Spark's Python workers
    get: OMP_NUM_THREADS = spark.task.cpus; two processes with NumPy's thread per core would oversubscribe two
    cores). Returns (wall seconds until all ended, each one's last stdout line as JSON, CpuMonitor's record)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    mon = CpuMonitor().start()
    started = time.time()
    procs = [subprocess.Popen([str(PY), str(BENCH / script), *args], stdout=subprocess.PIPE, text=True, env=env)
             for args in per_process]
    outputs = [proc.communicate()[0] for proc in procs]
    seconds = time.time() - started
    cpu = mon.stop()
    if any(proc.returncode for proc in procs):
        raise SystemExit(f"{script} failed: exit codes {[proc.returncode for proc in procs]}")
    return seconds, [json.loads(out.strip().splitlines()[-1]) for out in outputs], cpu


def start_bench(args):
    """The common start of a benchmark: its work folder, an idle machine, the facts BENCHMARKS.md records, the zip.

    Returns (work dir, idle-wait record, machine info, command line, --py-files zip)."""
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    idle = wait_for_idle(args.max_load, timeout=args.max_wait, skip=args.no_wait, log=say)
    return work, idle, machine_info(), command_line(), build_zip()


def driver_phase(script: Path, script_args: list, *, work: Path, tag: str, master: str, zip_path: Path,
                 env: dict | None = None, properties_file: Path | str | None = None):
    """Run a bench driver under spark-submit with the event log on; it writes its figures to `--result FILE`.
    `env`: extra environment variables for spark-submit (and so for the driver and the Python workers);
    `properties_file`: spark-submit's `--properties-file`, as a job's users pass it.

    Returns (the driver's result, the parsed event log, CPU use during the run, spark-submit wall seconds); exits with
    the log's tail when the driver fails."""
    events = work / f"events{tag}"
    shutil.rmtree(events, ignore_errors=True)
    result = work / f"spark-result{tag}.json"
    result.unlink(missing_ok=True)
    log_path = work / f"spark{tag}.log"
    monitor = CpuMonitor().start()
    rc, seconds = spark_submit(script, list(script_args) + ["--result", str(result)], master=master,
                               zip_path=zip_path, event_dir=events, log_path=log_path, extra_env=env, log=say,
                               properties_file=properties_file)
    cpu = monitor.stop()
    if rc != 0 or not result.is_file():
        raise SystemExit(f"spark-submit failed (exit {rc}); log tail:\n{tail(log_path, 40)}")
    return json.loads(result.read_text()), parse_event_log(events), cpu, seconds


# --- event log --------------------------------------------------------------------------------------------------------

def parse_event_log(event_dir: Path) -> dict:
    """Jobs (with description, wall time, stages) and per-stage task-metric sums from a Spark JSON event log."""
    files = sorted(glob.glob(str(Path(event_dir) / "*")), key=os.path.getmtime)
    if not files:
        return {"jobs": [], "stages": {}}
    jobs, stages, stage_job = {}, {}, {}
    with open(files[-1], errors="replace") as event_file:
        for line in event_file:
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            kind = ev.get("Event")
            if kind == "SparkListenerJobStart":
                props = ev.get("Properties") or {}
                jid = ev["Job ID"]
                jobs[jid] = {"id": jid, "start": ev["Submission Time"] / 1000.0, "end": None,
                             "desc": props.get("spark.job.description") or props.get("callSite.short") or "",
                             "phase": props.get("bench.phase"), "stages": ev.get("Stage IDs", [])}
                for s in ev.get("Stage IDs", []):
                    stage_job[s] = jid
            elif kind == "SparkListenerJobEnd":
                if ev["Job ID"] in jobs:
                    jobs[ev["Job ID"]]["end"] = ev["Completion Time"] / 1000.0
            elif kind == "SparkListenerStageCompleted":
                info = ev["Stage Info"]
                sid = info["Stage ID"]
                st = stages.setdefault(sid, _empty_stage(sid))
                st.update(name=info.get("Stage Name", ""), tasks_planned=info.get("Number of Tasks"),
                          submitted=(info.get("Submission Time") or 0) / 1000.0,
                          completed=(info.get("Completion Time") or 0) / 1000.0, job=stage_job.get(sid))
            elif kind == "SparkListenerTaskEnd":
                sid = ev["Stage ID"]
                st = stages.setdefault(sid, _empty_stage(sid))
                ti, tm = ev.get("Task Info") or {}, ev.get("Task Metrics") or {}
                launch, finish = ti.get("Launch Time", 0), ti.get("Finish Time", 0)
                getting = ti.get("Getting Result Time", 0) or 0
                st["tasks"] += 1
                st["task_wall_s"] += (finish - launch) / 1000.0
                st["run_s"] += tm.get("Executor Run Time", 0) / 1000.0
                st["cpu_s"] += tm.get("Executor CPU Time", 0) / 1e9
                st["deser_s"] += tm.get("Executor Deserialize Time", 0) / 1000.0
                st["result_ser_s"] += tm.get("Result Serialization Time", 0) / 1000.0
                st["gc_s"] += tm.get("JVM GC Time", 0) / 1000.0
                st["getting_result_s"] += (finish - getting) / 1000.0 if getting else 0.0
                st["result_bytes"] += tm.get("Result Size", 0)
                st["input_bytes"] += (tm.get("Input Metrics") or {}).get("Bytes Read", 0)
                st["output_bytes"] += (tm.get("Output Metrics") or {}).get("Bytes Written", 0)
                sr = tm.get("Shuffle Read Metrics") or {}
                sw = tm.get("Shuffle Write Metrics") or {}
                st["shuffle_read_bytes"] += sr.get("Remote Bytes Read", 0) + sr.get("Local Bytes Read", 0)
                st["shuffle_write_bytes"] += sw.get("Shuffle Bytes Written", 0)
                st["max_task_s"] = max(st["max_task_s"], (finish - launch) / 1000.0)
                executor = ti.get("Executor ID")
                if executor is not None and finish:
                    ends = st["first_finish_by_executor"]
                    ends[executor] = min(ends.get(executor, finish / 1000.0), finish / 1000.0)
    for j in jobs.values():
        j["wall_s"] = (j["end"] - j["start"]) if j["end"] else None
    return {"jobs": sorted(jobs.values(), key=lambda j: j["id"]), "stages": stages}


def _empty_stage(sid):
    return {"id": sid, "name": "", "tasks": 0, "task_wall_s": 0.0, "run_s": 0.0, "cpu_s": 0.0, "deser_s": 0.0,
            "result_ser_s": 0.0, "gc_s": 0.0, "getting_result_s": 0.0, "result_bytes": 0, "input_bytes": 0,
            "output_bytes": 0, "shuffle_read_bytes": 0, "shuffle_write_bytes": 0, "max_task_s": 0.0,
            "submitted": 0.0, "completed": 0.0, "job": None, "first_finish_by_executor": {}}


def jobs_between(log: dict, start: float, end: float) -> list[dict]:
    return [j for j in log["jobs"] if j["start"] >= start - 0.05 and (j["end"] or j["start"]) <= end + 0.05]


def job_stages(log: dict, jobs: list[dict]) -> list[dict]:
    """The figures of every stage of `jobs`, job by job: what the benchmarks sum to get a job's task metrics."""
    return [log["stages"][sid] for j in jobs for sid in j["stages"] if sid in log["stages"]]


def job_table(log: dict, start: float, end: float, top: int = 12) -> tuple[list[list], float]:
    """Rows [description, jobs, wall s, tasks, task run s, cpu s] grouped by description; and the summed job wall."""
    groups: dict[str, dict] = {}
    union = []
    for j in jobs_between(log, start, end):
        g = groups.setdefault(j["desc"] or f"job {j['id']}", {"n": 0, "wall": 0.0, "tasks": 0, "run": 0.0,
                                                               "cpu": 0.0, "deser": 0.0, "first": j["start"]})
        g["n"] += 1
        g["wall"] += j["wall_s"] or 0.0
        union.append((j["start"], j["end"] or j["start"]))
        for st in job_stages(log, [j]):
            g["tasks"] += st["tasks"]
            g["run"] += st["run_s"]
            g["cpu"] += st["cpu_s"]
            g["deser"] += st["deser_s"]
    covered = _union_length(union)
    rows = [[d, g["n"], g["wall"], g["tasks"], g["run"], g["cpu"]]
            for d, g in sorted(groups.items(), key=lambda kv: kv[1]["first"])]
    return rows, covered


def _union_length(intervals) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


# --- BENCHMARKS.md ----------------------------------------------------------------------------------------------------

MD_HEADER = """# colorspark benchmarks

The sections are written by the scripts in `bench/` (each owns the part between its markers and rewrites only that;
`--help` gives the options). Figures are from a shared, noisy 2-core machine: each section records the load average
seen before the run and the CPU time other processes used while each phase ran ("foreign cores").
"""


SECTION_ORDER = ["preprocess", "preprocess-e2e", "train", "scaling", "colorize", "colorize-api", "colorize-e2e",
                 "colorize-progress", "load"]


def md_update(key: str, body: str) -> Path:
    """Replace (or append) the section between `<!-- bench:KEY -->` markers in BENCHMARKS.md."""
    start, end = f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}\n"
    lock = Path("/tmp/colorspark-benchmarks-md.lock")
    with open(lock, "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.is_file() else MD_HEADER
        if start in text and end in text:
            before, rest = text.split(start, 1)
            _, after = rest.split(end, 1)
            text = before + block.rstrip("\n") + after
        else:  # keep the sections in the benchmark order, whatever order the scripts run in
            later = [k for k in SECTION_ORDER[SECTION_ORDER.index(key) + 1:]] if key in SECTION_ORDER else []
            pos = min((text.index(f"<!-- bench:{k}:start -->") for k in later if f"<!-- bench:{k}:start -->" in text),
                      default=None)
            if pos is None:
                text = text.rstrip("\n") + "\n\n" + block
            else:
                text = text[:pos] + block + "\n" + text[pos:]
        tmp = BENCHMARKS_MD.with_name(".BENCHMARKS.md.tmp")
        tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        os.replace(tmp, BENCHMARKS_MD)
    return BENCHMARKS_MD


def md_table(header: list[str], rows: list[list], fmt: dict | None = None) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 10 else f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def job_md_table(rows: list[list]) -> str:
    """`job_table` rows as a Markdown table, so that every benchmark shows its Spark runs by job the same way."""
    return md_table(["job (action @ caller)", "jobs", "wall s", "tasks", "task run s", "task CPU s (JVM)"],
                    [[f"`{d[:110]}`", n, f"{w:.2f}", t, f"{run:.2f}", f"{cpu:.2f}"] for d, n, w, t, run, cpu in rows])


def describe_model(model_dir: Path | str) -> str:
    """Which model a colorize benchmark ran, from its `colorspark.json`: its cost depends on the input size, and the
    hash ties the recorded figures to one file."""
    meta = json.loads((Path(model_dir) / "colorspark.json").read_text())
    return (f"`{os.path.relpath(model_dir, ROOT)}` (preset {meta['settings'].get('preset')}, "
            f"{meta['input_size']} px input, {meta['rounds_done']} rounds, sha256 {str(meta['model_sha256'])[:12]}…)")


def machine_block(info: dict, idle: dict, cmd: str) -> str:
    v = info["versions"]
    not_idle = " (NOT idle" + (": idle check skipped" if idle.get("skipped_check") else "") + ")"
    waited = "; waited " + str(idle["waited_s"]) + " s for the machine to be idle" if idle.get("waited_s") else ""
    return (f"- command: `{cmd}`\n"
            f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['mem_gib']} GiB RAM, Linux {info['kernel']}; "
            f"{info['date']}\n"
            f"- software: Python {v.get('python')}, Spark {v.get('pyspark')}, TensorFlow {v.get('tensorflow')}, "
            f"Keras {v.get('keras')}, Elephas {v.get('elephas')}, NumPy {v.get('numpy')}, Pillow {v.get('PIL')}\n"
            f"- load average before the run (1/5/15 min): {' / '.join(f'{x:.2f}' for x in idle['loadavg'])}"
            f"{'' if idle.get('idle') else not_idle}"
            f"; other Spark/pytest processes: {len(idle['foreign_processes']) or 'none'}"
            f"{waited}\n")


def fmt_s(x: float) -> str:
    return f"{x:.1f} s" if x >= 1 else f"{x * 1000:.0f} ms"


def write_json(path: Path, obj) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2, default=lambda o: getattr(o, "tolist", lambda: str(o))()))


def say(*args):
    print(*args, flush=True)
