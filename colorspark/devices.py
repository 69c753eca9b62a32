"""(executors) Which device TensorFlow runs on in each Spark task: the GPU(s) Spark assigned the task, or the CPU.

With Spark's resource scheduling (`spark.executor.resource.gpu.amount`, `spark.task.resource.gpu.amount` and a
discovery script on the workers, see docs/clusters.md) every task is handed GPU addresses, the indices nvidia-smi
gives the GPUs of its host. Left alone, TensorFlow in a Python worker would claim every GPU of the host and nearly
all of their memory, so before a task builds or uses a model (`pin_task_devices`) TensorFlow is restricted to the
task's GPUs, with memory growth on, so that tasks sharing a GPU through a fractional task amount each take only the
memory they use. Addresses are matched to TensorFlow's physical GPU indices, which are CUDA ordinals; CUDA is told to
number GPUs in PCI bus order, as nvidia-smi does, unless `CUDA_DEVICE_ORDER` is set already (`match_gpus` also
handles containers that renumber their GPUs from 0).

TensorFlow fixes the visible devices once per process, when it first initialises them. Importing it (the worker
daemon does, worker_startup/colorspark_worker_init.py) initialises nothing, so the first task a Python worker runs
decides: its GPUs become the worker's for good. Spark reuses the worker, with its cached model
(colorspark/inference.py), for later tasks of the executor, and a later task may be assigned another of the
executor's GPUs. It cannot move there: it runs where the worker is pinned, a warning says so in the executor log,
and its device is recorded as what it really used, e.g. `gpu:0 (assigned gpu:1)`. Giving each executor exactly one
GPU (`spark.executor.resource.gpu.amount 1`, as in conf/spark-yarn.conf) makes every task of an executor get the same
address, so this cannot happen. (Ending such a worker so that Spark starts a fresh one would fail the task, and
disabling worker reuse would cost a TensorFlow start-up and a model build per task.)

What each case records (`task_device`):

* `gpu:1`: Spark assigned GPU 1 and the task ran on it. With several addresses per task all are visible, and the
  network runs on the first (colorspark places no work on the others): give each task one GPU or a fraction of one.
* `cpu (assigned gpu:1)`: TensorFlow sees no GPU with that address (no GPU at all, a CPU-only TensorFlow build, or
  fake addresses from a test's discovery script); every GPU is hidden and the task runs on the CPU.
* `gpu:0` or `cpu` with no GPU assigned (no resource scheduling, e.g. `local[N]`): TensorFlow's own choice, with
  memory growth on every GPU so that the Python workers can share them.
"""

from __future__ import annotations

import logging
import os
import socket

from pyspark import AccumulatorParam, TaskContext

from .runtime import import_tensorflow, task_cpus

log = logging.getLogger("colorspark.devices")

_pinned: tuple[str, ...] | None = None  # Spark addresses of the GPUs TensorFlow sees here; None: not pinned yet
_warned: set[tuple[str, ...]] = set()  # assignments already reported in this process's log


def worker_name() -> str:
    """The Python worker a task runs in (`host:pid`): with its device, what summaries report per task."""
    return f"{socket.gethostname()}:{os.getpid()}"


def assigned_gpus() -> tuple[str, ...]:
    """GPU addresses Spark assigned to the running task; empty outside a task or without GPU scheduling."""
    context = TaskContext.get()
    resource = context.resources().get("gpu") if context is not None else None
    return tuple(resource.addresses) if resource is not None else ()


def gpu_address(device) -> str:
    """The address of a TensorFlow physical GPU (`/physical_device:GPU:1` -> `1`): its CUDA ordinal."""
    return device.name.rsplit(":", 1)[1]


def pin_task_devices() -> None:
    """Restrict TensorFlow in this process to the running task's GPUs, with memory growth on; call before building
    or using a model. Only the first call in a process can change anything (see the module docstring)."""
    global _pinned
    if _pinned is None:
        _pinned = _restrict_tensorflow(assigned_gpus())


def task_device() -> str | None:
    """The device the running task's TensorFlow work runs on (`cpu`, `gpu:1`, `cpu (assigned gpu:1)`, ...); None
    outside a Spark task (rows the driver makes). Pins this process first if no task has yet."""
    if TaskContext.get() is None:
        return None
    pin_task_devices()
    assigned = assigned_gpus()
    device = describe_device(assigned, _pinned)
    if assigned and _pinned and _pinned[0] not in assigned and assigned not in _warned:
        _warned.add(assigned)
        log.warning("this task was assigned GPU %s, but its Python worker was pinned to GPU %s by an earlier task "
                    "and TensorFlow cannot change that: it runs on GPU %s. Give each executor one GPU "
                    "(spark.executor.resource.gpu.amount=1) to avoid this.", ",".join(assigned),
                    ",".join(_pinned), _pinned[0])
    return device


