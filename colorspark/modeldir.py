"""A trained model in storage: MODEL_DIR/{model.keras, colorspark.json, history.json, history.png, checkpoints/}.

`colorspark.json` is the contract between train and colorize: the network settings, bin centres, prior, rebalancing
weights, temperature, rounds done, metrics, and the SHA-256 of model.keras. Loading verifies that hash and then loads
with Keras safe mode, so a swapped or tampered model file is refused with a clear message and a model containing
serialized code (a Lambda layer) cannot execute it.

MODEL_DIR is any location the storage layer serves (a path or a URI such as s3://bucket/model). Each file is
published atomically; `colorspark.json` is written last and a checkpoint's `state.json` after its model file, and
both carry the model file's hash, so a reader never takes a half-written model or checkpoint for a complete one.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re

import numpy as np

from . import fs
from .errors import JobError

log = logging.getLogger("colorspark.model")

MODEL_FILE = "model.keras"
META_FILE = "colorspark.json"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.npz"
MOMENTUM_FILE = "momentum.npz"
FORMAT_VERSION = 1
_ROUND_DIR = re.compile(r"^round-(\d{4,})$")


class ModelError(JobError):
    """The model directory is missing, incomplete, or does not match its own description."""


def save_model_file(model, uri: str) -> str:
    """Save `model` as a .keras archive at `uri`, atomically; returns its SHA-256."""
    with fs.local_file_for(uri, ".keras") as local:  # Keras insists on the extension
        model.save(local)
        digest = file_sha256(local)
    return digest


def file_sha256(path) -> str:
    """SHA-256 of a local file (models are hashed where Keras writes or reads them, on local disk)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model_file(uri: str, expected_sha256: str | None):
    """Load a .keras archive after checking its hash; Keras safe mode refuses embedded code."""
    from .losses import custom_objects
    from .runtime import import_tensorflow

    import_tensorflow()
    import keras

    if not fs.is_file(uri):
        raise ModelError(f"{fs.display(uri)} is missing")
    with fs.local_copy(uri) as local:
        if expected_sha256 is not None:
            _refuse_if_changed(uri, file_sha256(local), expected_sha256)
        try:
            return keras.saving.load_model(local, custom_objects=custom_objects(), compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises ValueError, zipfile/OSError or others for bad archives
            raise ModelError(f"{fs.display(uri)} is not a loadable colorspark model: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def _refuse_if_changed(uri: str, sha256: str, expected_sha256: str) -> None:
    if sha256 != expected_sha256:
        raise ModelError(f"{fs.display(uri)} does not match the SHA-256 recorded for it: the file was changed or "
                         "replaced after training; refusing to load it")


def read_model_file(model_dir: str) -> tuple[bytes, dict]:
    """(model.keras bytes, colorspark.json) of a model directory, the bytes checked against the recorded SHA-256,
    without TensorFlow: colorize's driver only passes the model on, and the executors load it in Keras safe mode."""
    import zipfile

    model_dir = fs.to_uri(model_dir)
    meta = read_meta(model_dir)
    uri = fs.join(model_dir, MODEL_FILE)
    if not fs.is_file(uri):
        raise ModelError(f"{fs.display(uri)} is missing")
    data = fs.read_bytes(uri)
    _refuse_if_changed(uri, hashlib.sha256(data).hexdigest(), meta["model_sha256"])
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.getinfo("config.json")
    except (zipfile.BadZipFile, KeyError):
        raise ModelError(f"{fs.display(uri)} is not a loadable colorspark model: not a Keras archive") from None
    return data, meta


def write_model_dir(model_dir: str, model, meta: dict, history: list[dict]) -> None:
    """Final outputs of a training run; colorspark.json last, so it only ever describes a complete model file."""
    meta = {**meta, "format": FORMAT_VERSION, "model_file": MODEL_FILE,
            "model_sha256": save_model_file(model, fs.join(model_dir, MODEL_FILE))}
    fs.write_json(fs.join(model_dir, "history.json"), history)
    plot_history(history, fs.join(model_dir, "history.png"))
    fs.write_json(fs.join(model_dir, META_FILE), meta)


def read_meta(model_dir: str) -> dict:
    path = fs.join(model_dir, META_FILE)
    if not fs.is_file(path):
        raise ModelError(f"{fs.display(model_dir)} is not a colorspark model directory (no {META_FILE})")
    try:
        meta = json.loads(fs.read_bytes(path).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{fs.display(path)} is not valid JSON: {exc}") from None
    required = {"format", "model_file", "model_sha256", "settings", "centres", "prior", "temperature"}
    missing = sorted(required - set(meta)) if isinstance(meta, dict) else sorted(required)
    if missing:
        raise ModelError(f"{fs.display(path)} lacks {', '.join(missing)}")
    if meta["format"] != FORMAT_VERSION or meta["model_file"] != MODEL_FILE:
        raise ModelError(f"{fs.display(path)}: unsupported format {meta['format']!r} / model file "
                         f"{meta['model_file']!r}")
    return meta


def load_model_dir(model_dir: str):
    """(Keras model, colorspark.json dict) of a trained model directory, verified."""
    model_dir = fs.to_uri(model_dir)
    meta = read_meta(model_dir)
    return load_model_file(fs.join(model_dir, MODEL_FILE), meta["model_sha256"]), meta


# --- checkpoints -----------------------------------------------------------------------------------------------------

def checkpoint_dir(model_dir: str, round_number: int) -> str:
    return fs.join(model_dir, "checkpoints", f"round-{round_number:04d}")


def write_checkpoint(model_dir: str, round_number: int, model, state: dict,
                     optimizer: list[np.ndarray] | None = None, momentum: list[np.ndarray] | None = None) -> str:
    """checkpoints/round-NNNN/{model.keras, optimizer.npz, momentum.npz, state.json}: the model, the optimizer's
    state arrays and the outer-momentum buffer (`averaging.OuterMomentum`) first, then the state that names their
    hashes, so the state's presence means a complete checkpoint. Arrays that are None are not written."""
    folder = checkpoint_dir(model_dir, round_number)
    fs.delete(fs.join(folder, STATE_FILE))
    hashes = {"model_sha256": save_model_file(model, fs.join(folder, MODEL_FILE))}
    for name, key, arrays in ((OPTIMIZER_FILE, "optimizer_sha256", optimizer),
                              (MOMENTUM_FILE, "momentum_sha256", momentum)):
        if arrays is not None:
            buffer = io.BytesIO()
            np.savez(buffer, *arrays)
            fs.write_bytes(fs.join(folder, name), buffer.getvalue())
            hashes[key] = hashlib.sha256(buffer.getvalue()).hexdigest()
    fs.write_json(fs.join(folder, STATE_FILE), {**state, "round": round_number, **hashes})
    return folder


def _read_arrays(folder: str, state: dict, name: str, key: str) -> list[np.ndarray] | None:
    """The arrays of the checkpoint's file `name`, in order, checked against the hash the state records under `key`,
    or None when the state records none (the checkpoint was written without them, or before they were kept)."""
    if key not in state:
        return None
    uri = fs.join(folder, name)
    data = fs.read_bytes(uri)
    _refuse_if_changed(uri, hashlib.sha256(data).hexdigest(), state[key])
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def latest_checkpoint(model_dir: str):
    """(round, model, state, optimizer state arrays or None, outer-momentum buffer or None) of the newest checkpoint
    that verifies, or None; corrupt ones are reported and skipped."""
    root = fs.join(model_dir, "checkpoints")
    rounds = sorted((int(m.group(1)), fs.join(root, name)) for name in fs.children(root)
                    if (m := _ROUND_DIR.match(name)))
    for number, folder in reversed(rounds):
        try:
            state = json.loads(fs.read_bytes(fs.join(folder, STATE_FILE)).decode("utf-8"))
            if state.get("round") != number:
                raise ModelError(f"{fs.display(fs.join(folder, STATE_FILE))} says round {state.get('round')!r}")
            model = load_model_file(fs.join(folder, MODEL_FILE), state.get("model_sha256"))
            optimizer = _read_arrays(folder, state, OPTIMIZER_FILE, "optimizer_sha256")
            momentum = _read_arrays(folder, state, MOMENTUM_FILE, "momentum_sha256")
        except (OSError, ValueError, ModelError) as exc:
            log.warning("checkpoint %s is unusable (%s); trying the previous one", fs.basename(folder), exc)
            continue
        return number, model, state, optimizer, momentum
    return None


def plot_history(history: list[dict], uri: str) -> None:
    """Loss and validation colour metrics per round, next to the gray baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [h["round"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [("loss", [("train_loss", "train"), ("val_loss", "val")]),
              ("AuC (rebalanced)", [("val_auc_rebal", "model"), ("val_auc_rebal_gray", "gray baseline")]),
              ("PSNR (dB)", [("val_psnr", "model"), ("val_psnr_gray", "gray baseline")])]
    for ax, (title, series) in zip(axes, panels):
        for key, label in series:
            values = [h.get(key) for h in history]
            if any(v is not None for v in values):
                ax.plot(rounds, [float("nan") if v is None else v for v in values], marker="o", label=label)
        ax.set_title(title)
        ax.set_xlabel("round")
        ax.grid(alpha=0.3)
        if ax.lines:  # a run without validation has nothing to label in its metric panels
            ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    fs.write_bytes(uri, buffer.getvalue())
