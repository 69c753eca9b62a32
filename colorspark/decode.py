"""Turn untrusted image bytes into an H×W×3 uint8 RGB array, or a readable reason why not.

Pure functions, no Spark: the jobs call these once per file and record the
``DecodeError`` message in their results table, so one bad file never fails a task.
"""

from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["DecodeError", "SUPPORTED_FORMATS", "decode_image", "is_grayscale"]

# Only the formats the jobs' extension filter admits (jpg/jpeg, png, webp, tif/tiff,
# bmp, gif). Multi-picture camera JPEGs (MPO) still open: the JPEG opener returns
# them. Restricting Image.open also keeps exotic plugins (EPS shells out to
# Ghostscript) away from untrusted bytes.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP")

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_BOMB_MESSAGE = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+)")
# is_grayscale looks at this many pixels at a time so a colour image is detected
# after the first block and a huge gray one never needs a full-size temporary.
_GRAY_CHECK_BLOCK_PIXELS = 1 << 20


class DecodeError(ValueError):
    """Why a file could not be turned into pixels; str() is meant for a results table."""


def check_size(size: int, max_bytes: int) -> None:
    """Refuse an empty file, or one over the `max_bytes` limit, before any decoding: also used by a task that reads
    the file itself, so that it stops reading at the limit."""
    if size == 0:
        raise DecodeError("empty file (0 bytes)")
    if size > max_bytes:
        raise DecodeError(f"file too large: {size} bytes > limit {max_bytes}")


def decode_image(data: bytes, *, max_pixels: int, max_bytes: int, keep_gray: bool = False) -> np.ndarray:
    """Decode one image file's bytes to a writable H×W×3 uint8 RGB array.

    The first frame of animations is used, EXIF orientation is applied (the size is
    the displayed size), transparency is composited over white and every Pillow
    mode is reduced to 8-bit RGB. With ``keep_gray`` an opaque single-channel image
    (a gray JPEG, 16-bit gray PNG, ...) comes back as H×W uint8 instead: its three
    channels would be equal, and a caller that only needs its lightness skips
    making and checking them.  Every problem with the bytes, including any
    unexpected exception inside Pillow, is raised as ``DecodeError``; only invalid
    arguments (a caller bug) raise ``TypeError``/``ValueError``.  Truncated files
    fail here because the pixels are fully decoded, as long as the process keeps
    Pillow's default ``ImageFile.LOAD_TRUNCATED_IMAGES = False``.
    """
    _require_positive_int("max_pixels", max_pixels)
    _require_positive_int("max_bytes", max_bytes)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
    check_size(memoryview(data).nbytes, max_bytes)
    try:
        return _decode(data, max_pixels, keep_gray)
    except DecodeError:
        raise
    except Exception as exc:  # the contract: nothing but DecodeError leaves
        raise DecodeError(f"unexpected decoder failure: {_describe(exc)}") from exc


