"""The `colorspark` command: run a job through spark-submit with this checkout's local defaults.

    colorspark preprocess|train|colorize [spark-submit options] [job options]
    colorspark demo [spark-submit options] [--output DIR]
    colorspark blend --tuned DIR --start DIR|shipped --weight W --output DIR

It adds what a local run needs and a user would otherwise type: the properties file conf/spark-local.conf, the
package zip dist/colorspark-<version>.zip (built by ./build.sh) and this environment's Python for the driver and
the workers. Options spark-submit knows (--master, --conf, --driver-memory, ...) go to spark-submit, wherever they
appear; everything else goes to the job. The exact command is printed before it runs, so that it can be taken to a
cluster as it is. `spark-submit jobs/<job>.py` stays the interface for clusters (docs/jobs.md, docs/clusters.md).

Only the standard library is imported here: assembling a command needs neither Spark nor TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import __version__

JOBS = ("preprocess", "train", "colorize")
USAGE = ("usage: colorspark {preprocess,train,colorize,demo,blend} [spark-submit options] [job options]\n"
         "  colorspark colorize --input PHOTOS --output OUT     colorize with the shipped model\n"
         "  colorspark colorize --help                          the job's options\n"
         "  colorspark demo [--output DIR]                      preprocess, train (tiny), colorize on sample photos\n"
         "  colorspark blend --help                             blend a fine-tuned model with its start (no Spark)")
# spark-submit's own options: the command hands them to spark-submit; after a job's script they are a user's mistake.
SPARK_SUBMIT_OPTIONS = frozenset((
    "--conf", "--master", "--deploy-mode", "--name", "--py-files", "--archives", "--files", "--jars", "--packages",
    "--repositories", "--exclude-packages", "--properties-file", "--driver-memory", "--driver-cores",
    "--driver-java-options", "--driver-library-path", "--driver-class-path", "--executor-memory", "--executor-cores",
    "--num-executors", "--total-executor-cores", "--queue", "--principal", "--keytab", "--supervise", "--class",
    "--verbose",
))
SPARK_SWITCHES = frozenset(("--supervise", "--verbose"))  # the ones without a value
EXIT_USAGE = 2


@dataclass(frozen=True)
class Checkout:
    """Where the project's files are: the folder holding colorspark/, jobs/, conf/ and dist/."""
    root: Path

    @property
    def zip(self) -> Path:
        return self.root / "dist" / f"colorspark-{__version__}.zip"

    def job(self, name: str) -> Path:
        return self.root / "jobs" / f"{name}.py"

    @property
    def properties(self) -> Path:
        return self.root / "conf" / "spark-local.conf"


def split_options(args: list[str]) -> tuple[list[str], list[str]]:
    """(spark-submit options, job options) of `args`, each in its given order; `--opt=value` and `--opt value`
    forms are both kept as given."""
    spark, job = [], []
    i = 0
    while i < len(args):
        name = args[i].split("=", 1)[0]
        if name in SPARK_SUBMIT_OPTIONS:
            takes_value = name not in SPARK_SWITCHES and "=" not in args[i]
            spark.extend(args[i:i + 1 + takes_value])
            i += 1 + takes_value
        else:
            job.append(args[i])
            i += 1
    return spark, job


def _option_value(spark: list[str], name: str) -> tuple[int, str] | None:
    """(index, value) of the last `name` option among `spark`, either form, or None."""
    found = None
    for i, arg in enumerate(spark):
        if arg == name and i + 1 < len(spark):
            found = (i, spark[i + 1])
        elif arg.startswith(name + "="):
            found = (i, arg.split("=", 1)[1])
    return found


def submit_command(checkout: Checkout, job: str, args: list[str], spark_submit: str) -> list[str]:
    """The spark-submit command line for `job` with `args` (spark-submit's and the job's options mixed): the user's
    Spark options first, then the local properties file unless one was given, then the zip ahead of any other
    --py-files."""
    spark, job_args = split_options(args)
    given_py_files = _option_value(spark, "--py-files")
    spark = [arg for i, arg in enumerate(spark) if not _is_py_files(spark, i)]
    if _option_value(spark, "--properties-file") is None:
        spark += ["--properties-file", str(checkout.properties)]
    py_files = str(checkout.zip) + ("," + given_py_files[1] if given_py_files else "")
    return [spark_submit, *spark, "--py-files", py_files, str(checkout.job(job)), *job_args]


def _is_py_files(spark: list[str], i: int) -> bool:
    """Whether spark[i] is a --py-files option or its value (merged into one option by `submit_command`)."""
    return spark[i].split("=", 1)[0] == "--py-files" or (i > 0 and spark[i - 1] == "--py-files")


def python_env(python: str) -> dict[str, str]:
    """The Python the driver and the workers run: this environment's, unless the user chose one."""
    return {key: os.environ.get(key, python) for key in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}


def shown(command: list[str], env: dict[str, str]) -> str:
    """The command as one shell line, the Python variables in front, to copy and run as it is."""
    return shlex.join([f"{key}={value}" for key, value in env.items()] + command)


def run(command: list[str], env: dict[str, str]) -> int:
    print(f"colorspark: running {shown(command, env)}", file=sys.stderr, flush=True)
    return subprocess.run(command, env={**os.environ, **env}).returncode


def demo(checkout: Checkout, args: list[str], spark_submit: str, python: str) -> int:
    """Preprocess the demo's colour photos, train the tiny preset one round, and colorize the demo's inputs with
    the shipped model (colorspark/demo.py), each step one printed spark-submit."""
    from .demo import demo_steps, make_demo_inputs

    spark, rest = split_options(args)
    parser = argparse.ArgumentParser(prog="colorspark demo", description=demo.__doc__)
    parser.add_argument("--output", default="demo-out", help="folder for the demo's inputs and outputs")
    out = Path(parser.parse_args(rest).output).resolve()
    make_demo_inputs(out / "inputs")
    env = python_env(python)
    steps = demo_steps(out)
    for number, (job, job_args, what) in enumerate(steps, 1):
        print(f"colorspark: demo step {number}/{len(steps)}, {job}: {what}", file=sys.stderr, flush=True)
        code = run(submit_command(checkout, job, [*spark, *job_args], spark_submit), env)
        if code:
            return code
    print(f"colorspark: demo finished: training samples in {out / 'data'}, the tiny model in {out / 'model-tiny'} "
          f"(history.png), colorized photos in {out / 'colorized'}; the report: {out / 'colorized' / 'report.html'}",
          file=sys.stderr)
    return 0


def job_help(checkout: Checkout, job: str, python: str) -> int:
    """The job's own --help, without starting spark-submit's JVM for it."""
    return subprocess.run([python, str(checkout.job(job)), "--help"]).returncode


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    checkout = Checkout(root or Path(__file__).resolve().parent.parent)
    python = sys.executable
    spark_submit = str(Path(python).parent / "spark-submit")
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else EXIT_USAGE
    job, rest = args[0], args[1:]
    if job == "blend":
        from .blend import main as blend

        return blend(rest)
    if job not in (*JOBS, "demo"):
        print(f"colorspark: unknown job {job!r}\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    if job != "demo" and ("-h" in rest or "--help" in rest):
        return job_help(checkout, job, python)
    if not checkout.zip.exists():
        print(f"colorspark: {checkout.zip} is missing: run ./build.sh in {checkout.root} first", file=sys.stderr)
        return EXIT_USAGE
    if job == "demo":
        return demo(checkout, rest, spark_submit, python)
    return run(submit_command(checkout, job, rest, spark_submit), python_env(python))


if __name__ == "__main__":
    sys.exit(main())
