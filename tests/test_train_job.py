"""jobs/train.py end to end on local[2] with the tiny preset: train, resume, reload, corrupt checkpoints, async mode."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from imagefactory import colour_photo, write_image

pytestmark = pytest.mark.spark

FAST = ["--preset", "tiny", "--set", "train.batch_size=4", "--set", "train.max_val_rows=16"]


@pytest.fixture(scope="module")
def data(tmp_path_factory, run_job):
    root = tmp_path_factory.mktemp("train")
    for i in range(14):
        write_image(root / "images" / f"p{i}.png", colour_photo(72, 64, seed=i))
    proc = run_job("preprocess", "--input", root / "images", "--output", root / "data", "--set", "data.crops=3",
                   "--set", "data.val_fraction=0.25", "--format", "both")
    assert proc.returncode == 0, proc.log
    manifest = json.loads((root / "data" / "manifest.json").read_text())
    assert manifest["train"] >= 8 and manifest["val"] >= 1, manifest
    return root / "data"


@pytest.fixture(scope="module")
def trained(data, run_job, tmp_path_factory):
    """One round, then --rounds 2 --resume: the history a user gets from a resumed run."""
    model_dir = tmp_path_factory.mktemp("model")
    first = run_job("train", "--data", data, "--model-dir", model_dir, "--rounds", "1", *FAST)
    assert first.returncode == 0, first.log
    history_1 = json.loads((model_dir / "history.json").read_text())
    second = run_job("train", "--data", data, "--model-dir", model_dir, "--rounds", "2", "--resume", *FAST)
    assert second.returncode == 0, second.log
    return {"dir": model_dir, "history_1": history_1, "first": first.log, "second": second.log}


def test_one_round_writes_a_complete_model_dir(trained):
    assert [h["round"] for h in trained["history_1"]] == [1]
    entry = trained["history_1"][0]
    for key in ("train_loss", "val_loss", "val_auc", "val_auc_gray", "val_auc_rebal", "val_psnr", "val_psnr_gray"):
        assert entry[key] is not None and np.isfinite(entry[key]), key
    assert "round 1/1: loss" in trained["first"] and "ETA" in trained["first"]


def test_resume_trains_only_the_missing_round(trained):
    history = json.loads((trained["dir"] / "history.json").read_text())
    assert [h["round"] for h in history] == [1, 2]
    assert history[0] == trained["history_1"][0]  # round 1 was not retrained
    assert "resuming after round 1" in trained["second"]
    assert "round 2/2" in trained["second"] and "round 1/2" not in trained["second"]
    meta = json.loads((trained["dir"] / "colorspark.json").read_text())
    assert meta["rounds_done"] == 2 and meta["final_metrics"]["round"] == 2
    assert len(meta["centres"]) == 313 and len(meta["prior"]) == 313
    assert meta["temperature"] == pytest.approx(1.0) and meta["input_size"] == 64
    assert (trained["dir"] / "history.png").stat().st_size > 1000
    assert sorted(p.name for p in (trained["dir"] / "checkpoints").iterdir()) == ["round-0001", "round-0002"]


def test_resume_carries_the_averaged_optimizer_state_on(trained):
    """Adam's step count goes on from the checkpoint: round 2 ends with twice round 1's steps, not a fresh count."""
    steps = [int(np.load(trained["dir"] / "checkpoints" / f"round-000{r}" / "optimizer.npz")["arr_0"]) for r in (1, 2)]
    assert steps[0] > 0 and steps[1] == 2 * steps[0]
    assert "starts afresh" not in trained["second"]
    history = json.loads((trained["dir"] / "history.json").read_text())
    assert all(h["syncs"] >= 1 and h["model_builds"] >= 1 and h["train_seconds"] > 0 for h in history)


MOMENTUM = ["--set", "train.sync_every=1", "--set", "train.outer_momentum=0.5", "--set", "train.warmup_rounds=2",
            "--set", "train.learning_rate=0.0003", "--set", "train.lr_schedule=constant"]


@pytest.fixture(scope="module")
def with_momentum(data, run_job, tmp_path_factory):
    """Two rounds straight through with outer momentum and a warm-up over both rounds, averaging every batch."""
    model_dir = tmp_path_factory.mktemp("momentum")
    proc = run_job("train", "--data", data, "--model-dir", model_dir, "--rounds", "2", *FAST, *MOMENTUM)
    assert proc.returncode == 0, proc.log
    return model_dir


def _resume_round_2(straight, tmp_path, run_job, data, strip_buffer: bool = False):
    """A copy of the straight run with its round-2 checkpoint and final model removed, resumed to round 2;
    `strip_buffer` also makes round 1's checkpoint one written before the buffer was kept."""
    import shutil

    model_dir = tmp_path / "resumed"
    shutil.copytree(straight, model_dir)
    shutil.rmtree(model_dir / "checkpoints" / "round-0002")
    for name in ("model.keras", "colorspark.json", "history.json"):
        (model_dir / name).unlink()
    if strip_buffer:
        state_file = model_dir / "checkpoints" / "round-0001" / "state.json"
        state = json.loads(state_file.read_text())
        del state["momentum_sha256"]
        state_file.write_text(json.dumps(state))
        (model_dir / "checkpoints" / "round-0001" / "momentum.npz").unlink()
    proc = run_job("train", "--data", data, "--model-dir", model_dir, "--rounds", "2", "--resume", *FAST, *MOMENTUM)
    assert proc.returncode == 0, proc.log
    assert "resuming after round 1" in proc.log
    return model_dir, proc.log


