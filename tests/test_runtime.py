"""Executor set-up: TensorFlow threads follow spark.task.cpus, and start-up noise stays out of the job's output."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from conftest import SPARK_SUBMIT, job_env

pytestmark = pytest.mark.spark

PROBE = textwrap.dedent("""
    import json, os
    from colorspark.runtime import build_spark_session

    def probe(_):
        from colorspark.runtime import import_tensorflow, task_cpus
        tf = import_tensorflow(task_cpus())
        yield {"env": os.environ.get("TF_NUM_INTRAOP_THREADS"), "task_cpus": task_cpus(),
               "intra": tf.config.threading.get_intra_op_parallelism_threads()}

    spark = build_spark_session("probe")
    print("PROBE " + json.dumps(spark.sparkContext.parallelize(range(2), 2).mapPartitions(probe).collect()))
    spark.stop()
""")


@pytest.mark.parametrize("cpus", [1, 2])
def test_tensorflow_threads_follow_task_cpus(cpus, py_files, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    proc = subprocess.run([SPARK_SUBMIT, "--master", "local[2]", "--conf", f"spark.task.cpus={cpus}",
                           "--py-files", str(py_files), str(script)], capture_output=True, text=True,
                          env=job_env(), timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import json

    line = next(l for l in proc.stdout.splitlines() if l.startswith("PROBE "))
    for worker in json.loads(line[6:]):
        assert worker == {"env": str(cpus), "task_cpus": cpus, "intra": cpus}
    noise = ("cuda_dnn", "cuda_blas", "computation_placer", "oneDNN", "absl::InitializeLog")
    assert not any(n in proc.stdout + proc.stderr for n in noise), proc.stderr
