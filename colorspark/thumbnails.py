"""Thumbnails for the report, made on the executors.

Each task shrinks its own input, colorized and original images while they are
still in memory, so only a few kilobytes per photo travel back to the driver
for the HTML report instead of full-size pixels.  This module is kept apart
from `colorspark.report` (which runs on the driver only) so the executor code
depends on nothing but numpy and Pillow.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["make_thumbnail"]


def make_thumbnail(rgb: np.ndarray, max_side: int = 160, quality: int = 80) -> bytes:
    """JPEG bytes of an 8-bit RGB (or gray H×W) image, longest side ≤ max_side.

    Small JPEGs keep the self-contained report light; images already small
    enough are not upscaled.
    """
    img = np.asarray(rgb)
    if img.dtype != np.uint8:
        raise TypeError(f"thumbnail input must be uint8, got dtype {img.dtype}")
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] == 3)):
        raise ValueError(f"thumbnail input must be (H, W) or (H, W, 3), got {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError("thumbnail input has no pixels")
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    pil = Image.fromarray(np.ascontiguousarray(img))
    # Box-reduce by a whole factor to within 1× of the target, then Lanczos: for report thumbnails this looks the
    # same as Lanczos all the way and costs a third; Huffman optimisation would cost more than the bytes it saves.
    pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=1.0)
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
