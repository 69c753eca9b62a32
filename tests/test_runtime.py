"""Executor set-up: TensorFlow threads follow spark.task.cpus, and start-up noise stays out of the job's output."""

from __future__ import annotations

import subprocess
import textwrap

import pytest
from conftest import SPARK_SUBMIT, job_env

pytestmark = pytest.mark.spark

PROBE = textwrap.dedent("""
    import json, os
    from colorspark.session import build_spark_session

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

    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE "))
    for worker in json.loads(line[6:]):
        assert worker == {"env": str(cpus), "task_cpus": cpus, "intra": cpus}
    noise = ("cuda_dnn", "cuda_blas", "computation_placer", "oneDNN", "absl::InitializeLog")
    assert not any(n in proc.stdout + proc.stderr for n in noise), proc.stderr


WORKER_PROBE = textwrap.dedent("""
    import json, sys
    from colorspark.session import build_spark_session

    def probe(_):
        import gc, os, sys
        yield {"mode": os.environ.get("COLORSPARK_WORKER_INIT"), "tensorflow": "tensorflow" in sys.modules,
               "frozen": gc.get_freeze_count() > 0}

    spark = build_spark_session("probe", tensorflow_workers=sys.argv[1] == "yes")
    print("PROBE " + json.dumps(spark.sparkContext.parallelize(range(2), 2).mapPartitions(probe).collect()))
    spark.stop()
""")


@pytest.mark.parametrize("tensorflow_workers", [True, False])
def test_worker_daemons_preload_tensorflow_only_for_jobs_that_use_it(tensorflow_workers, py_files, tmp_path):
    """The installed start-up hook runs in the real worker daemons: GC frozen always, TensorFlow only when asked."""
    script = tmp_path / "probe.py"
    script.write_text(WORKER_PROBE)
    proc = subprocess.run([SPARK_SUBMIT, "--master", "local[2]", "--py-files", str(py_files), str(script),
                           "yes" if tensorflow_workers else "no"], capture_output=True, text=True, env=job_env(),
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import json

    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE "))
    mode = "tensorflow" if tensorflow_workers else "plain"
    assert json.loads(line[6:]) == [{"mode": mode, "tensorflow": tensorflow_workers, "frozen": True}] * 2


EARLY_PROBE = textwrap.dedent("""
    import json, os, sys
    from colorspark.session import build_spark_session, python_workers_starting, stop_spark

    LOG = sys.argv[1]

    def prepare():
        os.environ["PREPARED_BY"] = str(os.getpid())
        with open(LOG, "a") as log:
            log.write(f"{os.getpid()}\\n")

    def probe(batches):
        import pyarrow as pa
        for _ in batches:
            pass
        yield pa.RecordBatch.from_pylist([{"pid": os.getpid(), "prepared_by": os.environ.get("PREPARED_BY")}])

    def prepared():
        with open(LOG) as log:
            return len(log.read().split())

    spark = build_spark_session("probe", tensorflow_workers=False)
    with python_workers_starting(spark, prepare):
        rows = spark.range(0, 4, 1, 4).mapInArrow(probe, "pid long, prepared_by string").collect()
    print("PROBE " + json.dumps([[r.pid, r.prepared_by] for r in rows]))
    before = prepared()
    with python_workers_starting(spark, prepare):  # the same application and function: the workers are ready
        pass
    print("PREPARED " + json.dumps([before, prepared()]))

    # An error in the block cancels the early start instead of waiting for it (here it would take 10 minutes).
    def slow_prepare():
        import time
        time.sleep(600)

    try:
        with python_workers_starting(spark, slow_prepare):
            raise KeyError("input path does not exist")
    except KeyError:
        print("ACTIVE_JOBS " + json.dumps(spark.sparkContext.statusTracker().getActiveJobsIds()))
    stop_spark(spark)

    # A process that goes on after stop_spark can start Spark again, accumulators included.
    spark = build_spark_session("probe-again", tensorflow_workers=False)
    counter = spark.sparkContext.accumulator(0)
    spark.sparkContext.parallelize(range(10), 2).foreach(lambda x: counter.add(x))
    print("AGAIN " + json.dumps(counter.value))
    stop_spark(spark)
""")


def test_python_workers_started_early_run_the_jobs_dataframe_tasks(py_files, tmp_path):
    """The workers that python_workers_starting prepares (an RDD pass) are the ones that run the job's DataFrame
    pass afterwards: otherwise Spark would start a second set and the early start would only cost memory."""
    script = tmp_path / "probe.py"
    script.write_text(EARLY_PROBE)
    proc = subprocess.run([SPARK_SUBMIT, "--master", "local[2]", "--py-files", str(py_files), str(script),
                           str(tmp_path / "prepared.log")], capture_output=True, text=True, env=job_env(),
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import json

    def printed(tag):
        return json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith(tag + " "))[len(tag) + 1:])

    rows = printed("PROBE")
    assert len(rows) == 4
    assert all(prepared_by == str(pid) for pid, prepared_by in rows), rows
    before, after = printed("PREPARED")
    assert before == 2 and after == before  # one early task per core, and none the second time
    assert printed("ACTIVE_JOBS") == []
    assert printed("AGAIN") == 45
