"""The report in a real browser: headless Chromium (Debian's `chromium`) opens a generated report with a small test
script added, which scrolls to every thumbnail, waits for it to load, sorts the cards and writes what it saw into
the page; `--dump-dom` hands the page back. Console messages come on Chromium's stderr.

Chromium is installed with apt-get when it is missing and this runs as root or may sudo without a password (so that
.ci/run, which runs ./build.sh test on a clean machine, gets it); otherwise the tests are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from imagefactory import colour_photo
from test_report import _error_row, _ok_row, _run_summary, _skipped_row

from colorspark.report import render_report
from colorspark.thumbnails import make_thumbnail

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,900",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=30000", "--dump-dom"]

# Runs before the report's own script, so that an error in it is caught too.
CATCH_ERRORS = """<script>window.__errors = [];
window.addEventListener("error", (e) => window.__errors.push(String(e.message)));</script>"""

# Runs after it: what a reader would do, recorded into the page.
HARNESS = """<script>(async () => {
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const order = () => Array.from(document.querySelectorAll(".gallery .card"), (c) => c.getAttribute("data-name"));
  const out = {initial: order()};
  const key = document.getElementById("sort-key");
  key.value = "psnr";
  key.dispatchEvent(new Event("change"));
  out.psnr_first_click = order();
  document.getElementById("sort-dir").click();
  out.psnr_second_click = order();
  const images = Array.from(document.querySelectorAll(".gallery img"));
  for (const img of images) {
    img.scrollIntoView();
    for (let i = 0; i < 200 && !(img.complete && img.naturalWidth > 0); i++) await sleep(25);
  }
  out.images = images.map((img) => ({alt: img.alt, complete: img.complete, width: img.naturalWidth}));
  out.errors = window.__errors;
  const pre = document.createElement("pre");
  pre.id = "harness-result";
  pre.textContent = JSON.stringify(out);
  document.body.append(pre);
})();</script>"""


def _apt_install_chromium() -> str | None:
    """Why Chromium could not be installed, or None once it is."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    as_root = [] if os.geteuid() == 0 else ["sudo", "-n"]  # sudo only where it asks no password
    if as_root and (shutil.which("sudo") is None or subprocess.run(["sudo", "-n", "true"],
                                                                   capture_output=True).returncode):
        return "installing it needs root (sudo apt-get install chromium)"
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        proc = subprocess.run([*as_root, *command], capture_output=True, text=True, timeout=900,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if proc.returncode:
            return f"`{' '.join(command)}` failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        why = _apt_install_chromium()
        found = shutil.which("chromium")
        if found is None:
            pytest.skip(f"headless Chromium is not installed and could not be: {why}")
    return found


def _open(chromium: str, page: str, tmp_path: Path) -> tuple[dict, list[str]]:
    """(what the harness recorded, Chromium's console lines) for `page` opened from a file."""
    page = page.replace("<head>", "<head>" + CATCH_ERRORS, 1).replace("</body>", HARNESS + "</body>", 1)
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    profile = tmp_path / "profile"
    proc = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", path.as_uri()], capture_output=True,
                          text=True, timeout=180)
    found = re.search(r'<pre id="harness-result">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the test script did not finish; Chromium said: {proc.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                        .replace("&amp;", "&"))
    return result, [line for line in proc.stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


def _rows() -> list[dict]:
    """Twenty-four colorized photos with thumbnails and distinct PSNRs (more than one screen of cards), a failure
    and a skip."""
    rows = []
    for i in range(24):
        photo = colour_photo(96 + 8 * (i % 5), 64 + 8 * (i % 3), seed=i)
        rows.append(_ok_row(relative_path=f"photos/p{i:02d}.jpg", psnr=20.0 + (i * 7) % 24,
                            thumb_input=make_thumbnail(photo.mean(axis=2).astype(np.uint8)),
                            thumb_color=make_thumbnail(photo), thumb_truth=make_thumbnail(photo[:, ::-1].copy())))
    return [*rows, _error_row(), _skipped_row()]


def test_the_report_loads_every_thumbnail_sorts_and_logs_no_error(chromium, tmp_path):
    rows = _rows()
    result, console = _open(chromium, render_report(rows, _run_summary(), total_rows=len(rows)), tmp_path)
    assert console == [] and result["errors"] == []
    assert len(result["images"]) == 24 * 3
    assert all(image["complete"] and image["width"] > 0 for image in result["images"]), result["images"]
    by_psnr = sorted((row for row in rows if row["status"] == "ok"), key=lambda row: row["psnr"])
    names = [row["relative_path"] for row in by_psnr]
    assert [name for name in result["initial"] if name.startswith("photos/")] == sorted(names)  # by path
    assert result["psnr_first_click"][:24] == names[::-1]  # a score sorts highest first
    assert result["psnr_second_click"][:24] == names
    assert set(result["psnr_second_click"][24:]) == {rows[24]["relative_path"], rows[25]["relative_path"]}


def test_the_browser_check_sees_a_script_error(chromium, tmp_path):
    """The check above could pass by seeing nothing: a page whose script fails must fail it."""
    page = render_report(_rows()[:2], _run_summary(), total_rows=2).replace(
        "<script>", "<script>document.querySelector('.no-such-thing').click();", 1)
    result, console = _open(chromium, page, tmp_path)
    assert any("null" in error for error in result["errors"])
    assert any("Uncaught" in line for line in console)
