"""(driver) The job process itself: its log lines and its Spark session with colorspark's executor environment.

The Spark settings here are defaults a user can override with spark-submit; the executors get the environment that
quiets TensorFlow, tells the worker start-up hook what to preload, and points s3:// URIs at the same store as the
driver.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable

from .runtime import QUIET_ENV, prepared_worker


def setup_logging(job: str) -> logging.Logger:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s colorspark {job}: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)
    for noisy in ("py4j", "absl", "h5py", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(f"colorspark.{job}")


# No listening port beyond what Spark itself needs: the web UI is off unless asked for (spark.ui.enabled=true).
DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.python.worker.reuse": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "64",  # rows carry whole images
    # Spark packs files into partitions as if opening each cost 4 MB of reading: 32 photos per task, and a fixed cost
    # per task that dominates when a photo takes a few ms. At 1 MB a task holds ~120 photos (bench/preprocess_bench).
    "spark.sql.files.openCostInBytes": str(1 << 20),
    # A file Hadoop cannot open must not fail the job; colorspark.listing gives every skipped file an error row.
    "spark.sql.files.ignoreCorruptFiles": "true",
    "spark.sql.files.ignoreMissingFiles": "true",
    # Spark keeps one pool of Python workers per set of worker environment variables, and this setting gives
    # DataFrame passes a variable that RDD passes lack: off, both kinds of pass share the workers that
    # python_workers_starting starts early. Tracebacks from a task then show PySpark's own frames too.
    "spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled": "false",
}


# Where an s3:// URI points (never a credential): the executors must resolve a URI to the same store as the driver.
STORAGE_ENDPOINT_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION")


def _storage_endpoints() -> dict:
    return {key: os.environ[key] for key in STORAGE_ENDPOINT_ENV if os.environ.get(key)}


def build_spark_session(app_name: str, extra_conf: dict | None = None, *, tensorflow_workers: bool = True,
                        start_workers: bool = False):
    """A SparkSession with colorspark's executor environment; master and resources come from spark-submit.

    `tensorflow_workers` makes every Python worker daemon import TensorFlow at start
    (worker_startup/colorspark_worker_init.py); a job whose workers never use it saves that start-up time and memory.
    `start_workers` starts the executors' Python workers as soon as the SparkContext exists (`start_python_workers`),
    while the driver's JVM still sets up the SQL session.
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    given = SparkConf()  # what spark-submit / spark-defaults.conf already set: the user's choice wins
    settings = {key: value for key, value in DEFAULT_CONF.items() if not given.contains(key)}
    if given.get("spark.master", "local[*]").startswith("local"):
        settings.update({key: "127.0.0.1" for key in ("spark.driver.host", "spark.driver.bindAddress")
                         if not given.contains(key)})
    worker_init = "tensorflow" if tensorflow_workers else "plain"
    for key, value in {**QUIET_ENV, "COLORSPARK_WORKER_INIT": worker_init}.items():
        settings[f"spark.executorEnv.{key}"] = value
    for key, value in _storage_endpoints().items():
        if not given.contains(f"spark.executorEnv.{key}"):
            settings[f"spark.executorEnv.{key}"] = value
    settings.update(extra_conf or {})
    if start_workers:  # the context first, as the builder would make it, so that its workers can start
        context = SparkContext.getOrCreate(given.setAll(settings.items()).setAppName(app_name))
        _set_worker_threads(context)  # before: workers with other variables would be a pool, and a daemon, apart
        start_python_workers(context)
    spark = SparkSession.builder.appName(app_name).config(map=settings).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    _set_worker_threads(spark.sparkContext)
    return spark


def _set_worker_threads(context) -> None:
    """Thread counts for the Python workers' environment, from `spark.task.cpus`: read by TensorFlow in processes we
    do not control (Elephas workers); our own code also calls import_tensorflow."""
    cpus = context.getConf().get("spark.task.cpus", "1")
    context.environment.setdefault("TF_NUM_INTRAOP_THREADS", cpus)
    context.environment.setdefault("TF_NUM_INTEROP_THREADS", "1")
    context.environment.setdefault("OMP_NUM_THREADS", cpus)


