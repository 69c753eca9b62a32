"""Progress lines (colorspark/progress.py): their text, the driver's reporting thread, a training task's own line,
and a real colorize run that asks for them."""

from __future__ import annotations

import logging
import re
import time

import pytest
from imagefactory import colour_photo, write_image

from colorspark import progress


def test_progress_line_gives_done_total_rate_and_eta():
    assert progress.progress_line("images", 250, 1000, 10.0) == "250/1,000 images (25 %), 25.0 images/s, ETA 30s"
    assert progress.progress_line("images", 0, 1000, 10.0) == "0/1,000 images (0 %), 0.0 images/s, ETA not known yet"
    assert progress.progress_line("crops", 5, None, 2.0) == "5 crops, 2.5 crops/s"
    assert progress.duration(3725) == "1h02m" and progress.duration(125) == "2m05s"


def test_reporting_logs_while_the_block_runs_and_stops_after_it(caplog):
    count = {"done": 0}
    with caplog.at_level(logging.INFO, logger="colorspark.progress"), \
            progress.reporting("images", 10, lambda: count["done"], 0.05):
        for _ in range(5):
            count["done"] += 2
            time.sleep(0.06)
    lines = [r.getMessage() for r in caplog.records if r.name == "colorspark.progress"]
    assert lines and all(re.fullmatch(r"progress: \d+/10 images \(\d+ %\), [\d.]+ images/s, ETA .+", line)
                         for line in lines)
    after = len(caplog.records)
    time.sleep(0.15)
    assert len(caplog.records) == after  # the thread ended with the block


def test_reporting_is_off_at_zero(caplog):
    with caplog.at_level(logging.INFO, logger="colorspark.progress"), progress.reporting("images", 4, lambda: 1, 0):
        time.sleep(0.05)
    assert not caplog.records


def test_a_task_prints_its_own_progress_at_most_every_interval(capsys, monkeypatch):
    clock = iter([0.0, 0.5, 1.2, 1.5, 2.6])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    ticker = progress.TaskProgress("crops", 100, 1.0, "train worker 1")
    for done in (10, 30, 40, 60):
        ticker.update(done)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": progress: ")[1] for line in lines] == [
        "30/100 crops (30 %), 25.0 crops/s, ETA 3s", "60/100 crops (60 %), 23.1 crops/s, ETA 2s"]
    assert all("colorspark train worker 1" in line for line in lines)


@pytest.mark.spark
def test_colorize_logs_progress_when_asked(tmp_path, run_job):
    for seed in range(12):
        write_image(tmp_path / "in" / f"p{seed:02d}.png", colour_photo(48, 40, seed))
    proc = run_job("colorize", "--input", tmp_path / "in", "--output", tmp_path / "out", "--set",
                   "log.progress_seconds=0.2", "--set", "colorize.partitions=6")
    assert proc.returncode == 0, proc.log[-3000:]
    lines = [line for line in proc.log.splitlines() if "colorspark colorize: progress: " in line]
    assert lines, proc.log[-3000:]
    counts = [int(re.search(r"progress: (\d+)/12 images", line).group(1)) for line in lines]
    assert counts == sorted(counts) and counts[-1] <= 12


@pytest.mark.spark
def test_preprocess_logs_progress_when_asked(tmp_path, run_job):
    for seed in range(12):
        write_image(tmp_path / "in" / f"p{seed:02d}.png", colour_photo(72, 64, seed))
    proc = run_job("preprocess", "--input", tmp_path / "in", "--output", tmp_path / "out", "--set",
                   "log.progress_seconds=0.2", "--set", "data.partitions=6")
    assert proc.returncode == 0, proc.log[-3000:]
    counts = [int(found.group(1)) for found in re.finditer(r"colorspark preprocess: progress: (\d+)/12 images",
                                                          proc.log)]
    assert counts and counts == sorted(counts), proc.log[-3000:]