def describe_device(assigned: tuple[str, ...], pinned: tuple[str, ...]) -> str:
    """`gpu:<address>` of the GPU the network runs on (the first of those the process is `pinned` to) or `cpu`,
    followed by `(assigned gpu:<addresses>)` when that is not one of the task's own."""
    used = f"gpu:{pinned[0]}" if pinned else "cpu"
    if assigned and (not pinned or pinned[0] not in assigned):
        return f"{used} (assigned gpu:{','.join(assigned)})"
    return used


def _restrict_tensorflow(assigned: tuple[str, ...]) -> tuple[str, ...]:
    """Make only the `assigned` GPUs visible to TensorFlow (all of them when nothing is assigned), with memory
    growth on; returns the Spark addresses of the GPUs now visible."""
    tf = import_tensorflow(task_cpus())  # thread pools are sized first: they too are fixed at initialisation
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # read by CUDA when TensorFlow first lists GPUs
    gpus = tf.config.list_physical_devices("GPU")
    chosen, addresses = match_gpus(assigned, gpus)
    try:
        tf.config.set_visible_devices(chosen, "GPU")
        for gpu in chosen:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # something in this process initialised TensorFlow's devices before: they stay as they are
        chosen = tf.config.get_visible_devices("GPU")
        addresses = tuple(map(gpu_address, chosen))
        if assigned:
            log.warning("TensorFlow's devices were initialised before colorspark could pin them to GPU %s; GPUs "
                        "visible: %s", ",".join(assigned), ",".join(addresses) or "none")
    missing = [address for address in assigned if address not in addresses]
    if missing:
        log.warning("Spark assigned GPU %s, but TensorFlow sees %s: running on %s", ",".join(missing),
                    f"GPU {','.join(map(gpu_address, gpus))}" if gpus else "no GPU",
                    f"GPU {addresses[0]}" if addresses else "the CPU")
    return addresses


def match_gpus(assigned: tuple[str, ...], gpus: list) -> tuple[list, tuple[str, ...]]:
    """(TensorFlow's physical GPUs to make visible, their Spark addresses) for a task assigned `assigned`.

    Addresses are matched to CUDA ordinals. A container that shows a task only its own GPUs (YARN's or Kubernetes'
    GPU isolation) numbers them from 0 while Spark's addresses are the host's: when no address matches and
    TensorFlow sees exactly as many GPUs as were assigned, those are the task's.
    """
    if not assigned:
        return list(gpus), tuple(map(gpu_address, gpus))
    matched = [gpu for gpu in gpus if gpu_address(gpu) in assigned]
    if not matched and gpus and len(gpus) == len(assigned):
        return list(gpus), assigned
    return matched, tuple(map(gpu_address, matched))


class _PairSet(AccumulatorParam):
    """Accumulates sets: the distinct (worker, device) pairs that tasks report."""

    def zero(self, value):
        return set()

    def addInPlace(self, value1, value2):
        value1 |= value2
        return value1


def device_accumulator(spark_context):
    """An accumulator of the (worker, device) pairs that `pinned_partitions` tasks ran on."""
    return spark_context.accumulator(set(), _PairSet())


def pinned_partitions(rdd, devices):
    """`rdd` with each partition's task pinned to its GPUs, and reporting (worker, device) to `devices`, before the
    next step chained onto it starts: for Elephas's workers, which build their model from the partition's task.

    PySpark chains `rdd.mapPartitions(next_step)` as `next_step(pin(rows))`, so `pin` runs before `next_step` is even
    called; it must return the rows rather than be a generator, which would run only when they are read, after
    Elephas's synchronous worker has built its model. (Elephas's `num_workers` must stay unset: its repartition would
    run the pinning in other tasks than the training.)
    """
    def pin(rows):
        devices.add({(worker_name(), task_device())})
        return rows

    return rdd.mapPartitions(pin, preservesPartitioning=True)


def device_records(pairs) -> list[dict]:
    """(worker, device) pairs as sorted, distinct {"worker", "device"} records for colorspark.json and summaries."""
    return [{"worker": worker, "device": device} for worker, device in sorted(set(pairs))]
