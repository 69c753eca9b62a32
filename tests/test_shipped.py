"""colorspark.shipped: the shipped model is found, and summaries name it as such rather than by where it sits."""

from __future__ import annotations

import os
import subprocess
import sys

from colorspark import fs, shipped


def test_summaries_name_the_shipped_model_not_its_folder(tmp_path):
    folder = shipped.shipped_model_dir()
    assert shipped.describe_model(folder) == shipped.describe_model(fs.to_uri(folder)) == "shipped models/small"
    assert shipped.describe_model(str(tmp_path / "my-model")) == str(tmp_path / "my-model")


def test_from_the_zip_the_unpacked_model_is_still_named_shipped(py_files):
    """Outside a checkout (a YARN driver has only the zip) the model is unpacked into a temporary folder."""
    script = ("from colorspark import shipped; folder = shipped.shipped_model_dir(); "
              "print(folder); print(shipped.describe_model(folder))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd="/",
                          env={**os.environ, "PYTHONPATH": str(py_files)})
    assert proc.returncode == 0, proc.stderr
    folder, name = proc.stdout.strip().splitlines()
    assert "colorspark-shipped-" in folder and name == "shipped models/small"
