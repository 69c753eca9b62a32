"""(executors) The train job's per-partition work: reading sample files, and scoring validation batches.

Training itself runs in Elephas's workers; what colorspark runs on the executors is here: each task reads one sample
file through the storage layer into (input, target) pairs, and after each round each task scores its share of the
validation split with the broadcast weights, returning only a small dict of sums.
"""

from __future__ import annotations

import numpy as np

from .bins import annealed_mean
from .colorspace import lab_to_rgb8
from .datasets import read_table
from .inference import worker_model
from .metrics import ab_error_auc, colour_cast, psnr, rebalancing_pixel_weights
from .samples import L_SCALE, OUTPUT_STRIDE, training_pair

PSNR_CAP = 100.0  # identical crops give infinite PSNR; cap so means stay finite
VAL_KEYS = ("n", "loss", "auc", "auc_gray", "auc_rebal", "auc_rebal_gray", "psnr", "psnr_gray", "cast", "cast_gray")


def parquet_pairs(uri: str, size: int):
    """The training pairs of the colourful samples in one Parquet part file."""
    table = read_table(uri, columns=["l", "ab", "colorful"])
    return [training_pair(l_bytes, ab_bytes, size) for l_bytes, ab_bytes, colorful in
            zip(table.column("l").to_pylist(), table.column("ab").to_pylist(), table.column("colorful").to_pylist())
            if colorful]


def validation_sums(logits: np.ndarray, x: np.ndarray, y: np.ndarray, settings: dict, loss_fn) -> dict:
    """Sums over a batch of the loss and the colour metrics at the output stride (prediction and gray baseline).

    PSNR compares RGB made from L averaged to the output stride with the true and the predicted ab, so it measures
    the colour alone; AuC is Zhang et al.'s, plain and rebalanced by the training prior; the colour cast is the ab
    distance between the crop's mean predicted and true colour (gray's: the length of the true mean).
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
        sums["cast"] += colour_cast(truth, pi)
        sums["cast_gray"] += colour_cast(truth, zeros)
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


def evaluate_partition(rows, payload_bc, settings: dict):
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