def is_grayscale(rgb: np.ndarray, tolerance: int = 2) -> bool:
    """True when R, G and B agree within ``tolerance`` at every pixel.

    The tolerance absorbs the ±1–2 chroma noise JPEG leaves in gray photos stored
    as RGB.  Works block-wise so colour images return early and no full-size
    temporary is allocated.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, np.integer)) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative int, got {tolerance!r}")
    arr = np.asarray(rgb)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1):
        return True
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 array, got shape {arr.shape}")
    rows = max(1, _GRAY_CHECK_BLOCK_PIXELS // max(1, arr.shape[1]))
    for top in range(0, arr.shape[0], rows):
        block = arr[top : top + rows]
        if not block.size:
            continue
        # Element-wise on channel views: ~10x faster than reducing over the short last axis.
        r, g, b = block[:, :, 0], block[:, :, 1], block[:, :, 2]
        spread = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
        if spread.max() > tolerance:
            return False
    return True


def _decode(data: bytes | bytearray | memoryview, max_pixels: int, keep_gray: bool) -> np.ndarray:
    try:
        im = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except UnidentifiedImageError:
        # Pillow's own message names a BytesIO object address: useless in a table.
        raise DecodeError("not an image: cannot identify image file format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large_from_pillow(exc, max_pixels) from None
    except Exception as exc:
        raise DecodeError(f"unreadable image header: {_describe(exc)}") from exc

    with im:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise DecodeError(f"image has no pixels: {width}x{height}")
        # Checked before load() so a tiny file declaring a huge canvas costs nothing.
        if width * height > max_pixels:
            raise DecodeError(
                f"image too large: {width * height} pixels ({width}x{height}) "
                f"> limit {max_pixels} (raise limits.max_pixels)"
            )
        try:
            im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_large_from_pillow(exc, max_pixels) from None
        except MemoryError:
            raise DecodeError(f"out of memory decoding a {width}x{height} image") from None
        except Exception as exc:
            raise DecodeError(f"truncated or corrupt image data: {_describe(exc)}") from exc
        try:
            ImageOps.exif_transpose(im, in_place=True)
        except Exception as exc:
            raise DecodeError(f"cannot apply EXIF orientation: {_describe(exc)}") from exc
        try:
            rgb = _to_rgb(im, keep_gray)
        except Exception as exc:
            raise DecodeError(f"cannot convert image mode {im.mode} to RGB: {_describe(exc)}") from exc
    if keep_gray and rgb.dtype == np.uint8 and rgb.ndim == 2:
        return rgb
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DecodeError(f"cannot convert image mode {im.mode} to RGB: got {rgb.dtype} {rgb.shape}")
    return rgb


def _to_rgb(im: Image.Image, keep_gray: bool) -> np.ndarray:
    """H×W×3 uint8, or with `keep_gray` H×W uint8 for an opaque single-channel image."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        # Pillow's own convert() clips these at 255, which turns 16-bit photos white.
        gray = _scale_to_uint8(np.asarray(im))
        return gray if keep_gray else np.repeat(gray[:, :, np.newaxis], 3, axis=2)
    if keep_gray and mode in ("L", "1") and "transparency" not in im.info:
        return np.array(im if mode == "L" else im.convert("L"))
    # "transparency" is a colour key (PNG tRNS) or a transparent palette index.
    if mode in _ALPHA_MODES or "transparency" in im.info:
        if mode == "La":
            im = im.convert("LA")
        return _over_white(np.asarray(im.convert("RGBA")))
    if mode == "RGB":
        return np.array(im)
    return np.array(im.convert("RGB"))


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map high-bit-depth gray to 0..255 by its nominal range, not by clipping."""
    if values.dtype.kind == "f":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(values.min()), float(values.max())
        if lo >= 0.0 and hi <= 1.0:  # the usual float convention
            return np.rint(values * 255.0).astype(np.uint8)
        if lo >= 0.0 and hi <= 255.0:
            return np.rint(values).astype(np.uint8)
        return _stretch(values, lo, hi)
    lo, hi = int(values.min()), int(values.max())
    if lo >= 0 and hi <= 0xFFFF:
        # 16-bit samples (Pillow widens them to "I" for some files): 65535 -> 255.
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return _stretch(values.astype(np.float64), lo, hi)


def _stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fallback for data with no nominal range (32-bit or signed): use its own range."""
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _over_white(rgba: np.ndarray) -> np.ndarray:
    """Composite over white because a transparent background is 'paper', not black."""
    alpha = rgba[:, :, 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[:, :, :3])
    a = alpha.astype(np.uint16)
    colour = rgba[:, :, :3].astype(np.uint16)
    return ((colour * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def _too_large_from_pillow(exc: Exception, max_pixels: int) -> DecodeError:
    """Reword Pillow's decompression-bomb guard, which fires inside Image.open itself."""
    match = _BOMB_MESSAGE.search(str(exc))
    if match is None:
        return DecodeError(f"image too large: {exc}")
    pixels, pillow_limit = int(match.group(1)), int(match.group(2))
    if pixels > max_pixels:
        return DecodeError(
            f"image too large: {pixels} pixels > limit {max_pixels} (raise limits.max_pixels)"
        )
    # Only reachable when max_pixels exceeds Pillow's process-wide guard.
    return DecodeError(
        f"image too large: {pixels} pixels > Pillow's decompression-bomb limit "
        f"{pillow_limit} (raise PIL.Image.MAX_IMAGE_PIXELS)"
    )


def _describe(exc: BaseException) -> str:
    """Pillow words its OSErrors for people ("image file is truncated"); name other classes."""
    text = str(exc)
    if not text:
        return type(exc).__name__
    return text if type(exc) is OSError else f"{type(exc).__name__}: {text}"


def _require_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
