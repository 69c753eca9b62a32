"""The worker start-up hook: frozen GC after the TensorFlow import, zip archives re-read only when they change."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HOOK = Path(__file__).resolve().parents[1] / "worker_startup" / "colorspark_worker_init.py"

PROBE = textwrap.dedent("""
    import gc, importlib, os, runpy, sys, time, zipfile
    runpy.run_path(sys.argv[1])
    with_tensorflow = os.environ["COLORSPARK_WORKER_INIT"] == "tensorflow"
    assert ("tensorflow" in sys.modules) == with_tensorflow
    assert gc.get_freeze_count() > (10000 if with_tensorflow else 0), gc.get_freeze_count()

    archive = os.path.join(sys.argv[2], "lib.zip")
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("first_mod.py", "VALUE = 1")
    sys.path.insert(0, archive)
    import first_mod
    importer = sys.path_importer_cache[archive]
    importlib.invalidate_caches()  # first sight of the archive: read and remembered
    listing = importer._files
    importlib.invalidate_caches()
    assert importer._files is listing, "unchanged archive was re-read"

    time.sleep(0.01)
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("second_mod.py", "VALUE = 2")
    importlib.invalidate_caches()
    import second_mod
    assert second_mod.VALUE == 2
    print("ok")
""")


@pytest.mark.parametrize("mode", ["tensorflow", "plain"])
def test_hook_freezes_gc_and_rereads_only_changed_archives(tmp_path, mode):
    """`tensorflow` (train, colorize) also pre-imports TensorFlow quietly; `plain` (preprocess) does not."""
    done = subprocess.run([sys.executable, "-c", PROBE, str(HOOK), str(tmp_path)],
                          env={"PATH": "/usr/bin:/bin", "COLORSPARK_WORKER_INIT": mode}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
    assert "cuda" not in done.stderr.lower()


def test_hook_does_nothing_outside_spark_workers(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import runpy, sys, gc; runpy.run_path(sys.argv[1]); "
                           "print('tensorflow' in sys.modules, gc.get_freeze_count())", str(HOOK)],
                          env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", "0"], done.stderr[-2000:]
