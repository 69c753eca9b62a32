"""A local S3 server for the benchmarks, in its own process: tests/s3server.py (moto, signature checks on).

Started by `s3_server()` below; prints one JSON line ({"env": AWS variables, "bucket": a new bucket, "pid"}) and
serves until its stdin closes. A process of its own, so that its CPU time can be read from /proc and reported apart
from the job's (a real S3 service would not run on the benchmark machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve() -> None:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request: noise, and CPU time
    sys.path.append(str(ROOT / "tests"))
    from s3server import S3Server

    server = S3Server()
    try:
        bucket = server.new_bucket("bench")
        print(json.dumps({"env": server.env, "bucket": bucket, "pid": os.getpid()}), flush=True)
        sys.stdin.read()  # until the parent closes the pipe (or dies)
    finally:
        server.stop()


@contextlib.contextmanager
def s3_server(python: str = sys.executable):
    """Run the server in a child process; yields {"env", "bucket", "pid"}."""
    proc = subprocess.Popen([python, str(Path(__file__).resolve())], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"the S3 server did not start (exit {proc.wait()})")
        yield json.loads(line)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    serve()
