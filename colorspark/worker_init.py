"""Quiet TensorFlow start-up for Spark's Python worker daemons.

`./build.sh` installs this file into the environment's site-packages as `colorspark_worker_init.py`, with a `.pth`
line that imports it at interpreter start. It acts only where `COLORSPARK_WORKER_INIT=1` (colorspark sets it through
`spark.executorEnv`): there it imports TensorFlow once, in the worker daemon, with stderr pointed at /dev/null. The
CUDA-plugin messages that TensorFlow's native code prints at import time therefore never reach the job's console,
including in workers whose first TensorFlow import happens inside Elephas, and forked workers start with TensorFlow
already loaded. Nothing here may import colorspark: at daemon start it is not on the path yet.
"""

import os

if os.environ.get("COLORSPARK_WORKER_INIT") == "1":
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    _saved = os.dup(2)
    _null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(_null, 2)
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass
    finally:
        os.dup2(_saved, 2)
        os.close(_saved)
        os.close(_null)
