"""Job 2 (driver): train the colorization network with Elephas on the preprocessed samples.

A round is one Elephas `fit` call of `epochs_per_round` epochs, then validation on the executors with the broadcast
weights, a log line and an atomic checkpoint; `--resume` continues from the newest checkpoint that verifies. In
synchronous mode the fit averages the workers' weights every `train.sync_every` batches and carries the averaged
optimizer state from one average to the next (`colorspark/averaging.py`), optionally with block momentum on the
averaged update (`train.outer_momentum`, its buffer carried across rounds and checkpoints) and a warm-up of the
workers' scaled rate (`train.warmup_rounds`); the asynchronous modes run Elephas's parameter server as it comes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import os
import time

import numpy as np

from . import __version__, fs
from .bins import gamut_centres, rebalance_weights
from .datasets import part_files
from .devices import device_accumulator, device_records, pinned_partitions
from .errors import JobError
from .inference import ModelPayload
from .model import build_model, describe, model_settings
from .modeldir import checkpoint_dir, latest_checkpoint, write_checkpoint, write_model_dir
from .progress import duration
from .samples import OUTPUT_STRIDE, read_shard_pairs
from .training_tasks import VAL_KEYS, evaluate_partition, loss_from_settings, parquet_pairs

log = logging.getLogger("colorspark.train")


# --- data ------------------------------------------------------------------------------------------------------------

def read_manifest(data_dir: str) -> dict:
    path = fs.join(data_dir, "manifest.json")
    if not fs.is_file(path):
        raise JobError(f"{fs.display(data_dir)} has no manifest.json: it is not a finished preprocess output "
                       "(run jobs/preprocess.py, and let it complete)")
    return fs.read_json(path)


def load_split(spark, data_dir: str, split: str, source: str, size: int):
    """RDD of (x, y) numpy pairs of the colourful crops of one split: x = L code S×S×1, y = ab int8 S/4×S/4×2.

    The executors read the files themselves through the storage layer, one task per file, so any filesystem the
    layer serves works, with or without Hadoop connectors."""
    if source == "parquet":
        files = part_files(fs.join(data_dir, "parquet", f"split={split}"))
        reader = parquet_pairs
    else:
        files = [uri for uri, _ in fs.list_files(fs.join(data_dir, "hdf5")) if uri.endswith(".h5")]
        if not files:
            raise JobError(f"{fs.display(fs.join(data_dir, 'hdf5'))} has no HDF5 shards (preprocess with --format "
                           "hdf5 or both)")
        reader = functools.partial(read_shard_pairs, split=split)
    if not files:
        return spark.sparkContext.emptyRDD()
    return spark.sparkContext.parallelize(files, len(files)).flatMap(lambda uri: reader(uri, size=size))


def check_partitions(rdd, batch_size: int) -> list[int]:
    """Rows per worker partition; every one must exceed the batch size or Elephas silently skips that worker."""
    sizes = rdd.mapPartitions(lambda rows: [sum(1 for _ in rows)]).collect()
    small = [(i, n) for i, n in enumerate(sizes) if n <= batch_size]
    if small:
        raise JobError(
            f"training partitions {', '.join(f'#{i} ({n} rows)' for i, n in small)} hold no more rows than the batch "
            f"size {batch_size}, so Elephas would skip those workers but still average them in. Use fewer workers "
            f"(--workers), a smaller batch (--set train.batch_size=N) or more crops per image (data.crops). "
            f"Rows per partition: {sizes}")
    return sizes


# --- validation ------------------------------------------------------------------------------------------------------

def mean_metrics(total: dict) -> dict:
    """Means over the validation crops, and the cast ratio as colorize's summary has it: mean cast over mean gray cast
    (None without crops or a gray cast)."""
    n = total["n"]
    means = {f"val_{k}": (total[k] / n if n else None) for k in VAL_KEYS if k != "n"}
    means["val_cast_ratio"] = total["cast"] / total["cast_gray"] if total["cast_gray"] else None
    return means


def evaluate(spark, model, val_rdd, settings: dict) -> dict:
    payload = spark.sparkContext.broadcast(ModelPayload.from_model(model))
    try:
        parts = val_rdd.mapPartitions(lambda rows: evaluate_partition(rows, payload, settings)).collect()
    finally:
        payload.destroy()
    return mean_metrics({k: sum(p[k] for p in parts) for k in VAL_KEYS})


# --- the job ---------------------------------------------------------------------------------------------------------

COSINE_FLOOR = 0.05  # the cosine schedule ends at this fraction of the base learning rate


def round_learning_rate(base: float, schedule: str, round_number: int, rounds: int) -> float:
    """Learning rate of round `round_number` (1-based) of `rounds`.

    Elephas rebuilds the optimizer for every round, so a schedule inside Keras would restart each round; the rate is
    set per round instead, and depends only on the round number so that --resume continues the same curve.
    """
    if schedule == "constant" or rounds <= 1:
        return base
    progress = (round_number - 1) / (rounds - 1)
    return base * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))


def scaled_learning_rate(base: float, scaling: str, workers: int) -> float:
    """The rate each of W averaging workers trains at. Averaging W workers' steps moves the weights about as far as
    one worker's step while it consumes W times the samples, so per sample the average makes less progress than one
    optimizer would; scaling the rate by √W or W (as for large-batch training) makes up for it."""
    return base * {"none": 1.0, "sqrt": math.sqrt(workers), "linear": float(workers)}[scaling]


def warmup_rate(rate: float, scaled: float, round_number: int, window: int, windows: int, *,
                warmup_rounds: int) -> float:
    """The workers' rate in window `window` (0-based) of the `windows` of round `round_number` (1-based): gradual
    warm-up (Goyal et al. 2017) from the round's unscaled `rate` to its `scaled` one.

    Jumping straight to W times the rate can throw the first averages far off; instead, over the first
    `warmup_rounds` rounds, window j of the N = warmup_rounds × windows warm-up windows (counted from round 1's first)
    trains at rate + (scaled − rate) · j / N: the unscaled rate in the first window, rising by one step per window to
    reach the scaled rate where the warm-up ends; from then on every window trains at `scaled`. It depends only on
    the round number and the window index, so --resume reproduces it.
    """
    ramp = warmup_rounds * windows
    position = (round_number - 1) * windows + window
    return scaled if position >= ramp else rate + (scaled - rate) * position / ramp


def compile_for_training(model, loss_settings: dict, train_config: dict):
    """Compile once per run with a built optimizer, so that its state exists from the start, can be averaged across
    workers, checkpointed and restored; each round then only sets the learning rate.

    A non-zero `weight_decay` makes it AdamW (Loshchilov & Hutter 2019): the decay is applied to the weights
    directly instead of through Adam's gradient scaling, and its state (moments, step) is the same as Adam's, so the
    averaging carries it unchanged."""
    import keras

    rate, decay = train_config["learning_rate"], train_config["weight_decay"]
    optimizer = keras.optimizers.AdamW(rate, weight_decay=decay) if decay else keras.optimizers.Adam(rate)
    model.compile(optimizer=optimizer, loss=loss_from_settings(loss_settings))
    model.optimizer.build(model.trainable_variables)
    return model


def elephas_model(spark, model, config: dict, sizes: list[int], round_number: int, outer=None, window_rate=None):
    """A fresh Elephas model per round (the asynchronous parameter-server process can only be started once); in
    synchronous mode `outer` (`averaging.OuterMomentum`, the same one every round) and `window_rate` (the workers'
    rate per window) go to the averaging model."""
    from elephas.spark_model import AsynchronousSparkModel

    from .averaging import AveragingSparkModel
    from .losses import custom_objects

    mode = config["train"]["mode"]
    batch = config["train"]["batch_size"]
    if mode == "synchronous":
        return AveragingSparkModel(model, custom_objects=custom_objects(), batch_size=batch,
                                   sync_every=config["train"]["sync_every"],
                                   carry_optimizer=config["train"]["optimizer_state"] == "averaged", sizes=sizes,
                                   seed=config["train"]["seed"] * 100_003 + round_number, outer=outer,
                                   window_rate=window_rate, progress_seconds=config["log"]["progress_seconds"])
    # Elephas binds its parameter server to SPARK_LOCAL_IP (else this host's address): pin it to the driver address
    # while the model is made, and leave the process's environment as it was.
    driver_host = spark.sparkContext.getConf().get("spark.driver.host", "127.0.0.1")
    with _environment(SPARK_LOCAL_IP=driver_host):
        spark_model = AsynchronousSparkModel(model, mode=mode, frequency="epoch", parameter_server_mode="http",
                                             port=config["train"]["port"], custom_objects=custom_objects(),
                                             batch_size=batch)
    spark_model.parameter_server.debug = False  # Flask's debugger would allow remote code execution
    return spark_model


@contextlib.contextmanager
def _environment(**values: str):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _fit_quietly(spark_model, rdd, config: dict) -> dict:
    """One Elephas fit; its progress prints go to the debug log instead of stdout. Returns the round's training loss
    and, for the synchronous mode, its averaging record (`averaging.round_summary`)."""
    from .averaging import AveragingSparkModel, round_summary

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        spark_model.fit(rdd, epochs=config["train"]["epochs_per_round"], batch_size=config["train"]["batch_size"],
                        verbose=0, validation_split=0.0)
    log.debug(out.getvalue())
    if isinstance(spark_model, AveragingSparkModel):
        return round_summary(spark_model.syncs)
    losses = [h["loss"][-1] for h in getattr(spark_model, "training_histories", []) if h and h.get("loss")]
    return {"train_loss": float(np.mean(losses[-config["train"]["workers"]:])) if losses else None}


def run(spark, data_dir: str, model_dir: str, config: dict, resume: bool = False,
        init_model: str | None = None) -> dict:
    """Train into `model_dir` (a URI) from the preprocess output in `data_dir`; returns colorspark.json's content.
    With `init_model` (a model directory's URI) a run that has no checkpoint to resume starts from that model's
    weights and architecture (`colorspark/finetune.py`)."""
    from .runtime import import_tensorflow

    import_tensorflow(int(spark.sparkContext.getConf().get("spark.task.cpus", "1")))
    from .averaging import OuterMomentum  # imports Elephas, and with it TensorFlow: after the line above
    from .averaging_worker import optimizer_state

    manifest = read_manifest(data_dir)
    start = starting_point(model_dir, manifest, data_dir, config, resume, init_model)
    settings = start["settings"]
    check_input_size(manifest, settings, data_dir)
    loss_settings = loss_and_metric_settings(data_dir, config)
    train_rdd, val_rdd, sizes = load_splits(spark, data_dir, manifest, config)
    try:
        model, history, buffer = start_or_resume(model_dir, start, loss_settings, config)
        outer = OuterMomentum(config["train"]["outer_momentum"], buffer)
        log.info("network: %s, %d parameters", model.name, model.count_params())
        for round_number in range(len(history) + 1, config["train"]["rounds"] + 1):
            history.append(train_round(spark, model, train_rdd, val_rdd, round_number, sizes, loss_settings, config,
                                       outer))
            write_checkpoint(model_dir, round_number, model, {"history": history, "settings": settings,
                                                              **start["record"]},
                             optimizer_state(model.optimizer), outer.buffer)
            log_round(history, config["train"]["rounds"])
    finally:
        train_rdd.unpersist()
        val_rdd.unpersist()
    meta = model_meta(settings, loss_settings, manifest, config, history) | start["record"]
    write_model_dir(model_dir, model, meta, history)
    log.info("model written to %s (%d rounds)", fs.display(model_dir), len(history))
    return meta


def check_input_size(manifest: dict, settings: dict, data_dir: str) -> None:
    if manifest["size"] != settings["input_size"]:
        raise JobError(f"the data in {fs.display(data_dir)} has {manifest['size']} px crops but preset "
                       f"'{settings['preset']}' trains at {settings['input_size']} px: preprocess with --set "
                       f"data.size={settings['input_size']}, or train with --set model.input_size={manifest['size']}")


def loss_and_metric_settings(data_dir: str, config: dict) -> dict:
    """What the loss and the validation metrics need: the data's prior and the rebalancing weights made from it."""
    prior = np.load(io.BytesIO(fs.read_bytes(fs.join(data_dir, "prior.npy"))))
    class_weights = rebalance_weights(prior, config["bins"]["rebalance_lambda"], config["bins"]["prior_sigma"])
    return {"class_weights": class_weights.tolist(), "neighbours": config["bins"]["neighbours"],
            "sigma": config["bins"]["sigma"], "gray_chroma": config["data"]["gray_chroma"],
            "prior": prior.tolist(), "temperature": config["bins"]["temperature"]}


def load_splits(spark, data_dir: str, manifest: dict, config: dict):
    """(train RDD in one partition per Elephas worker, validation RDD, rows per worker), both cached."""
    from pyspark import StorageLevel

    train_cfg = config["train"]
    train_rdd = load_split(spark, data_dir, "train", train_cfg["source"], manifest["size"])
    train_rdd = deal_evenly(train_rdd, train_cfg["workers"]).persist(StorageLevel.MEMORY_AND_DISK)
    sizes = check_partitions(train_rdd, train_cfg["batch_size"])
    val_rdd = load_split(spark, data_dir, "val", train_cfg["source"], manifest["size"])
    val_rdd = val_rdd.repartition(max(1, spark.sparkContext.defaultParallelism)).persist(StorageLevel.MEMORY_AND_DISK)
    n_val = val_rdd.count()
    if n_val > train_cfg["max_val_rows"]:
        val_rdd = val_rdd.sample(False, train_cfg["max_val_rows"] / n_val, seed=0)
    log.info("training on %d colourful crops in %d worker partitions %s, validating on %d; mode %s, preset %s",
             sum(sizes), len(sizes), sizes, min(n_val, train_cfg["max_val_rows"]), train_cfg["mode"],
             config["train"]["preset"])
    return train_rdd, val_rdd, sizes


def deal_evenly(rdd, parts: int):
    """`rdd` in `parts` partitions whose sizes differ by at most one row, one per Elephas worker.

    Spark's `repartition` deals rows round robin from a random start in each input partition, so with few rows per
    input partition a worker can end up with too few to train on, or none.
    """
    return rdd.zipWithIndex().map(lambda pair: (pair[1] % parts, pair[0])).partitionBy(parts, lambda key: key).values()


def starting_point(model_dir: str, manifest: dict, data_dir: str, config: dict, resume: bool,
                   init_model: str | None) -> dict:
    """Where the run starts: `checkpoint` (the newest one that verifies, with --resume), else `initial` (the
    --init-model's network, frozen as train.freeze_blocks says), else neither (new weights); `settings` are the
    network's, and `record` what colorspark.json keeps of the start (`init_model`, also across a resume)."""
    from .finetune import load_init_model

    found = latest_checkpoint(model_dir) if resume else None
    if resume and not found:
        log.info("no usable checkpoint in %s: starting from scratch", fs.display(model_dir))
    initial, record = None, {}
    if init_model:
        initial, settings, init_record = load_init_model(init_model, manifest, data_dir,
                                                         config["train"]["freeze_blocks"])
        record = {"init_model": init_record}
    else:
        settings = model_settings(config)
        if found and "init_model" in found[2]:  # a fine-tuning run resumed without repeating --init-model
            record = {"init_model": found[2]["init_model"]}
    return {"checkpoint": found, "initial": None if found else initial, "settings": settings, "record": record}


def start_or_resume(model_dir: str, start: dict, loss_settings: dict, config: dict):
    """(compiled model, history so far, outer-momentum buffer or None): the checkpoint of `start` with its optimizer
    state and momentum buffer when the checkpoint has them; else `start`'s initial network or a new one, with a
    fresh optimizer."""
    from .averaging_worker import set_optimizer_state

    if start["checkpoint"]:
        done, model, state, saved_optimizer, buffer = start["checkpoint"]
        log.info("resuming after round %d from %s", done, fs.display(checkpoint_dir(model_dir, done)))
        compile_for_training(model, loss_settings, config["train"])
        if saved_optimizer is not None:
            set_optimizer_state(model.optimizer, saved_optimizer)
        else:
            log.info("the checkpoint has no optimizer state: the optimizer starts afresh")
        if config["train"]["outer_momentum"] and buffer is None:
            log.info("the checkpoint has no outer-momentum buffer: the buffer starts at zero")
        elif buffer is not None and not config["train"]["outer_momentum"]:
            log.info("train.outer_momentum is 0: the checkpoint's outer-momentum buffer is not used")
        return model, state.get("history", [])[:done], buffer
    import keras

    keras.utils.set_random_seed(config["train"]["seed"])  # the same initial weights for the same settings and seed
    model = start["initial"] or build_model(start["settings"])
    return compile_for_training(model, loss_settings, config["train"]), [], None


def train_round(spark, model, train_rdd, val_rdd, round_number: int, sizes: list[int], loss_settings: dict,
                config: dict, outer) -> dict:
    """One Elephas fit at this round's learning rate, then validation; returns the round's history entry. In
    synchronous mode `learning_rate` is the round's scaled rate and the entry also has the workers' rate in the
    first and last window (they differ from it during the warm-up)."""
    train_cfg = config["train"]
    started = time.time()
    learning_rate = round_learning_rate(train_cfg["learning_rate"], train_cfg["lr_schedule"], round_number,
                                        train_cfg["rounds"])
    window_rate = None
    if train_cfg["mode"] == "synchronous":
        unscaled, learning_rate = learning_rate, scaled_learning_rate(learning_rate, train_cfg["lr_scaling"],
                                                                      len(sizes))
        window_rate = functools.partial(warmup_rate, unscaled, learning_rate, round_number,
                                        warmup_rounds=train_cfg["warmup_rounds"])
    model.optimizer.learning_rate.assign(learning_rate)
    devices = device_accumulator(spark.sparkContext)
    fit = _fit_quietly(elephas_model(spark, model, config, sizes, round_number, outer, window_rate),
                       pinned_partitions(train_rdd, devices), config)
    fit_seconds = time.time() - started
    metrics = evaluate(spark, model, val_rdd, loss_settings)
    return {"round": round_number, "learning_rate": learning_rate, **fit, **metrics,
            "seconds": round(time.time() - started, 2), "fit_seconds": round(fit_seconds, 2),
            "samples": sum(sizes) * train_cfg["epochs_per_round"], "devices": device_records(devices.value)}


def log_round(history: list[dict], rounds: int) -> None:
    entry = history[-1]
    eta = np.mean([h["seconds"] for h in history]) * (rounds - entry["round"])
    log.info("round %d/%d: loss %s, val loss %s, AuC %s (gray %s), rebalanced AuC %s (gray %s), "
             "PSNR %s dB (gray %s), colour cast %s (gray %s, ratio %s); %.0f s, ETA %s", entry["round"], rounds,
             _fmt(entry["train_loss"]), _fmt(entry["val_loss"]), _fmt(entry["val_auc"]), _fmt(entry["val_auc_gray"]),
             _fmt(entry["val_auc_rebal"]), _fmt(entry["val_auc_rebal_gray"]), _fmt(entry["val_psnr"], 2),
             _fmt(entry["val_psnr_gray"], 2), _fmt(entry["val_cast"], 2), _fmt(entry["val_cast_gray"], 2),
             _fmt(entry["val_cast_ratio"], 3), entry["seconds"], duration(eta))


def model_meta(settings: dict, loss_settings: dict, manifest: dict, config: dict, history: list[dict]) -> dict:
    """colorspark.json: everything colorize needs besides the weights (the file's hash is added when it is saved),
    and the (worker, device) pairs of the Elephas workers that trained it, over all rounds."""
    return {"colorspark_version": __version__, "settings": settings, "blocks": describe(settings),
            "input_size": settings["input_size"], "output_stride": OUTPUT_STRIDE,
            "centres": gamut_centres().tolist(), "prior": loss_settings["prior"],
            "class_weights": loss_settings["class_weights"], "temperature": config["bins"]["temperature"],
            "config": config, "data": {k: manifest.get(k) for k in ("input", "inputs", "ok", "train", "val",
                                                                     "train_crops", "val_crops", "size")},
            "rounds_done": len(history), "final_metrics": history[-1] if history else None,
            "devices": device_records((d["worker"], d["device"]) for h in history for d in h.get("devices", []))}


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
