"""What the three spark-submit entry points share: options, config loading, location checks, exit codes.

Exit codes: 0 done (bad images are result rows, not failures); 1 the job failed as a whole (input missing, nothing
readable); 2 a usage error found before any work starts (bad option, config, location or credentials); 3 an
internal error, a bug in colorspark: one line on the console, the traceback in the log after it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from . import config as config_mod
from . import fs
from .command import SPARK_SUBMIT_OPTIONS
from .errors import JobError
from .session import build_spark_session, setup_logging, stop_spark

EXIT_FAILED = JobError.exit_code
EXIT_USAGE = fs.StorageError.exit_code
EXIT_INTERNAL = 3



@dataclass(frozen=True)
class Job:
    """What an entry point declares about itself."""
    name: str
    description: str
    tensorflow_workers: bool  # whether its Python workers import TensorFlow at start (worker_startup/)
    start_workers: bool = False  # whether its Python workers start with the SparkContext (session.start_python_workers)


@dataclass(frozen=True)
class Location:
    """A path option: its flag, its value, whether the job writes there, and whether the executors read or write
    there too (then a plain path is refused on a cluster: it would name each machine's own disk)."""
    option: str
    value: str | None
    output: bool = False
    shared: bool = False


class JobParser(argparse.ArgumentParser):
    """argparse without abbreviations (`--conf` must never be read as `--config`), and a clear word when a
    spark-submit option comes after the script."""

    def parse_args(self, args=None, namespace=None):
        given = sys.argv[1:] if args is None else list(args)
        for arg in given:
            if arg.split("=", 1)[0] in SPARK_SUBMIT_OPTIONS:
                self.error(f"{arg.split('=', 1)[0]} is a spark-submit option: put spark-submit options before the "
                           f"script, e.g. spark-submit {arg.split('=', 1)[0]} ... {self.prog.split()[-1]} --input ...")
        return super().parse_args(given, namespace)


def parser(job: Job) -> JobParser:
    p = JobParser(prog=f"spark-submit jobs/{job.name}.py", description=job.description, allow_abbrev=False,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE",
                   help="TOML config, a path or URI (default: built-in defaults, see conf/colorspark.toml)")
    p.add_argument("--set", dest="overrides", metavar="SECTION.KEY=VALUE", action="append", default=[],
                   help="override one config value, e.g. --set data.size=128 (repeatable)")
    return p


def main(job: Job, args: argparse.Namespace, flag_overrides: dict, locations: list[Location],
         body: Callable) -> int:
    """Load the config (file, then --set, then the job's own flags), check every location, start Spark, and run
    `body(spark, config, uris)`, where `uris` maps each location's option to its URI. Returns the exit code."""
    log = setup_logging(job.name)
    try:
        config = config_mod.load(args.config, args.overrides, flag_overrides)
        if not _under_spark_submit():
            log.error("jobs/%s.py runs under spark-submit: use `colorspark %s ...` (it prints the spark-submit "
                      "command it runs) or spark-submit ... jobs/%s.py ...", job.name, job.name, job.name)
            return EXIT_USAGE
        cluster = _master_is_cluster()
        uris = {loc.option: fs.check_location(loc.value, what=loc.option,
                                               cluster=cluster and (loc.output or loc.shared), output=loc.output)
                for loc in locations if loc.value is not None}
    except (config_mod.ConfigError, fs.StorageError) as exc:
        log.error("%s error: %s", "configuration" if isinstance(exc, config_mod.ConfigError) else "storage", exc)
        return EXIT_USAGE
    spark = build_spark_session(f"colorspark-{job.name}", tensorflow_workers=job.tensorflow_workers,
                                start_workers=job.start_workers)
    try:
        body(spark, config, uris)
        return 0
    except JobError as exc:
        log.error("failed: %s", exc)
        return exc.exit_code
    except Exception as exc:
        log.error("internal error (a bug in colorspark; the traceback follows): %s: %s", type(exc).__name__, exc)
        log.error("traceback:", exc_info=True)
        return EXIT_INTERNAL
    finally:
        stop_spark(spark)


def _under_spark_submit() -> bool:
    """Whether spark-submit started this driver (its Python runner hands the driver its JVM's gateway port): with
    plain `python jobs/<job>.py` the workers would find neither the package nor the job's settings."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _master_is_cluster() -> bool:
    """Whether spark-submit's master is a cluster (its executors do not share this machine's disk)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM, where its settings are
    return not SparkConf().get("spark.master", "local[*]").startswith("local")


def flags(**sections) -> dict:
    """{section: {key: value}} from keyword dicts, dropping options the user did not give."""
    return {s: {k: v for k, v in kv.items() if v is not None} for s, kv in sections.items()}
