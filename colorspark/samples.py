"""Training samples: augmented square crops of a photo, encoded compactly for storage.

A sample is the model input and its colour target at the network's output stride of 4:
  l    size×size uint8, L·2.55 (0..255 for L in 0..100); the model normalises to (L − 50) / 100 in the graph
  ab   (size/4)×(size/4)×2 int8, the crop's ab averaged over 4×4 cells (ab is low-frequency; this is the target)
  bins (size/4)×(size/4) int16, the hard bin of each ab target (for the prior and rebalanced scores)
Together 1.25·size² + … bytes instead of 313 floats per target pixel; soft encoding happens in the loss.
"""

from __future__ import annotations

import hashlib
import zlib

import numpy as np
from PIL import Image

from .bins import hard_bins
from .colorspace import rgb_to_lab

OUTPUT_STRIDE = 4
L_SCALE = 2.55  # stored/model input value per unit of L


def split_of(key: str, val_fraction: float) -> str:
    """'val' or 'train' from a hash of `key` (the path relative to the input root): stable across runs and machines."""
    bucket = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64
    return "val" if bucket < val_fraction else "train"


def crop_rng(key: str, seed: int) -> np.random.Generator:
    """Per-image random stream: the same crops for the same file and seed, whatever the partitioning."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def random_crops(rgb: np.ndarray, size: int, count: int, min_scale: float, flip: bool,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """`count` square crops resized to size×size: side a random fraction in [min_scale, 1] of the shorter side,
    random position, random horizontal flip. The first crop is always the full centre square, unflipped, so one crop
    per image is a deterministic view (what validation scores)."""
    h, w = rgb.shape[:2]
    image = Image.fromarray(rgb)
    short = min(h, w)
    crops = []
    for i in range(count):
        if i == 0:
            side = short
            top, left = (h - side) // 2, (w - side) // 2
        else:
            side = max(1, int(round(short * rng.uniform(min_scale, 1.0))))
            top = int(rng.integers(0, h - side + 1))
            left = int(rng.integers(0, w - side + 1))
        box = (left, top, left + side, top + side)
        crop = image.resize((size, size), Image.BILINEAR, box=box, reducing_gap=2.0)
        if flip and i > 0 and rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crops.append(np.asarray(crop))
    return crops


def downsample_ab(ab: np.ndarray, stride: int = OUTPUT_STRIDE) -> np.ndarray:
    """Mean of ab over stride×stride cells (H and W must be multiples of the stride)."""
    h, w = ab.shape[:2]
    return ab.reshape(h // stride, stride, w // stride, stride, 2).mean(axis=(1, 3))


def encode_crop(rgb: np.ndarray) -> dict:
    """Encode one size×size uint8 RGB crop into the compact sample arrays plus its maximum chroma."""
    lab = rgb_to_lab(rgb)
    l_code = np.clip(np.rint(lab[..., 0] * L_SCALE), 0, 255).astype(np.uint8)
    ab = np.clip(np.rint(downsample_ab(lab[..., 1:])), -128, 127).astype(np.int8)
    chroma = np.sqrt((ab.astype(np.float32) ** 2).sum(-1))
    return {"l": l_code, "ab": ab, "bins": hard_bins(ab).astype(np.int16), "max_chroma": float(chroma.max())}


def l_code_to_input(l_code: np.ndarray) -> np.ndarray:
    """Stored L codes -> the model's input tensor layout (H×W×1 float32)."""
    return l_code.astype(np.float32)[..., None]
