"""The `colorspark` command (colorspark/command.py, installed by ./build.sh): the spark-submit line it assembles, the
line it prints, and one real run; and `python jobs/<job>.py` from a checkout."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, job_env
from imagefactory import colour_photo, write_image

from colorspark import command
from colorspark.command import Checkout, split_options, submit_command

CHECKOUT = Checkout(Path("/co"))
ZIP = str(CHECKOUT.zip)


def test_spark_options_go_to_spark_submit_and_the_rest_to_the_job_in_order():
    spark, job = split_options(["--input", "in", "--master", "yarn", "--conf=spark.a=1", "--set", "data.size=64",
                                "--verbose", "--conf", "spark.b=2", "--output", "out"])
    assert spark == ["--master", "yarn", "--conf=spark.a=1", "--verbose", "--conf", "spark.b=2"]
    assert job == ["--input", "in", "--set", "data.size=64", "--output", "out"]


def test_the_command_adds_the_local_defaults():
    cmd = submit_command(CHECKOUT, "colorize", ["--input", "in", "--output", "out"], "spark-submit")
    assert cmd == ["spark-submit", "--properties-file", "/co/conf/spark-local.conf", "--py-files", ZIP,
                   "/co/jobs/colorize.py", "--input", "in", "--output", "out"]


def test_the_users_spark_options_win_and_py_files_are_merged():
    cmd = submit_command(CHECKOUT, "train", ["--data", "d", "--master", "spark://h:7077", "--properties-file",
                                             "my.conf", "--py-files", "extra.zip", "--model-dir", "m"], "ss")
    assert cmd == ["ss", "--master", "spark://h:7077", "--properties-file", "my.conf", "--py-files",
                   f"{ZIP},extra.zip", "/co/jobs/train.py", "--data", "d", "--model-dir", "m"]
    cmd = submit_command(CHECKOUT, "preprocess", ["--py-files=a.zip", "--properties-file=p.conf"], "ss")
    assert cmd == ["ss", "--properties-file=p.conf", "--py-files", f"{ZIP},a.zip", "/co/jobs/preprocess.py"]


def test_it_prints_the_exact_command_it_runs(monkeypatch, capsys, tmp_path):
    (tmp_path / "dist").mkdir()
    Checkout(tmp_path).zip.write_bytes(b"zip")
    ran = []
    monkeypatch.setattr(command.subprocess, "run", lambda cmd, env: ran.append((cmd, env)) or
                        subprocess.CompletedProcess(cmd, 0))
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    monkeypatch.delenv("PYSPARK_DRIVER_PYTHON", raising=False)
    assert command.main(["colorize", "--master", "local[1]", "--input", "a b", "--output", "o"], tmp_path) == 0
    cmd, env = ran[0]
    assert cmd[1:3] == ["--master", "local[1]"] and cmd[-4:] == ["--input", "a b", "--output", "o"]
    assert env["PYSPARK_PYTHON"] == env["PYSPARK_DRIVER_PYTHON"] == sys.executable
    printed = capsys.readouterr().err.strip()
    assert printed == "colorspark: running " + shlex.join(
        [f"PYSPARK_PYTHON={sys.executable}", f"PYSPARK_DRIVER_PYTHON={sys.executable}", *cmd])


def test_usage_errors(tmp_path, capsys):
    assert command.main(["paint"], ROOT) == command.EXIT_USAGE
    assert "unknown job 'paint'" in capsys.readouterr().err
    assert command.main(["colorize", "--input", "x"], tmp_path) == command.EXIT_USAGE
    assert "run ./build.sh" in capsys.readouterr().err
    assert command.main(["--help"], ROOT) == 0 and "colorspark colorize --input" in capsys.readouterr().out


def _installed_command(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`colorspark ARGS` as build.sh installs it into .venv/bin (build.sh runs in seconds when set up)."""
    subprocess.run(["bash", str(ROOT / "build.sh")], check=True, capture_output=True)
    return subprocess.run([str(Path(sys.executable).parent / "colorspark"), *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


def test_build_installs_the_command_and_job_help_needs_no_spark(tmp_path):
    proc = _installed_command("colorize", "--help", cwd=ROOT / "tests")  # finds the checkout above the folder
    assert proc.returncode == 0, proc.stderr
    assert "--input" in proc.stdout and "SparkContext" not in proc.stderr


@pytest.mark.parametrize("job", ["preprocess", "train", "colorize"])
def test_python_jobs_help_works_from_the_project_root(job):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, f"jobs/{job}.py", "--help"], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--config" in proc.stdout


def test_a_job_run_without_spark_submit_says_in_one_line_what_to_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_GATEWAY_PORT")}
    proc = subprocess.run([sys.executable, "jobs/colorize.py", "--input", "in", "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "use `colorspark colorize ...`" in lines[0] and "SparkContext" not in proc.stderr


@pytest.mark.spark
def test_a_real_run_through_the_command(tmp_path, py_files):
    for seed in range(2):
        write_image(tmp_path / "in" / f"p{seed}.png", colour_photo(40, 32, seed))
    proc = _installed_command("colorize", "--master", "local[1]", "--driver-memory", "1g", "--input",
                              str(tmp_path / "in"), "--output", str(tmp_path / "out"), cwd=ROOT, env=job_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = next(line for line in proc.stderr.splitlines() if line.startswith("colorspark: running "))
    assert " --master 'local[1]' --driver-memory 1g --properties-file " in printed
    assert f"--py-files {py_files} {ROOT / 'jobs' / 'colorize.py'} --input" in printed
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["ok"] == 2


def test_blend_runs_in_this_process_without_spark_submit(monkeypatch, tmp_path):
    import colorspark.blend

    seen = []
    monkeypatch.setattr(colorspark.blend, "main", lambda argv: seen.append(argv) or 0)
    assert command.main(["blend", "--weight", "0.5"], root=tmp_path) == 0  # no dist/ zip needed
    assert seen == [["--weight", "0.5"]]