def _weights(model_dir):
    from colorspark.modeldir import load_model_dir

    return load_model_dir(model_dir)[0].get_weights()


def test_the_warmup_ramps_across_rounds_and_the_momentum_buffer_is_checkpointed(with_momentum):
    history = json.loads((with_momentum / "history.json").read_text())
    windows = history[0]["syncs"]
    assert windows >= 2 and history[1]["syncs"] == windows
    base, ramp = 3e-4, 2 * windows  # W = 2, linear scaling: from 3e-4 to 6e-4 over both rounds' windows
    expected = [base + base * j / ramp for j in (0, windows - 1, windows, ramp - 1)]
    rates = [history[0]["first_window_rate"], history[0]["last_window_rate"], history[1]["first_window_rate"],
             history[1]["last_window_rate"]]
    assert rates == pytest.approx(expected, rel=1e-9)
    assert all(h["learning_rate"] == pytest.approx(2 * base) for h in history)
    for r in (1, 2):
        folder = with_momentum / "checkpoints" / f"round-000{r}"
        state = json.loads((folder / "state.json").read_text())
        with np.load(folder / "momentum.npz") as buffer:
            assert state["momentum_sha256"] and len(buffer.files) == len(_weights(with_momentum))
            assert any(np.abs(buffer[k]).sum() > 0 for k in buffer.files)


def test_resume_continues_the_momentum_and_the_warmup_exactly(with_momentum, data, run_job, tmp_path):
    """Round 2 retrained from round 1's checkpoint ends on the weights, buffer and rates of the uninterrupted run."""
    resumed, log = _resume_round_2(with_momentum, tmp_path, run_job, data)
    assert "starts at zero" not in log
    for ours, straight in zip(_weights(resumed), _weights(with_momentum)):
        np.testing.assert_array_equal(ours, straight)
    with np.load(resumed / "checkpoints" / "round-0002" / "momentum.npz") as mine, \
            np.load(with_momentum / "checkpoints" / "round-0002" / "momentum.npz") as theirs:
        for key in theirs.files:
            np.testing.assert_array_equal(mine[key], theirs[key])
    ours, straight = (json.loads((d / "history.json").read_text())[1] for d in (resumed, with_momentum))
    for key in ("first_window_rate", "last_window_rate", "learning_rate", "train_loss", "val_loss"):
        assert ours[key] == straight[key], key


def test_a_checkpoint_without_the_momentum_buffer_resumes_with_it_at_zero(with_momentum, data, run_job, tmp_path):
    resumed, log = _resume_round_2(with_momentum, tmp_path, run_job, data, strip_buffer=True)
    assert "the checkpoint has no outer-momentum buffer: the buffer starts at zero" in log
    assert (resumed / "checkpoints" / "round-0002" / "momentum.npz").is_file()
    assert not np.allclose(_weights(resumed)[0], _weights(with_momentum)[0])


