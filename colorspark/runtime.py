"""Process set-up shared by the driver and the executors: TensorFlow imported quietly, with thread counts that fit.

TensorFlow's CUDA plugin registration prints to the process's stderr file descriptor at import time, before any
Python logging setting applies, so the import is done with fd 2 pointed at /dev/null. Each Python worker sizes
TensorFlow's thread pools from the cores Spark gave its task (`spark.task.cpus`), so two workers on two cores do not
each start two-core pools and fight over the CPU.
"""

from __future__ import annotations

import contextlib
import os
import sys

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",  # oneDNN's startup notice, and its results differ slightly run to run
    "KERAS_BACKEND": "tensorflow",
}


@contextlib.contextmanager
def stderr_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(threads: int | None = None):
    """Import TensorFlow without its start-up noise and, once per process, fix its thread pools to `threads`."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if "tensorflow" not in sys.modules:
        with stderr_silenced():
            import tensorflow  # noqa: F401
    import tensorflow as tf
    if threads:
        with contextlib.suppress(RuntimeError):  # pools already created in this process: keep them
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1 if threads <= 2 else 2)
    return tf


def task_cpus(default: int = 1) -> int:
    """Cores Spark assigned to the running task; `default` outside a task."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:
        return default
    try:
        return max(1, int(ctx.cpus()))
    except Exception:  # older APIs / local mode quirks: fall back to the config value
        return max(1, int(ctx.getLocalProperty("spark.task.cpus") or default))


_tasks_started = 0


def freeze_imports() -> None:
    """(executors) Call at the start of every task. At the start of a Python worker's second task, move every object
    alive then out of the garbage collector's view.

    Spark's Python workers run `gc.collect()` after every task. The worker start-up hook freezes what the daemon
    imported, but a task imports much more the first time it runs (colorspark from the --py-files archive, pyarrow,
    h5py, Pillow's plugins, SciPy, scikit-image), some of it only deep inside the work. Scanning those objects
    after every task cost ~25 ms (bench/preprocess_bench.py). By the second task's start everything the work needs
    is imported and the daemon has just collected the first task's garbage, so what is alive is what lives as long
    as the process; freezing it keeps nothing collectable.
    """
    global _tasks_started
    _tasks_started += 1
    if _tasks_started == 2:
        import gc

        gc.freeze()


def prepared_worker(rows, prepare):
    """(executors) The task that starts a Python worker early (`session.python_workers_starting`): runs the job's
    `prepare`; returns no rows. It does not count for `freeze_imports`: the job's first task still imports and
    allocates what `prepare` does not, and the freeze waits for its second."""
    prepare()
    for _ in rows:  # a worker whose task left input unread is not reused
        pass
    return iter(())


def release_frozen() -> None:
    """(executors) Before dropping something long-lived that the freeze may hold, such as a worker's cached model:
    frozen objects are never collected, and a Keras model is full of reference cycles. Everything goes back into the
    collector's view, the daemon's collect after this task frees what was dropped, and the next task freezes again."""
    global _tasks_started
    import gc

    gc.unfreeze()
    _tasks_started = min(_tasks_started, 1)
