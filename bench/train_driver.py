"""spark-submit driver of bench/train_bench.py: Elephas training rounds, timed after the SparkSession is up.

Phase "real": `colorspark.training.run` for --rounds rounds (the job body as shipped); its history gives each round's
Elephas fit time (fit_seconds) and the full round time (fit + validation + checkpoint).
Phase "instrumented": the same setup and the same Elephas SparkModel path (`training.elephas_model` +
`training._fit_quietly`) for --instr-rounds rounds, with Elephas's SparkWorker replaced by a subclass that does exactly
the same work but records where each task's time goes (model build/compile, weight fetch, data materialisation, the
Keras fit with its first step separated, delta computation), and with the driver's broadcast and averaging timed.
Not meant to be run by hand; see `bench/train_bench.py --help`.
"""

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sparkprobe  # noqa: E402
import numpy as np  # noqa: E402

from colorspark import config as config_mod  # noqa: E402
from colorspark import training  # noqa: E402
from colorspark.session import build_spark_session, setup_logging  # noqa: E402


def make_instrumented_worker():
    """Built inside a function so cloudpickle ships the class by value (bench/ is not on the executors' path)."""
    from elephas.worker import SparkWorker

    class InstrumentedSparkWorker(SparkWorker):
        def train(self, data_iterator):
            import os
            import time
            from itertools import tee

            import numpy as np
            from elephas.utils import subtract_params
            from elephas.worker import deserialize_optimizer, model_from_json

            pc, cpu = time.perf_counter, time.process_time
            rec = {"pid": os.getpid(), "t_start": time.time(), "env_intra": os.environ.get("TF_NUM_INTRAOP_THREADS")}
            c0 = cpu()
            a = pc()
            optimizer = deserialize_optimizer(self.master_optimizer)
            self.model = model_from_json(self.json, self.custom_objects)
            self.model.compile(optimizer=optimizer, loss=self.master_loss, metrics=self.master_metrics)
            b = pc()
            weights = self.parameters.value
            c = pc()
            self.model.set_weights(weights)
            d = pc()
            feature_iterator, label_iterator = tee(data_iterator, 2)
            x_train = np.asarray([x for x, y in feature_iterator])
            y_train = np.asarray([y for x, y in label_iterator])
            e = pc()
            weights_before_training = self.model.get_weights()
            import keras
            import tensorflow as tf

            batch_ends = []

            class Batches(keras.callbacks.Callback):
                def on_train_batch_end(self, batch, logs=None):
                    batch_ends.append(time.perf_counter())

            f = pc()
            c_fit0 = cpu()
            history = None
            if x_train.shape[0] > self.train_config.get("batch_size"):
                history = self.model.fit(x_train, y_train, callbacks=[Batches()], **self.train_config)
            g = pc()
            c_fit1 = cpu()
            weights_after_training = self.model.get_weights()
            deltas = subtract_params(weights_before_training, weights_after_training)
            h = pc()
            rec.update(build_compile_s=b - a, bcast_value_s=c - b, set_weights_s=d - c, data_s=e - d,
                       get_weights_s=f - e, fit_s=g - f, first_step_s=(batch_ends[0] - f) if batch_ends else None,
                       later_steps_s=(batch_ends[-1] - batch_ends[0]) if len(batch_ends) > 1 else None,
                       steps=len(batch_ends), deltas_s=h - g, rows=int(x_train.shape[0]),
                       fit_cpu_s=c_fit1 - c_fit0, task_cpu_s=cpu() - c0, t_end=time.time(),
                       intra=tf.config.threading.get_intra_op_parallelism_threads(),
                       inter=tf.config.threading.get_inter_op_parallelism_threads(),
                       x_bytes=int(x_train.nbytes), y_bytes=int(y_train.nbytes))
            hist = dict(history.history) if history else {}
            hist["_bench"] = rec
            yield [deltas, hist]

    return InstrumentedSparkWorker