def start_python_workers(context) -> None:
    """Start the executors' Python worker daemons now, in a job of one task per core from a background thread.

    A daemon imports TensorFlow when it starts (worker_startup/), 3.7 s on the benchmark machine, and Spark starts it
    only for the first Python task. In a cold colorize run the first one came after the SQL session's set-up (2.3 s
    of JVM work) and the driver's first steps; started with the context, the import overlaps them. The job has no
    rows and ends when the workers have started; `python_workers_starting` then prepares the same, reused workers
    for the job, once it has ended. A failure here only loses the head start."""
    tasks = context.parallelize(range(context.defaultParallelism), context.defaultParallelism)

    def submit():
        try:
            tasks.mapPartitions(functools.partial(prepared_worker, prepare=_started)).collect()
        except Exception as exc:  # e.g. the application stopped first (a usage error)
            logging.getLogger("colorspark").debug("starting the Python workers did not work: %s", exc)

    thread = threading.Thread(target=submit, name="colorspark-python-workers-start", daemon=True)
    _starting[context.applicationId] = thread
    thread.start()


_starting: dict[str, threading.Thread] = {}  # application id: the thread of its start_python_workers job


def _started() -> None:
    """(executors) Nothing to prepare: `start_python_workers` only needs a worker to exist."""


_prepared: set = set()  # (application, prepare function) pairs whose workers were started early


@contextlib.contextmanager
def python_workers_starting(spark, prepare: Callable[[], None]):
    """Start the executors' Python workers, and `prepare` each one, while the driver does its own first steps.

    A job's first tasks otherwise wait for a new worker daemon and for what each worker imports and derives before
    its first row (the job's task module, Pillow's plugins, h5py, the bin tables): 2-3 s of a cold preprocess run,
    during which the driver, listing the inputs and planning the job, had left the executors idle. One tiny task per
    core, in an RDD job of its own from a background thread (no query to plan), starts them while the driver works;
    Python workers are reused, so the job's own tasks find them ready, DataFrame passes included as long as
    `spark.sql.execution.pyspark.udf.simplifiedTraceback.enabled` is off (DEFAULT_CONF): Spark keeps one pool of
    workers per set of worker environment variables, and that setting adds one.

    The early job waits for `start_python_workers`' job, and a block that ends without error waits for the early
    job: otherwise an executor still busy starting its worker would get none of the next job's tasks, and a small
    job would run whole on the others. A pass inside the block queues behind the early job anyway. An error in the
    block (a missing input) cancels the early job instead, so that it is reported at once, even while a cluster has
    no executor yet. Done once per application and `prepare`, until it succeeds; Spark stops a Python worker that
    idles for about a minute, so a later run in the same application finds the workers warm only if it comes soon
    after.
    """
    context = spark.sparkContext
    function = getattr(prepare, "func", prepare)  # a functools.partial's function
    key = (context.applicationId, function.__module__, function.__qualname__)
    if key in _prepared:
        yield
        return
    group = f"colorspark-python-workers-{uuid.uuid4().hex[:8]}"
    starting, cancelled = _starting.get(context.applicationId), threading.Event()

    def submit():
        while starting is not None and starting.is_alive() and not cancelled.is_set():
            starting.join(0.1)  # an executor still starting its worker would get none of the tasks below
        if cancelled.is_set():
            return
        context.setJobGroup(group, "start the Python workers early")
        try:
            tasks = context.parallelize(range(context.defaultParallelism), context.defaultParallelism)
            tasks.mapPartitions(functools.partial(prepared_worker, prepare=prepare)).collect()
            _prepared.add(key)
        except Exception as exc:  # the job's own work reports real trouble; this pass only saves time
            logging.getLogger("colorspark").debug("starting the Python workers early did not work: %s", exc)

    thread = threading.Thread(target=submit, name="colorspark-python-workers", daemon=True)
    thread.start()
    try:
        yield
    except BaseException:
        cancelled.set()
        _cancel_and_join(context, group, thread)
        raise
    thread.join()


def _cancel_and_join(context, group: str, thread: threading.Thread) -> None:
    """Cancel the job group until the thread that runs its job has ended: the job may not even have been submitted
    yet. A context that is stopping cannot cancel, and ends the job itself. Never raises, so that the caller's own
    error is the one reported."""
    while thread.is_alive():
        try:
            context.cancelJobGroup(group)
        except Exception:
            thread.join(10)
            return
        thread.join(0.2)


def stop_spark(spark) -> None:
    """Stop the job process's Spark session without waiting out PySpark's accumulator server.

    `SparkContext.stop()` ends by shutting that server down, and its request handler polls its socket once a
    second, so every job paid up to a second at exit (0.95 s measured, bench/preprocess_e2e_bench.py). The server
    runs in a daemon thread: shutting it down in a daemon thread of its own lets a long-lived process release it and
    a job that is exiting exit at once.
    """
    context = spark.sparkContext
    server = getattr(context, "_accumulatorServer", None)
    context._accumulatorServer = None
    try:
        spark.stop()
    finally:
        if server is not None:
            threading.Thread(target=server.shutdown, name="colorspark-accumulator-stop", daemon=True).start()
