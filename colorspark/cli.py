"""What the three spark-submit entry points share: common options, config loading, exit codes."""

from __future__ import annotations

import argparse
from typing import Callable

from . import config as config_mod
from .runtime import JobError, build_spark_session, setup_logging

EXIT_CONFIG = 2
EXIT_FAILED = 1


def parser(job: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"spark-submit jobs/{job}.py", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="TOML config (default: built-in defaults, see conf/colorspark.toml)")
    p.add_argument("--set", dest="overrides", metavar="SECTION.KEY=VALUE", action="append", default=[],
                   help="override one config value, e.g. --set data.size=128 (repeatable)")
    return p


def main(job: str, args: argparse.Namespace, flag_overrides: dict, body: Callable) -> int:
    """Load config (file, then --set, then the job's own flags), start Spark, run `body(spark, config)`.

    Returns the process exit code: 0 on success, 2 for a configuration error, 1 when the job failed as a whole.
    """
    log = setup_logging(job)
    try:
        config = config_mod.load(args.config, args.overrides)
        config = config_mod.merge(config, {s: v for s, v in flag_overrides.items() if v}, "command line")
    except config_mod.ConfigError as exc:
        log.error("configuration error: %s", exc)
        return EXIT_CONFIG
    spark = build_spark_session(f"colorspark-{job}", tensorflow_workers=job != "preprocess")
    try:
        body(spark, config)
        return 0
    except JobError as exc:
        log.error("failed: %s", exc)
        return EXIT_FAILED
    finally:
        spark.stop()


def flags(**sections) -> dict:
    """{section: {key: value}} from keyword dicts, dropping options the user did not give."""
    return {s: {k: v for k, v in kv.items() if v is not None} for s, kv in sections.items()}