def instrumented_rounds(spark, data_dir, model_dir, config, rounds):
    """`training.run` again, with Elephas's worker swapped for the instrumented one and the driver side of
    `SparkModel._fit` timed (only Elephas is patched, so this follows whatever colorspark.training does today)."""
    import elephas.spark_model as esm

    sc = spark.sparkContext
    marks = {"in_fit": False, "rounds": []}
    orig = {"worker": esm.SparkWorker, "avg": esm.average_and_subtract, "fit": esm.SparkModel._fit,
            "init": esm.SparkModel.__init__, "broadcast": sc.broadcast}

    def timed_init(self, *args, **kwargs):
        a = time.time()
        orig["init"](self, *args, **kwargs)
        marks["construct"] = (a, time.time())

    def timed_fit(self, rdd, **kwargs):
        rec = {"broadcasts": [], "averages": [], "construct_s": marks.get("construct", (0, 0))[1]
               - marks.get("construct", (0, 0))[0]}
        n_hist = len(self.training_histories)
        marks["in_fit"], marks["cur"] = True, rec
        a = time.time()
        try:
            return orig["fit"](self, rdd, **kwargs)
        finally:
            b = time.time()
            marks["in_fit"] = False
            rec.update(start=a, end=b, fit_s=b - a,
                       tasks=[h["_bench"] for h in self.training_histories[n_hist:] if h and "_bench" in h])
            marks["rounds"].append(rec)

    def timed_broadcast(value):
        a = time.time()
        bc = orig["broadcast"](value)
        if marks["in_fit"]:
            marks["cur"]["broadcasts"].append((a, time.time()))
            if "weights_bytes" not in marks:
                marks["weights_bytes"] = int(sum(np.asarray(w).nbytes for w in value))
                marks["weights_pickled_bytes"] = len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        return bc

    def timed_avg(base, deltas):
        a = time.time()
        out = orig["avg"](base, deltas)
        marks["cur"]["averages"].append((a, time.time()))
        return out

    esm.SparkWorker = make_instrumented_worker()
    esm.average_and_subtract = timed_avg
    esm.SparkModel._fit = timed_fit
    esm.SparkModel.__init__ = timed_init
    sc.broadcast = timed_broadcast
    try:
        cfg = {**config, "train": {**config["train"], "rounds": rounds}}
        _sparkprobe.set_phase(sc, "instrumented")
        a = time.time()
        training.run(spark, data_dir, model_dir, cfg)
        b = time.time()
        _sparkprobe.set_phase(sc, None)
    finally:
        esm.SparkWorker = orig["worker"]
        esm.average_and_subtract = orig["avg"]
        esm.SparkModel._fit = orig["fit"]
        esm.SparkModel.__init__ = orig["init"]
        sc.broadcast = orig["broadcast"]
    out = []
    history = json.loads((Path(model_dir) / "history.json").read_text())
    for r, rec in enumerate(marks["rounds"], 1):
        (b1s, b1e), (b2s, b2e) = rec["broadcasts"][0], rec["broadcasts"][-1]
        avs, ave = rec["averages"][0]
        out.append({"round": r, "start": rec["start"], "end": rec["end"], "construct_s": rec["construct_s"],
                    "fit_s": rec["fit_s"], "pre_broadcast_s": b1s - rec["start"], "broadcast_s": b1e - b1s,
                    "job_s": avs - b1e, "job_start": b1e, "job_end": avs, "average_s": ave - avs,
                    "post_s": rec["end"] - ave, "rebroadcast_s": (b2e - b2s) if len(rec["broadcasts"]) > 1 else 0.0,
                    "tasks": rec["tasks"], "samples": sum(t["rows"] for t in rec["tasks"]),
                    "round_s": history[r - 1]["seconds"] if r <= len(history) else None})
        print(f"[driver] instrumented round {r}: fit {rec['fit_s']:.2f} s", flush=True)
    return {"rounds": out, "sizes": [t["rows"] for t in out[0]["tasks"]] if out else [],
            "seconds": b - a, "weights_bytes": marks.get("weights_bytes", 0),
            "weights_pickled_bytes": marks.get("weights_pickled_bytes", 0)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--instr-rounds", type=int, default=2)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()
    setup_logging("bench-train")
    config = config_mod.load(None, args.overrides)
    config = config_mod.merge(config, {"train": {"rounds": args.rounds}}, "bench")
    t = time.time()
    spark = build_spark_session("bench-train")
    sc = spark.sparkContext
    session_s = time.time() - t
    _sparkprobe.install()
    result = {"session_s": session_s, "app_id": sc.applicationId, "config": config}
    try:
        if args.rounds:
            _sparkprobe.set_phase(sc, "real")
            a = time.time()
            meta = training.run(spark, args.data, args.model_dir, config)
            b = time.time()
            _sparkprobe.set_phase(sc, None)
            history = json.loads((Path(args.model_dir) / "history.json").read_text())
            result["real"] = {"start": a, "end": b, "seconds": b - a, "history": history,
                              "rounds_done": meta["rounds_done"]}
            print(f"[driver] training.run: {b - a:.1f} s, fit_seconds "
                  f"{[h['fit_seconds'] for h in history]}", flush=True)
        if args.instr_rounds:
            result["instrumented"] = instrumented_rounds(spark, args.data, args.model_dir + "-instrumented", config,
                                                         args.instr_rounds)
    finally:
        spark.stop()
    Path(args.result).write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
