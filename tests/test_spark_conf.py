"""The spark-submit properties files in conf/: well-formed, sized for TensorFlow, and YARN kept equal to standalone.

conf/spark-yarn.conf cannot be run here (no YARN); conf/spark-standalone.conf is run by tests/test_cluster.py. These
checks keep the untested file consistent with the tested one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parent.parent / "conf"
FILES = {name: CONF / f"spark-{name}.conf" for name in ("local", "standalone", "yarn")}
THREADS = ("spark.executorEnv.TF_NUM_INTRAOP_THREADS", "spark.executorEnv.OMP_NUM_THREADS")
SHARED_WITH_YARN = ("spark.executor.cores", "spark.task.cpus", "spark.executor.memory",
                    "spark.executor.memoryOverhead", "spark.driver.memory", *THREADS,
                    "spark.executorEnv.TF_NUM_INTEROP_THREADS", "spark.python.worker.reuse",
                    "spark.sql.execution.arrow.maxRecordsPerBatch", "spark.ui.enabled",
                    "spark.scheduler.minRegisteredResourcesRatio")


def load(path: Path) -> dict[str, str]:
    """Parse like Spark does (java.util.Properties, values trimmed); refuse duplicate keys."""
    props: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^\s=:]+)\s*[=:\s]\s*(.*)$", line)
        assert match, f"{path.name}:{number}: not a 'key value' line: {raw!r}"
        key, value = match.group(1), match.group(2).strip()
        assert key not in props, f"{path.name}:{number}: {key} set twice"
        props[key] = value
    return props


def gib(size: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([kmgt]?)b?", size.lower()).groups()
    return int(number) * {"k": 2**-20, "m": 2**-10, "g": 1, "t": 1024, "": 2**-30}[unit]


@pytest.mark.parametrize("name", sorted(FILES))
def test_conf_is_sized_for_tensorflow(name):
    props = load(FILES[name])
    for key, value in props.items():
        assert "#" not in value or key.endswith("archives"), f"{name}: {key} has an end-of-line comment: {value!r}"
    cpus = int(props["spark.task.cpus"])
    assert all(int(props[key]) == cpus for key in THREADS), f"{name}: thread counts differ from spark.task.cpus"
    assert 1 <= int(props["spark.executorEnv.TF_NUM_INTEROP_THREADS"]) <= cpus
    assert props["spark.python.worker.reuse"] == "true"
    assert props["spark.ui.enabled"] == "false"
    assert 1 <= int(props["spark.sql.execution.arrow.maxRecordsPerBatch"]) <= 64
    assert "spark.executor.pyspark.memory" not in props  # an address-space cap breaks TensorFlow's import
    if name == "local":
        assert re.fullmatch(r"local\[\d+\]", props["spark.master"])
        assert int(props["spark.master"][6:-1]) % cpus == 0
        assert props["spark.driver.bindAddress"] == "127.0.0.1"
    else:
        assert int(props["spark.executor.cores"]) % cpus == 0
        assert gib(props["spark.executor.memoryOverhead"]) >= 2


def test_standalone_fits_the_test_workers():
    """tests/test_cluster.py starts workers with --cores 1 --memory 2g; an executor must fit in one."""
    props = load(FILES["standalone"])
    assert int(props["spark.executor.cores"]) <= 1
    assert gib(props["spark.executor.memory"]) <= 2
    assert "spark.master" not in props  # given on the command line: spark://HOST:PORT


def test_yarn_matches_standalone():
    yarn, standalone = load(FILES["yarn"]), load(FILES["standalone"])
    differ = {k: (standalone.get(k), yarn.get(k)) for k in SHARED_WITH_YARN if yarn.get(k) != standalone.get(k)}
    assert not differ, f"standalone vs yarn: {differ}"
    assert yarn["spark.master"] == "yarn"
    assert yarn["spark.yarn.dist.archives"] == "dist/colorspark-env.tar.gz#environment"
    assert yarn["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
    assert yarn["spark.executorEnv.PYSPARK_PYTHON"] == "./environment/bin/python"
    for key in THREADS + ("spark.executorEnv.TF_NUM_INTEROP_THREADS",):
        driver_key = key.replace("spark.executorEnv.", "spark.yarn.appMasterEnv.")
        assert yarn[driver_key] == yarn[key]
