"""(b) of bench/preprocess_bench.py: colorspark's `process_image` over every input file in order, in one plain
process on one core.

bench/preprocess_driver.py starts it between its Spark runs, while the JVM and the Python workers idle, so that
each warm Spark run is compared with plain runs of the same minutes. On this shared machine the same work can take up
to a fifth more or less CPU time from one minute to the next, more than the gap the ratio is meant to show. One BLAS
thread, as Spark's Python workers get (conf/spark-local.conf). Prints its figures as one JSON object.
Not meant to be run by hand; see `bench/preprocess_bench.py --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def one_time_init() -> float:
    """What every fresh Spark Python worker is given before its first task (`prepare_worker`: the imports, Pillow's
    plugins, the bin centres and the nearest-bin table). Done before the timed loop, so that (b) measures the steady
    per-image cost."""
    from colorspark.preprocess_tasks import prepare_worker

    t0 = time.perf_counter()
    prepare_worker()
    return time.perf_counter() - t0


def output_key(path: Path, root: Path) -> str:
    """The file's key as the job makes it (its crops' seed and split hash come from it)."""
    from colorspark.paths import relative_output_path

    return relative_output_path("file:" + str(path), str(root))


def sequential(files: list[Path], root: Path, config: dict) -> tuple[float, int]:
    """process_image on every file, in order; returns (seconds, files that failed to decode)."""
    from colorspark.decode import DecodeError
    from colorspark.preprocess_tasks import process_image

    errors = 0
    keys = [output_key(f, root) for f in files]
    t0 = time.perf_counter()
    for f, key in zip(files, keys):
        try:
            process_image(f.read_bytes(), key, config)
        except DecodeError:
            errors += 1
    return time.perf_counter() - t0, errors


def main():
    p = argparse.ArgumentParser(allow_abbrev=False)
    p.add_argument("--files", required=True, help="a text file with the input paths, one per line")
    p.add_argument("--root", required=True, help="the input root the output keys are relative to")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    from colorspark import config as config_mod

    config = config_mod.load(None, args.overrides)
    files = [Path(line) for line in Path(args.files).read_text().splitlines() if line]
    init_s = one_time_init()
    cpu0 = time.process_time()
    seconds, errors = sequential(files, Path(args.root), config)
    print(json.dumps({"seconds": seconds, "cpu_s": time.process_time() - cpu0, "images": len(files) - errors,
                      "errors": errors, "init_s": init_s, "pid": os.getpid()}))


if __name__ == "__main__":
    main()
