"""Job 2: train the colorization network with Elephas on the preprocessed samples.

A round is one Elephas `fit` call of `epochs_per_round` epochs (in synchronous mode the workers' weight deltas are
averaged after every epoch; Elephas rebuilds the optimizer per epoch, so Adam's moments restart each time). After
each round the validation split is scored on the executors with the broadcast weights, a log line is printed and an
atomic checkpoint is written; `--resume` continues from the newest checkpoint that verifies.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from . import __version__
from .bins import annealed_mean, gamut_centres, rebalance_weights
from .colorspace import lab_to_rgb8
from .inference import ModelPayload, worker_model
from .metrics import ab_error_auc, psnr, rebalancing_pixel_weights
from .model import build_model, describe, model_settings
from .modeldir import latest_checkpoint, write_checkpoint, write_model_dir
from .runtime import JobError
from .samples import L_SCALE, OUTPUT_STRIDE, l_code_to_input
from .storage import local_uri

log = logging.getLogger("colorspark.train")

PSNR_CAP = 100.0  # identical crops give infinite PSNR; cap so means stay finite


# --- data ------------------------------------------------------------------------------------------------------------

def read_manifest(data_dir: Path) -> dict:
    import json

    path = data_dir / "manifest.json"
    if not path.is_file():
        raise JobError(f"{data_dir} has no manifest.json: it is not a finished preprocess output "
                       "(run jobs/preprocess.py, and let it complete)")
    return json.loads(path.read_text(encoding="utf-8"))


def _pair(l_bytes: bytes, ab_bytes: bytes, size: int):
    l_code = np.frombuffer(l_bytes, np.uint8).reshape(size, size)
    ab = np.frombuffer(ab_bytes, np.int8).reshape(size // OUTPUT_STRIDE, size // OUTPUT_STRIDE, 2)
    return l_code_to_input(l_code), ab


def _hdf5_rows(path: str, split: str, size: int):
    import h5py

    with h5py.File(path, "r") as h5:
        splits = h5["split"].asstr()[:]
        keep = np.flatnonzero((splits == split) & h5["colorful"][:])
        if len(keep) == 0:
            return []
        ls, abs_ = h5["l"][:][keep], h5["ab"][:][keep]
    return [_pair(l.tobytes(), ab.tobytes(), size) for l, ab in zip(ls, abs_)]


def load_split(spark, data_dir: Path, split: str, source: str, size: int):
    """RDD of (x, y) numpy pairs of the colourful crops of one split: x = L code S×S×1, y = ab int8 S/4×S/4×2."""
    if source == "parquet":
        frame = (spark.read.parquet(local_uri(data_dir / "parquet"))
                 .where(f"split = '{split}' AND colorful").select("l", "ab"))
        return frame.rdd.map(lambda r: _pair(r.l, r.ab, size))
    shards = sorted(str(p) for p in (data_dir / "hdf5").glob("*.h5"))
    if not shards:
        raise JobError(f"{data_dir / 'hdf5'} has no HDF5 shards (preprocess with --format hdf5 or both)")
    return spark.sparkContext.parallelize(shards, len(shards)).flatMap(lambda p: _hdf5_rows(p, split, size))


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


# --- validation on the executors ---------------------------------------------------------------------------------------

VAL_KEYS = ("n", "loss", "auc", "auc_gray", "auc_rebal", "auc_rebal_gray", "psnr", "psnr_gray")


def validation_sums(logits: np.ndarray, x: np.ndarray, y: np.ndarray, settings: dict, loss_fn) -> dict:
    """Sums over a batch of the loss and the colour metrics at the output stride (prediction and gray baseline).

    PSNR compares RGB made from L averaged to the output stride with the true and the predicted ab, so it measures
    the colour alone; AuC is Zhang et al.'s, plain and rebalanced by the training prior.
    """
    sums = dict.fromkeys(VAL_KEYS, 0.0)
    sums["loss"] = float(loss_fn(y, logits)) * len(x)
    prior = np.asarray(settings["prior"])
    for xi, yi, pi in zip(x, y, annealed_mean(logits, settings["temperature"])):
        truth = yi.astype(np.float32)
        weights = rebalancing_pixel_weights(truth, prior)
        zeros = np.zeros_like(truth)
        sums["auc"] += ab_error_auc(truth, pi)
        sums["auc_gray"] += ab_error_auc(truth, zeros)
        sums["auc_rebal"] += ab_error_auc(truth, pi, weights)
        sums["auc_rebal_gray"] += ab_error_auc(truth, zeros, weights)
        s = OUTPUT_STRIDE
        l_small = xi[..., 0].reshape(truth.shape[0], s, truth.shape[1], s).mean(axis=(1, 3)) / L_SCALE
        rgb = {name: lab_to_rgb8(np.dstack([l_small, ab])) for name, ab in
               (("truth", truth), ("pred", pi), ("gray", zeros))}
        sums["psnr"] += min(psnr(rgb["truth"], rgb["pred"]), PSNR_CAP)
        sums["psnr_gray"] += min(psnr(rgb["truth"], rgb["gray"]), PSNR_CAP)
        sums["n"] += 1
    return sums


def loss_from_settings(settings: dict):
    from .losses import RebalancedSoftCrossEntropy

    return RebalancedSoftCrossEntropy(settings["class_weights"], settings["neighbours"], settings["sigma"],
                                      settings["gray_chroma"])


def _evaluate_partition(rows, payload_bc, settings: dict):
    """Sums of loss and colour metrics over one partition of (x, y) pairs; one small dict per partition."""
    rows = list(rows)
    total = dict.fromkeys(VAL_KEYS, 0.0)
    if not rows:
        return [total]
    model = worker_model(payload_bc.value)
    loss_fn = loss_from_settings(settings)
    for start in range(0, len(rows), 32):
        x = np.stack([r[0] for r in rows[start:start + 32]])
        y = np.stack([r[1] for r in rows[start:start + 32]])
        sums = validation_sums(np.asarray(model.predict_on_batch(x)), x, y, settings, loss_fn)
        total = {k: total[k] + sums[k] for k in VAL_KEYS}
    return [total]


def mean_metrics(total: dict) -> dict:
    n = total["n"]
    return {f"val_{k}": (total[k] / n if n else None) for k in VAL_KEYS if k != "n"}


def evaluate(spark, model, val_rdd, settings: dict) -> dict:
    payload = spark.sparkContext.broadcast(ModelPayload.from_model(model))
    try:
        parts = val_rdd.mapPartitions(lambda rows: _evaluate_partition(rows, payload, settings)).collect()
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


def compile_for_training(model, settings: dict, learning_rate: float):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss_from_settings(settings))
    return model


def elephas_model(spark, model, config: dict):
    """A fresh Elephas model per round (the asynchronous parameter-server process can only be started once)."""
    from elephas.spark_model import AsynchronousSparkModel, SparkModel

    from .losses import custom_objects

    mode = config["train"]["mode"]
    batch = config["train"]["batch_size"]
    if mode == "synchronous":
        return SparkModel(model, custom_objects=custom_objects(), batch_size=batch)
    # Elephas binds its parameter server to SPARK_LOCAL_IP (else this host's address): pin it to the driver address.
    os.environ["SPARK_LOCAL_IP"] = spark.sparkContext.getConf().get("spark.driver.host", "127.0.0.1")
    spark_model = AsynchronousSparkModel(model, mode=mode, frequency="epoch", parameter_server_mode="http",
                                         port=config["train"]["port"], custom_objects=custom_objects(),
                                         batch_size=batch)
    spark_model.parameter_server.debug = False  # Flask's debugger would allow remote code execution
    return spark_model


def _fit_quietly(spark_model, rdd, config: dict):
    """One Elephas fit; its progress prints go to the debug log instead of stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        spark_model.fit(rdd, epochs=config["train"]["epochs_per_round"], batch_size=config["train"]["batch_size"],
                        verbose=0, validation_split=0.0)
    log.debug(out.getvalue())
    losses = [h["loss"][-1] for h in getattr(spark_model, "training_histories", []) if h and h.get("loss")]
    return float(np.mean(losses[-config["train"]["workers"]:])) if losses else None


