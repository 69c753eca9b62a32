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
