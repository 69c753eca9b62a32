"""A trained model on disk: MODEL_DIR/{model.keras, colorspark.json, history.json, history.png, checkpoints/}.

`colorspark.json` is the contract between train and colorize: the network settings, bin centres, prior, rebalancing
weights, temperature, rounds done, metrics, and the SHA-256 of model.keras. Loading verifies that hash and then loads
with Keras safe mode, so a swapped or tampered model file is refused with a clear message and a model containing
serialized code (a Lambda layer) cannot execute it.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from .runtime import JobError
from .storage import atomic_path, sha256_file, write_json_atomic

log = logging.getLogger("colorspark.model")

MODEL_FILE = "model.keras"
META_FILE = "colorspark.json"
STATE_FILE = "state.json"
FORMAT_VERSION = 1
_ROUND_DIR = re.compile(r"^round-(\d{4,})$")


class ModelError(JobError):
    """The model directory is missing, incomplete, or does not match its own description."""


def save_model_file(model, path: Path) -> str:
    """Save `model` atomically as a .keras archive; returns its SHA-256."""
    with atomic_path(path) as tmp:
        tmp_keras = tmp.with_name(tmp.name + ".keras")  # Keras insists on the extension
        try:
            model.save(tmp_keras)
            tmp_keras.replace(tmp)
        finally:
            tmp_keras.unlink(missing_ok=True)
    return sha256_file(path)


def load_model_file(path: Path, expected_sha256: str | None):
    """Load a .keras archive after checking its hash; Keras safe mode refuses embedded code."""
    from .losses import custom_objects
    from .runtime import import_tensorflow

    import_tensorflow()
    import keras

    if not path.is_file():
        raise ModelError(f"{path} is missing")
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise ModelError(f"{path} does not match the SHA-256 recorded for it: the file was changed or replaced "
                         "after training; refusing to load it")
    try:
        return keras.saving.load_model(path, custom_objects=custom_objects(), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, zipfile/OSError or others for bad archives
        raise ModelError(f"{path} is not a loadable colorspark model: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def write_model_dir(model_dir: Path, model, meta: dict, history: list[dict]) -> None:
    """Final outputs of a training run; colorspark.json last, so it only ever describes a complete model file."""
    model_dir.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "format": FORMAT_VERSION, "model_file": MODEL_FILE,
            "model_sha256": save_model_file(model, model_dir / MODEL_FILE)}
    write_json_atomic(model_dir / "history.json", history)
    plot_history(history, model_dir / "history.png")
    write_json_atomic(model_dir / META_FILE, meta)


def read_meta(model_dir: Path) -> dict:
    path = Path(model_dir) / META_FILE
    if not path.is_file():
        raise ModelError(f"{model_dir} is not a colorspark model directory (no {META_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from None
    required = {"format", "model_file", "model_sha256", "settings", "centres", "prior", "temperature"}
    missing = sorted(required - set(meta)) if isinstance(meta, dict) else sorted(required)
    if missing:
        raise ModelError(f"{path} lacks {', '.join(missing)}")
    if meta["format"] != FORMAT_VERSION or meta["model_file"] != MODEL_FILE:
        raise ModelError(f"{path}: unsupported format {meta['format']!r} / model file {meta['model_file']!r}")
    return meta


def load_model_dir(model_dir: str | Path):
    """(Keras model, colorspark.json dict) of a trained model directory, verified."""
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    return load_model_file(model_dir / MODEL_FILE, meta["model_sha256"]), meta


# --- checkpoints -----------------------------------------------------------------------------------------------------

def checkpoint_dir(model_dir: Path, round_number: int) -> Path:
    return Path(model_dir) / "checkpoints" / f"round-{round_number:04d}"


def write_checkpoint(model_dir: Path, round_number: int, model, state: dict) -> Path:
    """checkpoints/round-NNNN/{model.keras, state.json}, built in a temp folder and renamed in one step."""
    final = checkpoint_dir(model_dir, round_number)
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(final) as tmp:
        tmp.mkdir()
        sha = save_model_file(model, tmp / MODEL_FILE)
        write_json_atomic(tmp / STATE_FILE, {**state, "round": round_number, "model_sha256": sha})
        if final.exists():
            shutil.rmtree(final)
    return final


def latest_checkpoint(model_dir: Path):
    """(round, model, state) of the newest checkpoint that verifies, or None; corrupt ones are reported and skipped."""
    root = Path(model_dir) / "checkpoints"
    rounds = sorted((int(m.group(1)), p) for p in root.glob("round-*") if (m := _ROUND_DIR.match(p.name)))
    for number, path in reversed(rounds):
        try:
            state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
            if state.get("round") != number:
                raise ModelError(f"{path / STATE_FILE} says round {state.get('round')!r}")
            model = load_model_file(path / MODEL_FILE, state.get("model_sha256"))
        except (OSError, ValueError, ModelError) as exc:
            log.warning("checkpoint %s is unusable (%s); trying the previous one", path.name, exc)
            continue
        return number, model, state
    return None


def plot_history(history: list[dict], path: Path) -> None:
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
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
