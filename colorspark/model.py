"""The colorization network, built from a block specification, and its presets.

The layout follows Zhang et al.'s network (itself VGG16-shaped): five VGG blocks of 2-2-3-3-3 convolutions with ReLU
and a batch norm closing each block, stride-2 at the end of the first three (1/8 resolution), the last two VGG-width
blocks dilated, one more block, a transposed convolution back to 1/4, and a 1×1 convolution to Q = 313 logits per
output pixel. Widths, depths, dilation and input size are config values; presets only name good combinations.
Optional channel dropout (`model.dropout`) regularises a network that has begun to memorise its photos.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .bins import gamut_centres

PRESETS = {
    # trains in seconds: the demo and the tests
    "tiny": {"base_filters": 4, "depth": [1, 1, 1, 1, 1], "dilation": 2, "input_size": 64},
    # the CPU default: a 2-core machine trains it in well under an hour
    "small": {"base_filters": 16, "depth": [2, 2, 3, 3, 3], "dilation": 2, "input_size": 64},
    # VGG16 widths (64-128-256-512-512), for clusters and GPUs
    "vgg16": {"base_filters": 64, "depth": [2, 2, 3, 3, 3], "dilation": 2, "input_size": 224},
}


@dataclass(frozen=True)
class Block:
    """`convs` 3×3 convolutions of `filters` channels; the last has `stride`; all share `dilation`.

    `transpose` makes the first convolution a stride-2 transposed convolution (the upsampling block).
    """
    name: str
    filters: int
    convs: int
    stride: int = 1
    dilation: int = 1
    transpose: bool = False


def model_settings(config: dict) -> dict:
    """The preset named in config['train']['preset'] with any non-empty [model] values laid over it."""
    settings = dict(PRESETS[config["train"]["preset"]])
    for key, value in config["model"].items():
        if value:
            settings[key] = value
    settings["preset"] = config["train"]["preset"]
    return settings


def block_spec(base_filters: int, depth: list[int], dilation: int) -> list[Block]:
    """The network as data: VGG blocks 1-5 (down to 1/8), Zhang's conv6/conv7, and the upsampling conv8."""
    b, d = base_filters, depth
    return [
        Block("conv1", b, d[0], stride=2),
        Block("conv2", 2 * b, d[1], stride=2),
        Block("conv3", 4 * b, d[2], stride=2),
        Block("conv4", 8 * b, d[3]),
        Block("conv5", 8 * b, d[4], dilation=dilation),
        Block("conv6", 8 * b, d[4], dilation=dilation),
        Block("conv7", 8 * b, d[3]),
        Block("conv8", 4 * b, d[2], transpose=True),
    ]


def build_model(settings: dict):
    """A Keras model: input L·2.55 (size×size×1, 0..255), output 313 logits at 1/4 of the size.

    `input_size` is both the training crop size and what colorize resizes every image to.
    """
    from .runtime import import_tensorflow

    import_tensorflow()
    import keras
    from keras import layers

    specs = block_spec(settings["base_filters"], settings["depth"], settings["dilation"])
    size = settings["input_size"]
    inputs = keras.Input(shape=(size, size, 1), name="l_code")
    # (L − 50) / 100 from the stored code L·2.55: x/255 − 0.5
    x = layers.Rescaling(1.0 / 255.0, offset=-0.5, name="normalise_l")(inputs)
    for block in specs:
        for i in range(block.convs):
            last = i == block.convs - 1
            if block.transpose and i == 0:
                x = layers.Conv2DTranspose(block.filters, 4, strides=2, padding="same", activation="relu",
                                           name=f"{block.name}_up")(x)
                continue
            x = layers.Conv2D(block.filters, 3, strides=block.stride if last else 1, padding="same",
                              dilation_rate=block.dilation, activation="relu", name=f"{block.name}_{i + 1}")(x)
        x = layers.BatchNormalization(name=f"{block.name}_bn")(x)
        if settings.get("dropout") and block is not specs[-1]:
            # whole feature maps, as neighbouring pixels of one map are too alike for pixel dropout to regularise
            x = layers.SpatialDropout2D(settings["dropout"], name=f"{block.name}_dropout")(x)
    logits = layers.Conv2D(len(gamut_centres()), 1, name="ab_logits")(x)
    return keras.Model(inputs, logits, name=f"colorspark_{settings.get('preset', 'custom')}")


def describe(settings: dict) -> list[dict]:
    """The block specification as plain dicts (for colorspark.json and the model card)."""
    return [asdict(b) for b in block_spec(settings["base_filters"], settings["depth"], settings["dilation"])]


def any_size_architecture(architecture: str) -> str:
    """A model's JSON architecture with its input's height and width left free.

    Every layer is convolutional, so the trained weights apply at any input size that is a multiple of the
    network's stride; only the input layer pins the training size. Colorize builds this variant on the executors so
    it can render at a size other than the training crop's.
    """
    config = json.loads(architecture)

    def free(node):
        if isinstance(node, dict):
            if node.get("class_name") == "InputLayer":
                shape = node["config"]["batch_shape"]
                node["config"]["batch_shape"] = [shape[0], None, None, *shape[3:]]
            for value in node.values():
                free(value)
        elif isinstance(node, list):
            for value in node:
                free(value)

    free(config)
    return json.dumps(config)
