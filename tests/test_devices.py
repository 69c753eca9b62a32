"""colorspark.devices without Spark: a fake task context hands out GPU addresses, a fake TensorFlow has GPUs.

The fake TensorFlow behaves like the real one where it matters: visible devices and memory growth can be set only
until the devices are initialised. One test uses the real TensorFlow of this (GPU-less) machine.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from colorspark import devices


class FakeGpu:
    def __init__(self, index: int):
        self.name = f"/physical_device:GPU:{index}"
        self.device_type = "GPU"

    def __repr__(self) -> str:
        return self.name


class FakeConfig:
    """tf.config with `count` GPUs; `initialised` makes it refuse changes, as TensorFlow does once devices exist."""

    def __init__(self, count: int, initialised: bool = False):
        self.gpus = [FakeGpu(i) for i in range(count)]
        self.visible = list(self.gpus)
        self.growth: list[str] = []
        self.initialised = initialised
        self.set_calls = 0
        self.experimental = SimpleNamespace(set_memory_growth=self._set_memory_growth)

    def list_physical_devices(self, kind: str):
        assert kind == "GPU"
        return list(self.gpus)

    def set_visible_devices(self, chosen, kind: str):
        assert kind == "GPU"
        self.set_calls += 1
        if self.initialised:
            raise RuntimeError("Visible devices cannot be modified after being initialized")
        self.visible = list(chosen)

    def get_visible_devices(self, kind: str):
        return list(self.visible)

    def _set_memory_growth(self, gpu, enable: bool):
        if self.initialised:
            raise RuntimeError("Physical devices cannot be modified after being initialized")
        assert enable
        self.growth.append(gpu.name)


class FakeTaskContext:
    """TaskContext.get() -> a task holding `current` GPU addresses (None: not in a task)."""
    current: list[str] | None = None

    @classmethod
    def get(cls):
        if cls.current is None:
            return None
        gpu = {"gpu": SimpleNamespace(name="gpu", addresses=list(cls.current))} if cls.current else {}
        return SimpleNamespace(resources=lambda: gpu, cpus=lambda: 1)


@pytest.fixture
def fresh_process(monkeypatch):
    """A Python worker that has not pinned TensorFlow yet, with a fake task context; returns a TensorFlow maker."""
    monkeypatch.setattr(devices, "_pinned", None)
    monkeypatch.setattr(devices, "_warned", set())
    monkeypatch.setattr(devices, "TaskContext", FakeTaskContext)
    monkeypatch.setattr(FakeTaskContext, "current", None)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)

    def with_tensorflow(gpus: int, initialised: bool = False) -> FakeConfig:
        config = FakeConfig(gpus, initialised)
        monkeypatch.setattr(devices, "import_tensorflow", lambda threads=None: SimpleNamespace(config=config))
        return config

    return with_tensorflow


def run_task(addresses: list[str]) -> str | None:
    FakeTaskContext.current = addresses
    return devices.task_device()


def test_a_task_sees_only_its_own_gpu_with_memory_growth(fresh_process):
    tf = fresh_process(gpus=4)
    assert run_task(["2"]) == "gpu:2"
    assert [g.name for g in tf.visible] == ["/physical_device:GPU:2"]
    assert tf.growth == ["/physical_device:GPU:2"]
    assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # CUDA ordinals numbered like nvidia-smi's indices


def test_several_addresses_are_all_visible_and_the_first_is_used(fresh_process):
    tf = fresh_process(gpus=4)
    assert run_task(["1", "3"]) == "gpu:1"
    assert [g.name for g in tf.visible] == ["/physical_device:GPU:1", "/physical_device:GPU:3"]
    assert tf.growth == ["/physical_device:GPU:1", "/physical_device:GPU:3"]


def test_assigned_gpus_that_tensorflow_lacks_run_on_the_cpu(fresh_process, caplog):
    tf = fresh_process(gpus=0)
    with caplog.at_level(logging.WARNING, logger="colorspark.devices"):
        assert run_task(["1"]) == "cpu (assigned gpu:1)"
    assert tf.visible == [] and tf.set_calls == 1
    assert "assigned GPU 1, but TensorFlow sees no GPU: running on the CPU" in caplog.text


def test_an_address_missing_on_a_gpu_host_hides_every_gpu(fresh_process):
    tf = fresh_process(gpus=2)
    assert run_task(["7"]) == "cpu (assigned gpu:7)"
    assert tf.visible == []


def test_a_container_that_renumbers_its_gpus_runs_on_them(fresh_process):
    """YARN or Kubernetes isolation: the task was assigned the host's GPU 3, and its container shows it as GPU 0."""
    tf = fresh_process(gpus=1)
    assert run_task(["3"]) == "gpu:3"
    assert [g.name for g in tf.visible] == ["/physical_device:GPU:0"] and tf.growth == ["/physical_device:GPU:0"]