def run(spark, data_dir: str, model_dir: str, config: dict, resume: bool = False) -> dict:
    from pyspark import StorageLevel

    from .runtime import import_tensorflow

    import_tensorflow(int(spark.sparkContext.getConf().get("spark.task.cpus", "1")))
    data_dir, model_dir = Path(data_dir).resolve(), Path(model_dir).resolve()
    manifest = read_manifest(data_dir)
    train_cfg = config["train"]
    settings = model_settings(config)
    if manifest["size"] != settings["input_size"]:
        raise JobError(f"the data in {data_dir} has {manifest['size']} px crops but preset '{settings['preset']}' "
                       f"trains at {settings['input_size']} px: preprocess with --set data.size="
                       f"{settings['input_size']}, or train with --set model.input_size={manifest['size']}")
    prior = np.load(data_dir / "prior.npy")
    class_weights = rebalance_weights(prior, config["bins"]["rebalance_lambda"], config["bins"]["prior_sigma"])
    eval_settings = {"class_weights": class_weights.tolist(), "neighbours": config["bins"]["neighbours"],
                     "sigma": config["bins"]["sigma"], "gray_chroma": config["data"]["gray_chroma"],
                     "prior": prior.tolist(), "temperature": config["bins"]["temperature"]}

    train_rdd = load_split(spark, data_dir, "train", train_cfg["source"], manifest["size"])
    train_rdd = train_rdd.repartition(train_cfg["workers"]).persist(StorageLevel.MEMORY_AND_DISK)
    sizes = check_partitions(train_rdd, train_cfg["batch_size"])
    val_rdd = load_split(spark, data_dir, "val", train_cfg["source"], manifest["size"])
    val_rdd = val_rdd.repartition(max(1, spark.sparkContext.defaultParallelism)).persist(StorageLevel.MEMORY_AND_DISK)
    n_val = val_rdd.count()
    if n_val > train_cfg["max_val_rows"]:
        val_rdd = val_rdd.sample(False, train_cfg["max_val_rows"] / n_val, seed=0)
    log.info("training on %d colourful crops in %d worker partitions %s, validating on %d; mode %s, preset %s",
             sum(sizes), len(sizes), sizes, min(n_val, train_cfg["max_val_rows"]), train_cfg["mode"],
             settings["preset"])

    history: list[dict] = []
    done = 0
    found = latest_checkpoint(model_dir) if resume else None
    if found:
        done, model, state = found
        history = state.get("history", [])[:done]
        log.info("resuming after round %d from %s", done, model_dir / "checkpoints" / f"round-{done:04d}")
    else:
        if resume:
            log.info("no usable checkpoint in %s: starting from scratch", model_dir)
        model = build_model(settings)
    compile_for_training(model, eval_settings, train_cfg["learning_rate"])
    log.info("network: %s, %d parameters", model.name, model.count_params())

    meta = {"colorspark_version": __version__, "settings": settings, "blocks": describe(settings),
            "input_size": settings["input_size"], "output_stride": OUTPUT_STRIDE,
            "centres": gamut_centres().tolist(), "prior": prior.tolist(), "class_weights": class_weights.tolist(),
            "temperature": config["bins"]["temperature"], "config": config,
            "data": {k: manifest.get(k) for k in ("input", "inputs", "ok", "train", "val", "train_crops",
                                                  "val_crops", "size")}}
    try:
        durations = []
        for round_number in range(done + 1, train_cfg["rounds"] + 1):
            started = time.time()
            learning_rate = round_learning_rate(train_cfg["learning_rate"], train_cfg["lr_schedule"], round_number,
                                                train_cfg["rounds"])
            compile_for_training(model, eval_settings, learning_rate)
            train_loss = _fit_quietly(elephas_model(spark, model, config), train_rdd, config)
            fit_seconds = time.time() - started
            metrics = evaluate(spark, model, val_rdd, eval_settings)
            seconds = time.time() - started
            durations.append(seconds)
            entry = {"round": round_number, "learning_rate": learning_rate, "train_loss": train_loss, **metrics,
                     "seconds": round(seconds, 2),
                     "fit_seconds": round(fit_seconds, 2), "samples": sum(sizes) * train_cfg["epochs_per_round"]}
            history.append(entry)
            write_checkpoint(model_dir, round_number, model, {"history": history, "settings": settings})
            eta = np.mean(durations) * (train_cfg["rounds"] - round_number)
            log.info("round %d/%d: loss %s, val loss %s, AuC %s (gray %s), rebalanced AuC %s (gray %s), "
                     "PSNR %s dB (gray %s); %.0f s, ETA %s", round_number, train_cfg["rounds"], _fmt(train_loss),
                     _fmt(metrics["val_loss"]), _fmt(metrics["val_auc"]), _fmt(metrics["val_auc_gray"]),
                     _fmt(metrics["val_auc_rebal"]), _fmt(metrics["val_auc_rebal_gray"]), _fmt(metrics["val_psnr"], 2),
                     _fmt(metrics["val_psnr_gray"], 2), seconds, _duration(eta))
    finally:
        train_rdd.unpersist()
        val_rdd.unpersist()
    meta.update({"rounds_done": len(history), "final_metrics": history[-1] if history else None})
    write_model_dir(model_dir, model, meta, history)
    log.info("model written to %s (%d rounds)", model_dir, len(history))
    return meta


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