def test_saved_model_reloads_and_predicts(trained):
    from colorspark.inference import predict_ab
    from colorspark.modeldir import load_model_dir

    model, meta = load_model_dir(trained["dir"])
    ab = predict_ab(model, np.full((2, 64, 64), 128.0, np.float32), meta["temperature"])
    assert ab.shape == (2, 16, 16, 2) and np.isfinite(ab).all()


def test_corrupt_checkpoint_falls_back_to_the_previous_one(trained, data, run_job, tmp_path):
    import shutil

    model_dir = tmp_path / "m"
    shutil.copytree(trained["dir"], model_dir)
    latest = model_dir / "checkpoints" / "round-0002" / "model.keras"
    latest.write_bytes(latest.read_bytes()[:1000])  # a truncated write
    proc = run_job("train", "--data", data, "--model-dir", model_dir, "--rounds", "3", "--resume", *FAST)
    assert proc.returncode == 0, proc.log
    assert "checkpoint round-0002 is unusable" in proc.log and "SHA-256" in proc.log
    assert "resuming after round 1" in proc.log
    history = json.loads((model_dir / "history.json").read_text())
    assert [h["round"] for h in history] == [1, 2, 3]


def test_asynchronous_mode_trains_through_a_parameter_server(data, run_job, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_job("train", "--data", data, "--model-dir", tmp_path / "async", "--rounds", "1", "--mode",
                   "asynchronous", "--set", f"train.port={port}", *FAST)
    assert proc.returncode == 0, proc.log
    assert "mode asynchronous" in proc.log
    history = json.loads((tmp_path / "async" / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["val_loss"])


def test_hdf5_source_and_partition_check(data, run_job, tmp_path):
    proc = run_job("train", "--data", data, "--model-dir", tmp_path / "h", "--rounds", "1", "--source", "hdf5",
                   "--preset", "tiny", "--set", "train.batch_size=64")
    assert proc.returncode == 1
    assert "hold no more rows than the batch size 64" in proc.log
    assert not (tmp_path / "h" / "model.keras").exists()


def test_size_mismatch_is_explained(data, run_job, tmp_path):
    proc = run_job("train", "--data", data, "--model-dir", tmp_path / "v", "--preset", "vgg16")
    assert proc.returncode == 1
    assert "preprocess with --set data.size=224" in proc.log


def test_validation_reports_the_colour_cast(trained):
    entry = trained["history_1"][0]
    for key in ("val_cast", "val_cast_gray", "val_cast_ratio"):
        assert entry[key] is not None and np.isfinite(entry[key]) and entry[key] >= 0, key
    assert entry["val_cast_ratio"] == pytest.approx(entry["val_cast"] / entry["val_cast_gray"])
    assert "colour cast" in trained["first"]


def test_validation_sums_score_the_colour_cast_at_the_output_stride():
    """Logits that decode to ab (20, 30) everywhere, against a truth tinted by (3, 4) and an exact one."""
    from colorspark.bins import gamut_centres
    from colorspark.training import mean_metrics
    from colorspark.training_tasks import validation_sums

    centre = int(np.flatnonzero((gamut_centres() == [20, 30]).all(axis=1))[0])
    logits = np.full((2, 4, 4, 313), -1e4, np.float32)
    logits[..., centre] = 0.0  # softmax puts all weight on one bin: the annealed mean is its centre exactly
    y = np.empty((2, 4, 4, 2), np.int8)
    y[0], y[1] = [23, 34], [20, 30]
    x = np.full((2, 16, 16, 1), 128.0, np.float32)
    settings = {"prior": np.full(313, 1 / 313), "temperature": 0.38}
    sums = validation_sums(logits, x, y, settings, lambda target, predicted: 0.0)
    assert sums["cast"] == pytest.approx(5.0)
    assert sums["cast_gray"] == pytest.approx(np.hypot(23, 34) + np.hypot(20, 30))
    means = mean_metrics(sums)
    assert means["val_cast"] == pytest.approx(2.5)
    assert means["val_cast_ratio"] == pytest.approx(5.0 / (np.hypot(23, 34) + np.hypot(20, 30)))


def _layer_weights(model_dir) -> dict:
    from colorspark.modeldir import load_model_dir

    model, _ = load_model_dir(model_dir)
    return {layer.name: layer.get_weights() for layer in model.layers}


def test_init_model_fine_tunes_with_frozen_blocks_and_a_fresh_optimizer(trained, data, run_job, tmp_path):
    proc = run_job("train", "--data", data, "--model-dir", tmp_path / "ft", "--rounds", "1",
                   "--init-model", trained["dir"], "--freeze-blocks", "2", *FAST)
    assert proc.returncode == 0, proc.log
    assert "starting from" in proc.log and "blocks conv1, conv2" in proc.log
    start, tuned = _layer_weights(trained["dir"]), _layer_weights(tmp_path / "ft")
    for name, weights in tuned.items():
        same = all(np.array_equal(a, b) for a, b in zip(weights, start[name]))
        assert same == name.startswith(("conv1_", "conv2_")) or not weights, name
    meta = json.loads((tmp_path / "ft" / "colorspark.json").read_text())
    source = json.loads((trained["dir"] / "colorspark.json").read_text())
    assert meta["init_model"]["sha256"] == source["model_sha256"] and meta["init_model"]["freeze_blocks"] == 2
    assert meta["settings"] == source["settings"] and meta["rounds_done"] == 1
    state = json.loads((tmp_path / "ft" / "checkpoints" / "round-0001" / "state.json").read_text())
    assert state["init_model"] == meta["init_model"]  # what a --resume without --init-model records again
    steps = {}
    for name, folder in (("fresh", trained["dir"]), ("tuned", tmp_path / "ft")):
        with np.load(folder / "checkpoints" / "round-0001" / "optimizer.npz") as state:
            steps[name] = int(state["arr_0"])  # Adam's step count, its first variable
    assert steps["tuned"] == steps["fresh"] > 0  # counted from this run's first batch, not from the 2-round run's


def test_init_model_refuses_a_changed_file_and_other_crop_sizes(trained, data, run_job, tmp_path):
    import shutil

    changed = tmp_path / "changed"
    shutil.copytree(trained["dir"], changed)
    meta = json.loads((changed / "colorspark.json").read_text())
    meta["model_sha256"] = "0" * 64
    (changed / "colorspark.json").write_text(json.dumps(meta))
    proc = run_job("train", "--data", data, "--model-dir", tmp_path / "a", "--rounds", "1", "--init-model", changed,
                   *FAST)
    assert proc.returncode == 1 and "does not match the SHA-256" in proc.log, proc.log
    meta["model_sha256"] = json.loads((trained["dir"] / "colorspark.json").read_text())["model_sha256"]
    meta["settings"]["input_size"] = 96
    (changed / "colorspark.json").write_text(json.dumps(meta))
    proc = run_job("train", "--data", data, "--model-dir", tmp_path / "b", "--rounds", "1", "--init-model", changed,
                   *FAST)
    assert proc.returncode == 1 and "preprocess with --set data.size=96" in proc.log, proc.log
    assert not (tmp_path / "a" / "model.keras").exists() and not (tmp_path / "b" / "model.keras").exists()


def test_freeze_blocks_without_init_model_is_a_usage_error(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_job", Path(__file__).parent.parent / "jobs" / "train.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    with pytest.raises(SystemExit) as exit_:
        job.main(["--data", "/tmp/d", "--model-dir", "/tmp/m", "--freeze-blocks", "2"])
    assert exit_.value.code == 2 and "--freeze-blocks needs --init-model" in capsys.readouterr().err


def test_a_resumed_fine_tuning_run_keeps_its_start_without_repeating_init_model(monkeypatch):
    from colorspark import training
    from colorspark.config import load as load_config

    start = {"uri": "file:///models/small", "sha256": "ab" * 32, "rounds_done": 13, "freeze_blocks": 0}
    monkeypatch.setattr(training, "latest_checkpoint", lambda model_dir: (3, None, {"init_model": start}, None, None))
    config = load_config()
    found = training.starting_point("file:///run", {"size": 16}, "file:///data", config, True, None)
    assert found["record"] == {"init_model": start} and found["initial"] is None
