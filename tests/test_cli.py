"""The entry points answer --help without starting Spark, and name their options."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

OPTIONS = {
    "preprocess": ["--input", "--output", "--config", "--set", "--format"],
    "train": ["--data", "--model-dir", "--preset", "--rounds", "--workers", "--mode", "--resume", "--source"],
    "colorize": ["--input", "--output", "--model", "--lab-format", "--resume"],
}


@pytest.mark.parametrize("job", sorted(OPTIONS))
def test_help_lists_the_options(job):
    proc = subprocess.run([sys.executable, str(ROOT / "jobs" / f"{job}.py"), "--help"], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    for option in OPTIONS[job]:
        assert option in proc.stdout
    assert "SparkContext" not in proc.stdout + proc.stderr


def test_missing_required_option_is_a_usage_error():
    proc = subprocess.run([sys.executable, str(ROOT / "jobs" / "colorize.py"), "--input", "x"], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2 and "--output" in proc.stderr


def _job(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "jobs" / f"{name}.py"), *args], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("given", [["--conf", "spark.eventLog.enabled=true"], ["--conf=spark.ui.enabled=true"],
                                   ["--master", "local[2]"], ["--py-files", "x.zip"]])
def test_spark_submit_options_after_the_script_are_explained(given):
    """argparse would read `--conf` as an abbreviation of `--config`; the job says where the option belongs."""
    proc = _job("colorize", "--input", "in", "--output", "out", *given)
    assert proc.returncode == 2
    assert "put spark-submit options before the script" in proc.stderr
    assert "config file" not in proc.stderr


def test_conflicting_job_flags_are_a_usage_error_before_spark_starts():
    proc = _job("colorize", "--input", "in", "--output", "out", "--lab-format", "mat", "--lab-encoding", "float16")
    assert proc.returncode == 2 and "half precision" in proc.stderr and "SparkContext" not in proc.stderr


def test_abbreviations_are_not_expanded():
    proc = _job("train", "--data", "d", "--model-dir", "m", "--res")  # not --resume
    assert proc.returncode == 2 and "unrecognized arguments: --res" in proc.stderr


def test_an_internal_error_has_its_own_exit_code_and_one_clear_line(monkeypatch, capsys):
    from colorspark import cli

    stopped = []
    monkeypatch.setattr(cli, "_under_spark_submit", lambda: True)
    monkeypatch.setattr(cli, "_master_is_cluster", lambda: False)
    monkeypatch.setattr(cli, "build_spark_session", lambda *a, **k: "session")
    monkeypatch.setattr(cli, "stop_spark", stopped.append)
    args = cli.parser(cli.Job("colorize", "d", False)).parse_args([])

    def bug(spark, config, uris):
        raise KeyError("no such column")

    code = cli.main(cli.Job("colorize", "d", False), args, {}, [], bug)
    assert code == cli.EXIT_INTERNAL == 3 and stopped == ["session"]
    lines = capsys.readouterr().err.splitlines()
    assert "internal error" in lines[0] and "KeyError: 'no such column'" in lines[0]
    assert "Traceback (most recent call last)" in "\n".join(lines[1:])  # the traceback follows in the log


def test_a_job_failure_and_a_storage_error_keep_their_exit_codes(monkeypatch, tmp_path):
    from colorspark import cli, fs
    from colorspark.errors import JobError

    monkeypatch.setattr(cli, "_under_spark_submit", lambda: True)
    monkeypatch.setattr(cli, "_master_is_cluster", lambda: False)
    monkeypatch.setattr(cli, "build_spark_session", lambda *a, **k: "session")
    monkeypatch.setattr(cli, "stop_spark", lambda spark: None)
    job = cli.Job("colorize", "d", False)
    args = cli.parser(job).parse_args([])

    def fails(spark, config, uris):
        raise JobError("nothing readable")

    assert cli.main(job, args, {}, [], fails) == cli.EXIT_FAILED == 1
    bad = [cli.Location("--output", "foo://x/y", output=True)]
    assert cli.main(job, args, {}, bad, fails) == cli.EXIT_USAGE == 2
    assert cli.main(job, args, {}, [cli.Location("--output", str(tmp_path / "o"), output=True)],
                    lambda spark, config, uris: uris["--output"] == fs.to_uri(tmp_path / "o") or 1 / 0) == 0
