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


FREEZE_PROBE = textwrap.dedent("""
    import gc
    from colorspark.runtime import freeze_imports

    def tracked(obj):
        return any(o is obj for o in gc.get_objects())

    start = gc.get_freeze_count()
    freeze_imports()  # first task: nothing frozen yet, its imports are still to come
    first = gc.get_freeze_count()
    import h5py  # imported deep inside the first task's work
    assert tracked(vars(h5py))
    gc.collect()  # what the worker daemon runs after each task
    freeze_imports()  # second task
    second = gc.get_freeze_count()
    assert not tracked(vars(h5py)), "the first task's imports are still scanned after every task"
    freeze_imports()
    print(start == first == 0, second > 0, gc.get_freeze_count() == second)
""")


def _probe_output(code: str) -> list[str]:
    """Run a freeze probe in a fresh interpreter: freezing is process-wide and must not touch the test process."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=HOOK.parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def test_a_worker_freezes_the_first_tasks_imports_once_at_its_second_task():
    assert _probe_output(FREEZE_PROBE) == ["True", "True", "True"]


RELEASE_PROBE = textwrap.dedent("""
    import gc, weakref
    from colorspark.runtime import freeze_imports, release_frozen

    class Model:  # a cached model: full of reference cycles
        def __init__(self):
            self.me = self

    cache = {"model": Model()}
    gone = weakref.ref(cache["model"])
    freeze_imports()
    freeze_imports()  # the second task freezes the cached model with the imports
    cache.clear()
    gc.collect()
    kept = gone() is not None  # frozen: never collected
    release_frozen()  # what a worker does before it replaces its cached model
    gc.collect()  # the daemon's collect after the task
    freed = gone() is None
    thawed = gc.get_freeze_count() == 0
    freeze_imports()  # the next task
    print(kept, freed, thawed, gc.get_freeze_count() > 0)
""")


def test_a_worker_releases_the_freeze_so_a_replaced_model_is_collected():
    assert _probe_output(RELEASE_PROBE) == ["True", "True", "True", "True"]
