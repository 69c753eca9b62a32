"""A progress line about every `log.progress_seconds` during a job's long pass: done out of the total, the rate and
the ETA.

The count comes from a Spark accumulator that each task adds its own count to when it ends (`counter`), so there is
no extra pass over the data and the tasks pay one addition each. Spark merges a task's accumulator updates on the
driver when the task finishes, so the count moves in steps of one task's share: with Spark's default packing of
files into tasks (colorspark.session.DEFAULT_CONF) that is a hundred or so photos. A daemon thread on the driver
reads the count and logs; it stops with the pass. `log.progress_seconds = 0` turns the lines off (the tests do).

Training cannot count that way: a round's Spark task trains its whole share in one go, so its count would reach the
driver only at the round's end. Each training task reports its own progress instead (`TaskProgress`), on its
executor's log, which on a local run is the console.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("colorspark.progress")


def counter(spark_context):
    """An integer accumulator for the tasks to add what they finished to."""
    return spark_context.accumulator(0)


def progress_line(what: str, done: int, total: int | None, seconds: float) -> str:
    """`1,234/10,000 images (12 %), 45.6 images/s, ETA 3m12s` (no total: the count and the rate)."""
    rate = done / seconds if seconds > 0 else 0.0
    line = f"{done:,}/{total:,} {what} ({100 * done / total:.0f} %)" if total else f"{done:,} {what}"
    line += f", {rate:.1f} {what}/s"
    if total:
        line += f", ETA {duration(max(total - done, 0) / rate)}" if rate > 0 else ", ETA not known yet"
    return line


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


@contextlib.contextmanager
def reporting(what: str, total: int | None, done: Callable[[], int], interval: float):
    """Log `progress_line` every `interval` seconds while the block runs (nothing when `interval` is 0, and no line
    after the block: the job logs its own totals)."""
    if interval <= 0:
        yield
        return
    stop = threading.Event()
    started = time.monotonic()

    def report():
        while not stop.wait(interval):
            log.info("progress: %s", progress_line(what, done(), total, time.monotonic() - started))

    thread = threading.Thread(target=report, name="colorspark-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class TaskProgress:
    """(executors) A task's own progress line on its stderr (the executor's log), at most every `interval` seconds
    (never when it is 0)."""

    def __init__(self, what: str, total: int, interval: float, label: str):
        self.what, self.total, self.interval, self.label = what, total, interval, label
        self.started = self.last = time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if self.interval > 0 and now - self.last >= self.interval:
            self.last = now
            print(f"{time.strftime('%H:%M:%S')} colorspark {self.label}: progress: "
                  f"{progress_line(self.what, done, self.total, now - self.started)}", file=sys.stderr, flush=True)
