"""Shared fixtures: the --py-files zip, running a job the way a user does (spark-submit on local[2])."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
PYTHON = sys.executable
SPARK_SUBMIT = str(Path(PYTHON).parent / "spark-submit")


def _version() -> str:
    from colorspark import __version__
    return __version__


@pytest.fixture(scope="session")
def py_files() -> Path:
    """dist/colorspark-<version>.zip, rebuilt by ./build.sh when any package file is newer."""
    target = ROOT / "dist" / f"colorspark-{_version()}.zip"
    sources = [*(ROOT / "colorspark").glob("*.py"), *(ROOT / "models" / "small").glob("*")]
    if not target.exists() or max(p.stat().st_mtime for p in sources) > target.stat().st_mtime:
        subprocess.run(["bash", str(ROOT / "build.sh")], check=True, capture_output=True)
    return target


def job_env() -> dict:
    env = dict(os.environ, PYSPARK_PYTHON=PYTHON, PYSPARK_DRIVER_PYTHON=PYTHON)
    env.pop("PYTHONPATH", None)  # the job must find colorspark through --py-files alone
    return env


@pytest.fixture(scope="session")
def run_job(py_files):
    """Run `jobs/<name>.py ARGS` with spark-submit on local[2], from a neutral working directory; without progress
    lines unless ARGS ask for them (`--set log.progress_seconds=...`)."""

    def run(name: str, *args: str, master: str = "local[2]", timeout: int = 600, cwd: Path | None = None,
            env: dict | None = None, spark_conf: dict | None = None):
        conf = [item for key, value in (spark_conf or {}).items() for item in ("--conf", f"{key}={value}")]
        cmd = [SPARK_SUBMIT, "--master", master, "--driver-memory", "2g", *conf, "--py-files", str(py_files),
               str(ROOT / "jobs" / f"{name}.py"), "--set", "log.progress_seconds=0", *map(str, args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**job_env(), **(env or {})},
                              cwd=cwd or "/")
        proc.log = proc.stdout + proc.stderr
        return proc

    return run


@pytest.fixture(scope="session")
def s3():
    """A real S3 server on 127.0.0.1 (tests/s3server.py); `s3.env` holds the AWS variables that point at it."""
    from s3server import S3Server

    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3, monkeypatch):
    """The S3 server's variables in this process too, for calling colorspark.fs directly."""
    from colorspark import fs

    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    fs.forget_filesystems()  # filesystems read the credentials when they are made
    yield s3.env
    fs.forget_filesystems()
