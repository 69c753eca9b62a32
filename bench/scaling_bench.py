#!/usr/bin/env python
"""Statistical efficiency of Elephas model averaging: validation loss against samples seen, from 1 to 32 workers.

W workers are W training partitions on local[2]: a round is slower with many of them, but what is measured is how
far the model gets per sample, which depends on W, on how often the weights are averaged (`train.sync_every`) and on
whether the optimizer's state is averaged and carried on (`train.optimizer_state`), not on the cores. Every run
trains the same preset on the same preprocessed photos (../shared/data: photos and corpus) for the same rounds, with
the same learning-rate schedule, in a Spark application of its own (bench/scaling_driver.py), so that no run inherits
another's Python workers; each round is one pass over the training crops, then validation on the same
validation crops. The reference is W = 1 with the state carried: one uninterrupted Adam over the rows, which is what
a plain `model.fit` does (tests/test_averaging.py checks that this path gives a plain Adam's weights).

Runs are given as W:SYNC:STATE[:SCALING][:mM][:wuN] (SYNC in batches per worker, 0 = once per epoch as Elephas does
it; STATE averaged or reset, reset being Elephas's own behaviour; SCALING the workers' learning-rate rule
`train.lr_scaling`, none by default, which keeps the schedule the same for every W; mM the block momentum on the
averaged update, `train.outer_momentum` = M, e.g. m0.5, 0 by default; wuN the warm-up of the scaled rate over the
first N rounds, `train.warmup_rounds` = N, e.g. wu1, 0 by default). The optional tokens may come in any order, e.g.
8:1:averaged:linear:m0.5:wu1. A run's name spells out what differs from the defaults
(W8-sync1-averaged-lrlinear-m0.5-wu1); --keep matches runs by name, so runs that differ in momentum or warm-up are
different runs, and the table and the plot's legend show them by that name.

Writes a table and docs/images/scaling.png, and its section of BENCHMARKS.md unless --no-md.

Example:     .venv/bin/python bench/scaling_bench.py
Quick check: .venv/bin/python bench/scaling_bench.py --runs 1:0:averaged,4:2:averaged --rounds 2 --images 60 \\
                 --no-wait --no-md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402

KEY = "scaling"
# the reference (W = 1: plain fit) and Elephas's own scheme at W = 1; then 8 workers (the target's W) with shorter sync
# periods and the learning-rate rules; then Elephas's scheme (per-epoch averages, optimizer reset) and the carried
# state across W; then the linear rate across W
DEFAULT_RUNS = ("1:0:averaged,1:0:reset,8:1:averaged:sqrt,8:4:averaged:sqrt,8:1:averaged:linear,8:4:averaged:linear,"
                "8:16:averaged:linear,8:1:averaged,8:4:averaged,8:0:averaged,8:0:reset,2:0:reset,2:0:averaged,"
                "2:4:averaged:linear,4:0:reset,16:0:reset,32:0:reset,32:0:averaged,32:1:averaged:linear,"
                "2:0:averaged:linear,8:0:averaged:linear,4:4:averaged:linear,16:4:averaged:linear,32:4:averaged:linear")
PLOT = C.ROOT / "docs" / "images" / "scaling.png"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default=DEFAULT_RUNS,
                   help="comma-separated W:SYNC:STATE[:SCALING][:mM][:wuN] (default: the full plan)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--rounds", type=int, default=6, help="rounds of one pass over the training crops (default 6)")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--schedule", default="cosine", choices=["constant", "cosine"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=1, help="train.seed of every run: initial weights and row order "
                   "(default 1; another seed repeats the plan to see the noise)")
    p.add_argument("--crops", type=int, default=4, help="data.crops of the preprocessed dataset (default 4)")
    p.add_argument("--images", type=int, default=0, help="use only this many photos (0 = all; for quick checks)")
    p.add_argument("--input", default=str(C.PHOTOS.parent), help="photos to preprocess (default ../shared/data)")
    p.add_argument("--target-workers", type=int, default=8, help="W whose gap to W = 1 the target is about")
    p.add_argument("--workdir", default="/tmp/colorspark-bench/scaling")
    p.add_argument("--master", default="local[2]")
    C.machine_args(p, max_load=1.0, max_wait=3600)
    p.add_argument("--keep", action="store_true",
                   help="reuse the runs of the last result.json in --workdir made with the same recipe (all options "
                        "but --runs) and train only the runs it lacks")
    return p.parse_args(argv)


RECIPE_KEYS = ("preset", "rounds", "learning_rate", "schedule", "batch_size", "seed", "crops", "images", "input",
               "master")
RECIPE_DEFAULTS = {"seed": 1}  # recipe keys added later: what the runs made before them used


def kept_runs(args, work: Path) -> list[dict]:
    """Runs of an earlier invocation with the same recipe (--keep), else none."""
    previous = work / "result.json"
    if not args.keep or not previous.is_file():
        return []
    earlier = json.loads(previous.read_text())
    if any(earlier["args"].get(k, RECIPE_DEFAULTS.get(k)) != getattr(args, k) for k in RECIPE_KEYS):
        C.say("[bench] --keep: the earlier result.json has another recipe; training every run")
        return []
    return [{**r, "measured": r.get("measured", earlier["machine"]["date"])} for r in earlier["runs"]]


SCALINGS = ("none", "sqrt", "linear")


def parse_runs(text: str) -> list[dict]:
    runs = []
    for spec in (s.strip() for s in text.split(",") if s.strip()):
        workers, sync, state, *options = spec.split(":")
        run = {"workers": int(workers), "sync_every": int(sync), "optimizer_state": state, "lr_scaling": "none",
               "outer_momentum": 0.0, "warmup_rounds": 0}
        for token in options:
            if token in SCALINGS:
                run["lr_scaling"] = token
            elif token.startswith("wu") and token[2:].isdigit():
                run["warmup_rounds"] = int(token[2:])
            elif token.startswith("m") and _is_number(token[1:]):
                run["outer_momentum"] = float(token[1:])
            else:
                raise SystemExit(f"run {spec!r}: {token!r} is not a learning-rate rule ({', '.join(SCALINGS)}), "
                                 "mM (outer momentum, e.g. m0.5) or wuN (warm-up rounds, e.g. wu1)")
        runs.append({"name": run_name(run), **run})
    return runs


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def run_name(run: dict) -> str:
    """W{workers}-sync{N}-{state}, then -lr{rule}, -m{momentum}, -wu{rounds} where they differ from the defaults (so
    the names of runs made before momentum and warm-up existed still match theirs, for --keep)."""
    return (f"W{run['workers']}-sync{run['sync_every']}-{run['optimizer_state']}"
            + (f"-lr{run['lr_scaling']}" if run["lr_scaling"] != "none" else "")
            + (f"-m{run['outer_momentum']:g}" if run.get("outer_momentum") else "")
            + (f"-wu{run['warmup_rounds']}" if run.get("warmup_rounds") else ""))


def check_settings(args, runs: list[dict]) -> None:
    """Refuse a run whose settings the train job would refuse, before any run has spent its minutes."""
    from colorspark.config import ConfigError, load

    for run in runs:
        try:
            load(None, overrides(args, run))
        except ConfigError as exc:
            raise SystemExit(f"run {run['name']}: {exc}") from None


def prepare_data(args, work: Path, zip_path: Path) -> Path:
    source = Path(args.input)
    if args.images:
        source = work / f"photos-{args.images}"
        C.replicate(source, args.images, subdirs=1, log=C.say)
    return C.preprocessed(source, work / f"data-c{args.crops}-n{args.images or 'all'}", args.crops, work=work,
                          master=args.master, zip_path=zip_path, extra_args=("--format", "parquet"))


def overrides(args, run: dict) -> list[str]:
    return [f"train.preset={args.preset}", f"train.rounds={args.rounds}", f"train.learning_rate={args.learning_rate}",
            f"train.lr_schedule={args.schedule}", f"train.batch_size={args.batch_size}",
            f"train.workers={run['workers']}", f"train.sync_every={run['sync_every']}",
            f"train.optimizer_state={run['optimizer_state']}", f"train.lr_scaling={run['lr_scaling']}",
            f"train.outer_momentum={run['outer_momentum']}", f"train.warmup_rounds={run['warmup_rounds']}",
            f"train.seed={args.seed}", "train.max_val_rows=100000"]


def _is_reference(run: dict) -> bool:
    return (run["workers"] == 1 and run["optimizer_state"] == "averaged" and run.get("lr_scaling", "none") == "none"
            and not run.get("outer_momentum") and not run.get("warmup_rounds"))


def _reference(runs: list[dict]) -> dict:
    return next(r for r in runs if _is_reference(r))


# --- figures ----------------------------------------------------------------------------------------------------------

def curve(run: dict) -> list[dict]:
    seen = 0
    points = []
    for h in run["history"]:
        seen += h["samples"]
        points.append({"samples": seen, "val_loss": h["val_loss"], "auc_rebal": h["val_auc_rebal"],
                       "auc_rebal_gray": h["val_auc_rebal_gray"]})
    return points


def loss_gaps(run: dict, reference: dict) -> list[float]:
    """Per round: the run's validation loss over the reference's at the same samples, minus 1."""
    return [p["val_loss"] / r["val_loss"] - 1 for p, r in zip(curve(run), curve(reference))]


def time_split(run: dict) -> dict:
    """Mean seconds per round: the fit's wall time, and what of it is training (the tasks' train_on_batch time
    spread over the cores that ran them) against overhead (everything else: task set-up incl. model builds, reading
    the window, Spark's job and task start, the driver's broadcast and averaging)."""
    history = run["history"]
    slots = min(run["workers"], 2)
    n = len(history)
    fit = sum(h["fit_seconds"] for h in history) / n
    train = sum(h["train_seconds"] for h in history) / n / slots
    return {"fit": fit, "train": train, "overhead": fit - train, "syncs": history[0]["syncs"],
            "overhead_per_sync": (fit - train) / history[0]["syncs"],
            "setup": sum(h["setup_seconds"] for h in history) / n / slots,
            "read": sum(h["read_seconds"] for h in history) / n / slots,
            "driver": sum(h["driver_seconds"] for h in history) / n,
            "builds": sum(h["model_builds"] for h in history)}


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.2))
    colours = plt.get_cmap("viridis")
    for run in runs:
        points = curve(run)
        scaling = run.get("lr_scaling", "none")
        style = ":" if run["optimizer_state"] == "reset" else {"none": "--", "sqrt": "-.", "linear": "-"}[scaling]
        marker = {0: "o", 1: "^"}.get(run["sync_every"], "s")
        colour = "black" if run["workers"] == 1 else colours(math.log2(run["workers"]) / 5.5)
        for ax, key in zip(axes, ("val_loss", "auc_rebal")):
            ax.plot([p["samples"] for p in points], [p[key] for p in points], style, marker=marker, markersize=3,
                    color=colour, label=run["name"], linewidth=2.5 if run["workers"] == 1 else 1.2)
    gray = curve(runs[0])[0]["auc_rebal_gray"]
    axes[1].axhline(gray, color="gray", linestyle="--", label="gray baseline")
    axes[0].set_ylabel("validation loss")
    axes[1].set_ylabel("rebalanced AuC (validation)")
    for ax in axes:
        ax.set_xlabel("training samples seen")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle("Elephas model averaging. Colour: W workers (black: 1). Line: optimizer reset (dotted), averaged at "
                 "the same rate (dashed),\nrate × W (solid) or × √W (dash-dot). Marker: averaged once per pass (o), "
                 "every batch (^), every N batches (s). Names: -m outer momentum, -wu warm-up rounds", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def render_md(args, info, idle, cmd, manifest, runs: list[dict]) -> str:
    reference = _reference(runs)
    lines = ["## 2b. Training at scale: Elephas model averaging, 1 to 32 workers (`bench/scaling_bench.py`)\n",
             C.machine_block(info, idle, cmd),
             f"- data: jobs/preprocess.py on `{args.input}` ({manifest['inputs']} photos, data.crops={args.crops}, "
             f"64 px): {manifest['train_crops']} training crops, {manifest['val_crops']} validation crops; colourful "
             f"ones are trained on and scored\n"
             f"- every run: preset `{args.preset}`, {args.rounds} rounds of one pass each, batch {args.batch_size}, "
             f"Adam, learning rate {args.learning_rate} ({args.schedule} schedule over the rounds), seed {args.seed}, "
             f"on `{args.master}`; W workers = W training partitions; reference: W = 1 with the optimizer state "
             f"carried (one uninterrupted Adam, i.e. plain `fit`)\n",
             f"- runs measured: {', '.join(sorted({r.get('measured', info['date']) for r in runs}))} (`--keep` reuses "
             f"the runs of an earlier invocation with the same recipe)\n"]
    header = ["run (W, sync every N batches, optimizer state; -lr rate rule, -m outer momentum, -wu warm-up rounds)"] \
        + [f"{p['samples']:,}" for p in curve(reference)] + ["final gap to W=1", "rebalanced AuC, last (gray)"]
    rows = []
    for run in runs:
        gaps = loss_gaps(run, reference)
        points = curve(run)
        rows.append([f"`{run['name']}`"] + [f"{p['val_loss']:.3f}" for p in points]
                    + [f"{gaps[-1]:+.1%}", f"{points[-1]['auc_rebal']:.3f} ({points[-1]['auc_rebal_gray']:.3f})"])
    lines.append("### Validation loss after each round, by samples seen\n")
    lines.append(C.md_table(header, rows))
    lines.append(f"\n![validation loss and rebalanced AuC against samples seen](docs/images/{PLOT.name})\n")
    lines.append("### Time per round: training against overhead (means over the rounds)\n")
    split_rows = []
    for run in runs:
        t = time_split(run)
        split_rows.append([f"`{run['name']}`", t["syncs"], f"{t['fit']:.1f}", f"{t['train']:.1f}",
                           f"{t['overhead']:.1f}", f"{t['overhead_per_sync'] * 1000:.0f} ms", f"{t['setup']:.2f}",
                           f"{t['read']:.2f}", f"{t['driver']:.2f}", t["builds"]])
    lines.append(C.md_table(["run", "syncs per round", "fit s", "training s", "overhead s", "overhead per sync",
                             "of which task set-up s", "window read s", "driver broadcast + averaging s",
                             "model builds (all rounds)"], split_rows))
    lines.append("\nTraining s = the tasks' train_on_batch seconds over the cores (min(W, 2)); overhead = fit − "
                 "training: Spark's job and task start, the weights' broadcast and collection, averaging, the "
                 "tasks' set-up (model build once per Python worker, weights and optimizer state set per sync) and "
                 "reading their window from the cached partition.\n")
    targets = [r for r in runs if r["workers"] == args.target_workers and r["optimizer_state"] == "averaged"]
    if targets:
        best = min(targets, key=lambda r: loss_gaps(r, reference)[-1])
        gap = loss_gaps(best, reference)[-1]
        lines.append(f"**Target ({args.target_workers} workers within 5 % of single-process fit's validation loss at "
                     f"the same samples): {'met' if gap <= 0.05 else 'NOT met'}** — `{best['name']}` ends "
                     f"{gap:+.1%} from W = 1 after {curve(best)[-1]['samples']:,} samples.\n")
    return "\n".join(lines)


def main():
    args = parse_args()
    runs = parse_runs(args.runs)
    if not any(_is_reference(r) for r in runs):
        runs.insert(0, parse_runs("1:0:averaged")[0])
    check_settings(args, runs)
    work, idle, info, cmd, zip_path = C.start_bench(args)
    data = prepare_data(args, work, zip_path)
    manifest = json.loads((data / "manifest.json").read_text())
    kept = {r["name"]: r for r in kept_runs(args, work)}
    for run in runs:
        if run["name"] in kept:
            continue
        plan = work / f"run-{run['name']}.json"
        C.write_json(plan, [{**run, "overrides": overrides(args, run)}])
        trained, _, cpu, seconds = C.driver_phase(C.BENCH / "scaling_driver.py",
                                                  ["--data", str(data), "--work", str(work), "--runs", str(plan)],
                                                  work=work, tag=f"-{run['name']}", master=args.master,
                                                  zip_path=zip_path)
        C.say(f"[bench] {run['name']}: {seconds:.0f} s (other processes: {cpu['foreign_cores']:.2f} cores)")
        kept[run["name"]] = {**trained[0], "measured": C.machine_info()["date"], "foreign_cores": cpu["foreign_cores"]}
        C.write_json(work / "result.json", {"args": vars(args), "machine": info, "idle": idle,
                                            "runs": list(kept.values())})
    result = [kept[r["name"]] for r in runs]
    reference = _reference(result)
    for run in result:
        C.say(f"[bench] {run['name']}: val loss {[round(p['val_loss'], 3) for p in curve(run)]}, final gap "
              f"{loss_gaps(run, reference)[-1]:+.1%}, {time_split(run)['overhead']:.1f} s overhead per round")
    if not args.no_md:
        plot(result, PLOT)
        C.md_update(KEY, render_md(args, info, idle, cmd, manifest, result))
        C.say(f"[bench] updated {C.BENCHMARKS_MD} and {PLOT}")


if __name__ == "__main__":
    main()
