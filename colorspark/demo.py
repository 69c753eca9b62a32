"""The demo (`./build.sh demo`, `colorspark demo`): its inputs, made from the photos that ship inside scikit-image
(nothing is downloaded), and its three jobs.

    python -m colorspark.demo DIR

writes DIR/colour (colour photos: the demo preprocesses them and trains the tiny preset on them), and the colorize
inputs: DIR/colorize/gray-versions (the same photos turned gray), DIR/colorize/grayscale (photos that are gray to
begin with: camera, coins, moon) and DIR/colorize/with-truth (the colour photos, colorized from their L alone and
scored against their own colours).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

COLOUR = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg"]
GRAYSCALE = ["camera.png", "coins.png", "moon.png"]


def _sample(name: str) -> Image.Image:
    import skimage

    return Image.open(Path(skimage.__file__).parent / "data" / name)


def make_demo_inputs(root: Path) -> None:
    for folder in ("colour", "colorize/gray-versions", "colorize/grayscale", "colorize/with-truth"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name in COLOUR:
        photo = _sample(name).convert("RGB")
        stem = Path(name).stem
        photo.save(root / "colour" / f"{stem}.png")
        photo.save(root / "colorize" / "with-truth" / f"{stem}.jpg", quality=92)
        photo.convert("L").save(root / "colorize" / "gray-versions" / f"{stem}.png")
    for name in GRAYSCALE:
        gray = _sample(name).convert("L")
        assert np.asarray(gray).ndim == 2
        gray.save(root / "colorize" / "grayscale" / f"{Path(name).stem}.png")


def demo_steps(out: Path) -> list[tuple[str, list[str], str]]:
    """(job, its options, what it shows) of each step of the demo writing into `out`."""
    inputs = out / "inputs"
    return [
        ("preprocess", ["--input", str(inputs / "colour"), "--output", str(out / "data"), "--set", "data.crops=8"],
         f"the colour sample photos -> {out / 'data'}"),
        ("train", ["--data", str(out / "data"), "--model-dir", str(out / "model-tiny"), "--preset", "tiny",
                   "--rounds", "1", "--set", "train.batch_size=4"],
         "the tiny preset for one round (shows the training path; colorize uses the shipped model)"),
        ("colorize", ["--input", str(inputs / "colorize"), "--output", str(out / "colorized")],
         "gray versions of the samples, real grayscale photos, and colour originals (scored)"),
    ]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m colorspark.demo DIR")
    make_demo_inputs(Path(sys.argv[1]))