def test_a_reused_worker_stays_on_its_first_tasks_gpu_and_says_so(fresh_process, caplog):
    tf = fresh_process(gpus=2)
    assert run_task(["0"]) == "gpu:0"
    with caplog.at_level(logging.WARNING, logger="colorspark.devices"):
        assert run_task(["1"]) == "gpu:0 (assigned gpu:1)"
        assert run_task(["1"]) == "gpu:0 (assigned gpu:1)"  # one warning per assignment, not per row
        assert run_task(["0"]) == "gpu:0"
    assert tf.set_calls == 1  # TensorFlow was pinned once, by the first task
    assert caplog.text.count("pinned to GPU 0 by an earlier task") == 1


def test_without_gpu_scheduling_tensorflow_chooses_with_memory_growth(fresh_process):
    tf = fresh_process(gpus=2)
    assert run_task([]) == "gpu:0"
    assert len(tf.visible) == 2 and len(tf.growth) == 2


def test_devices_initialised_elsewhere_are_reported_as_they_are(fresh_process, caplog):
    tf = fresh_process(gpus=2, initialised=True)
    with caplog.at_level(logging.WARNING, logger="colorspark.devices"):
        assert run_task(["1"]) == "gpu:0 (assigned gpu:1)"
    assert tf.set_calls == 1 and tf.growth == []
    assert "initialised before colorspark could pin them" in caplog.text


def test_outside_a_task_nothing_is_pinned(fresh_process):
    tf = fresh_process(gpus=2)
    assert run_task(None) is None
    assert tf.set_calls == 0 and devices._pinned is None


@pytest.mark.parametrize("assigned, pinned, expected", [
    ((), (), "cpu"),
    ((), ("0", "1"), "gpu:0"),
    (("1",), ("1",), "gpu:1"),
    (("0", "1"), ("1",), "gpu:1"),
    (("1",), (), "cpu (assigned gpu:1)"),
    (("2", "3"), ("0",), "gpu:0 (assigned gpu:2,3)"),
])
def test_describe_device(assigned, pinned, expected):
    assert devices.describe_device(assigned, pinned) == expected


def test_elephas_worker_is_pinned_before_it_starts(fresh_process):
    """PySpark runs `next_step(pin(rows))`: the pin must have happened when Elephas's worker starts, not when it first
    reads a row (its synchronous worker builds the model before reading)."""
    fresh_process(gpus=2)
    FakeTaskContext.current = ["1"]
    reported = set()

    class FakeRdd:
        def mapPartitions(self, function, preservesPartitioning=False):
            self.function = function
            return self

    class FakeAccumulator:
        def add(self, pairs):
            reported.update(pairs)

    rdd = devices.pinned_partitions(FakeRdd(), FakeAccumulator())
    seen_at_start = []

    def elephas_train(rows):
        seen_at_start.append(devices._pinned)
        yield from rows

    stream = elephas_train(rdd.function(iter([1, 2])))  # how PySpark chains the two steps
    assert list(stream) == [1, 2]
    assert seen_at_start == [("1",)]
    assert {device for _, device in reported} == {"gpu:1"}


def test_device_records_are_distinct_and_sorted():
    pairs = {("h:2", "gpu:1"), ("h:1", "cpu (assigned gpu:0)")}
    assert devices.device_records([*pairs, ("h:2", "gpu:1")]) == [
        {"worker": "h:1", "device": "cpu (assigned gpu:0)"}, {"worker": "h:2", "device": "gpu:1"}]


def test_real_tensorflow_without_gpus_runs_a_fake_assignment_on_the_cpu(monkeypatch):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: the fake address could be real")
    monkeypatch.setattr(devices, "_pinned", None)
    monkeypatch.setattr(devices, "_warned", set())
    monkeypatch.setattr(devices, "TaskContext", FakeTaskContext)
    monkeypatch.setattr(FakeTaskContext, "current", ["1"])
    assert devices.task_device() == "cpu (assigned gpu:1)"
    assert tf.config.get_visible_devices("GPU") == []


@pytest.mark.parametrize("listed, expected", [("0\n1\n", ["0", "1"]), ("3\n", ["3"]), ("", [])])
def test_shipped_discovery_script_reports_nvidia_smi_indices(tmp_path, listed, expected):
    """conf/getGpusResources.sh, with a stand-in nvidia-smi that lists GPU indices as the real one does."""
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\nprintf '{listed}'\n")
    fake.chmod(0o755)
    script = Path(__file__).resolve().parent.parent / "conf" / "getGpusResources.sh"
    done = subprocess.run([str(script)], capture_output=True, text=True, check=True,
                          env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert json.loads(done.stdout) == {"name": "gpu", "addresses": expected}


def _colorspark_imports(path: Path) -> set[str]:
    """The colorspark modules a module imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names.update([node.module.split(".")[0]] if node.module else [alias.name for alias in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("colorspark."):
            names.add(node.module.split(".")[1])
    return names


def test_colorspark_modules_import_no_cycle():
    """devices and inference once imported each other; no module of the package may reach itself again."""
    package = Path(devices.__file__).parent
    graph = {path.stem: _colorspark_imports(path) - {path.stem} for path in package.glob("*.py")}

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for name in graph.get(todo.pop(), ()):
                if name not in seen:
                    seen.add(name)
                    todo.append(name)
        return seen

    assert "inference" not in reachable("devices")
    assert [name for name in graph if name in reachable(name)] == []
