"""Start-up of Spark's Python worker daemons: quiet TensorFlow, and no fixed cost per task.

Not part of the colorspark package: it runs at interpreter start, before any --py-files archive is on the path, so
it lives in its own folder. `./build.sh` copies it into the environment's site-packages, with a `.pth` line that
imports it at interpreter start (and so into the packed environment too). It acts only where
`COLORSPARK_WORKER_INIT` is `tensorflow` or `plain` (colorspark sets it through `spark.executorEnv`: `plain` for
preprocessing, which never uses TensorFlow):

* with `tensorflow`, it imports TensorFlow once, in the worker daemon, with stderr pointed at /dev/null. The
  CUDA-plugin messages that TensorFlow's native code prints at import time never reach the job's console, and forked
  workers start with TensorFlow already loaded;
* it freezes the garbage collector's view of everything imported so far. The daemon's workers run `gc.collect()`
  after every task; with TensorFlow loaded that scanned ~335k objects, about 150 ms per task;
* PySpark's worker calls `importlib.invalidate_caches()` before every task, which on Python 3.11 makes each
  zipimporter re-read its archive's directory (~150 ms per task with pyspark.zip and the --py-files zip). Here an
  archive is re-read only when its mtime or size changed, which keeps the point of the call: new --py-files are seen.

bench/preprocess_bench.py measured the per-task overhead at ~310 ms before and ~12 ms after. Nothing here may import
colorspark: at daemon start it is not on the path yet.
"""

import os

_MODE = os.environ.get("COLORSPARK_WORKER_INIT")

if _MODE == "tensorflow":
    import contextlib
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    _saved = os.dup(2)
    _null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(_null, 2)
        with contextlib.suppress(ImportError):
            import tensorflow  # noqa: F401
    finally:
        os.dup2(_saved, 2)
        os.close(_saved)
        os.close(_null)

if _MODE in ("tensorflow", "plain"):
    import gc
    import zipimport

    gc.freeze()

    _reread_archive = zipimport.zipimporter.invalidate_caches
    _archive_stamps: dict = {}

    def _invalidate_if_changed(self):
        """zipimporter.invalidate_caches, skipped while the archive file is unchanged."""
        try:
            st = os.stat(self.archive)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp is None or _archive_stamps.get(self.archive) != stamp:
            _archive_stamps[self.archive] = stamp
            _reread_archive(self)

    zipimport.zipimporter.invalidate_caches = _invalidate_if_changed
