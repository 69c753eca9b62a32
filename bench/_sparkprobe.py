"""Driver-side harness of the benchmarks (imported only by the bench/*_driver.py scripts): the session, and the
labelling of Spark jobs.

PySpark's DataFrame actions run with a JVM call site ("count at NativeMethodAccessorImpl.java:0"), which says nothing
about which line of colorspark started the job. `install()` wraps the driver-side actions so each Spark job carries a
job description "<action> at <file>:<line> <source text>" naming the first caller frame outside PySpark; the event log
records it, and `_common.parse_event_log` groups job times by it. Nothing here runs on the executors and nothing in
colorspark is modified: only methods of PySpark classes in this driver process are wrapped.
"""

from __future__ import annotations

import contextlib
import functools
import linecache
import os
import sys
import threading
import time

_state = threading.local()
_installed = False


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        fn = frame.f_code.co_filename
        if ("pyspark" not in fn and "_sparkprobe" not in fn and "py4j" not in fn and "elephas" not in fn) \
                or fn.endswith("_driver.py"):
            break
        frame = frame.f_back
    if frame is None:
        return "?"
    fn = frame.f_code.co_filename
    text = linecache.getline(fn, frame.f_lineno, frame.f_globals).strip()
    if ".zip/" in fn:  # --py-files: colorspark/x.py inside the zip
        fn = fn.split(".zip/", 1)[1]
    return f"{os.path.basename(fn)}:{frame.f_lineno} {frame.f_code.co_name}(): {text[:90]}"


def _wrap(cls, name: str, label: str):
    original = getattr(cls, name)
    if getattr(original, "_bench_wrapped", False):
        return

    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        if getattr(_state, "depth", 0):
            return original(self, *args, **kwargs)
        from pyspark import SparkContext

        sc = SparkContext._active_spark_context
        _state.depth = 1
        try:
            if sc is not None:
                sc.setJobDescription(f"{label} @ {_caller()}")
            return original(self, *args, **kwargs)
        finally:
            _state.depth = 0
            if sc is not None:
                sc.setLocalProperty("spark.job.description", None)

    wrapper._bench_wrapped = True
    setattr(cls, name, wrapper)


def install() -> None:
    global _installed
    if _installed:
        return
    from pyspark import RDD
    from pyspark.sql import DataFrame, DataFrameWriter

    frames = [DataFrame]
    try:  # Spark 4: the methods live on the classic (non-Connect) subclass
        from pyspark.sql.classic.dataframe import DataFrame as ClassicDataFrame
        frames.append(ClassicDataFrame)
    except ImportError:
        pass
    for cls in frames:
        for name in ("count", "collect", "toLocalIterator", "inputFiles", "take", "first", "isEmpty"):
            if name in cls.__dict__:
                _wrap(cls, name, f"DataFrame.{name}")
    for name in ("parquet", "save", "json", "csv"):
        _wrap(DataFrameWriter, name, f"write.{name}")
    for name in ("collect", "count", "treeReduce", "reduce", "toLocalIterator", "take", "first", "foreach",
                 "foreachPartition", "sum"):
        _wrap(RDD, name, f"RDD.{name}")
    _installed = True


def set_phase(sc, phase: str | None) -> None:
    sc.setLocalProperty("bench.phase", phase)


@contextlib.contextmanager
def driver_session(name: str, *, tensorflow_workers: bool = True, probe: bool = True):
    """What every bench driver does around its runs: colorspark's logging and session, the session's start-up time
    and the job labels (`install`), and the session stopped however the runs end. Yields (spark, facts), facts
    holding `session_s` and `app_id` for the driver's result file."""
    from colorspark.session import build_spark_session, setup_logging

    setup_logging(name)
    started = time.time()
    spark = build_spark_session(name, tensorflow_workers=tensorflow_workers)
    facts = {"session_s": time.time() - started, "app_id": spark.sparkContext.applicationId}
    if probe:
        install()
    try:
        yield spark, facts
    finally:
        spark.stop()
