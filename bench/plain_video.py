#!/usr/bin/env python
"""The plain reference of `bench/video_bench.py speed`: colorizing videos as a script, no Spark, no colorspark.

For each file of --list: PyAV decodes the frames (RGB), scikit-image's rgb2lab gives L, Pillow resizes L to the
model's input, Keras predicts in batches of --batch, the annealed mean over the bin centres at the model's
temperature (from its colorspark.json), Pillow resizes ab up to the frame's size (bilinear), scikit-image's lab2rgb
recombines it with the frame's L, and PyAV encodes H.264 (libx264, preset veryfast, CRF 18, the source's frame
rate; 4:4:4 for odd frame sizes, which 4:2:0 cannot hold) into OUT/<name>.mp4. Frame by frame, no audio.
TensorFlow gets one thread. Prints one JSON line at the end.

The benchmark runs two of these over the two halves of the clips. Not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--list", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=8)
    args = p.parse_args()
    started = time.time()
    import warnings

    import av
    import keras
    import numpy as np
    import tensorflow as tf
    from PIL import Image
    from skimage.color import lab2rgb, rgb2lab

    warnings.filterwarnings("ignore", message="Conversion from CIE-LAB")
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    meta = json.loads((Path(args.model) / "colorspark.json").read_text())
    model = keras.models.load_model(Path(args.model) / "model.keras", compile=False)
    centres, temperature, size = np.asarray(meta["centres"], np.float32), meta["temperature"], meta["input_size"]
    predict_seconds, frames = 0.0, 0

    def resize(channel, width, height):
        return np.asarray(Image.fromarray(channel.astype(np.float32), mode="F").resize((width, height),
                                                                                     Image.BILINEAR))

    def finish(batch, stream, out):
        nonlocal predict_seconds, frames
        tick = time.perf_counter()
        logits = model.predict_on_batch(np.stack([x for _, x in batch])[..., None])
        predict_seconds += time.perf_counter() - tick
        scaled = logits / temperature
        weights = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
        weights /= weights.sum(axis=-1, keepdims=True)
        for (lightness, _), ab in zip(batch, weights @ centres):
            height, width = lightness.shape
            ab_full = np.dstack([resize(ab[..., c], width, height) for c in range(2)])
            rgb = (np.clip(lab2rgb(np.dstack([lightness, ab_full])), 0, 1) * 255 + 0.5).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            frames += 1

    for line in Path(args.list).read_text().splitlines():
        source = Path(line)
        with av.open(str(source)) as container, av.open(str(Path(args.out) / (source.stem + ".mp4")), "w") as out:
            video = container.streams.video[0]
            stream = out.add_stream("libx264", rate=video.average_rate)
            stream.width, stream.height = video.width, video.height
            stream.pix_fmt = "yuv420p" if video.width % 2 == 0 and video.height % 2 == 0 else "yuv444p"  # 720×405
            stream.options = {"preset": "veryfast", "crf": "18"}
            batch = []
            for frame in container.decode(video):
                lightness = rgb2lab(frame.to_ndarray(format="rgb24"))[..., 0]
                batch.append((lightness, resize(lightness, size, size) * 2.55))
                if len(batch) == args.batch:
                    finish(batch, stream, out)
                    batch = []
            if batch:
                finish(batch, stream, out)
            out.mux(stream.encode(None))
    print(json.dumps({"frames": frames, "seconds": time.time() - started, "predict_seconds": predict_seconds}))


if __name__ == "__main__":
    main()
