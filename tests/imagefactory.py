"""Build a small folder of good and bad image files with known expected outcomes.

Shared by the decoder unit tests and the Spark job integration tests, so every
input the jobs must account for (odd modes, odd names, broken files, bombs) is
generated on the fly instead of checked in or downloaded.  Every file carries an
extension the jobs' filter admits (jpg, jpeg, png, webp, tif, tiff, bmp, gif).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "ANIMATED_FRAME_COLOURS",
    "BAND_HEIGHT",
    "BAND_WIDTH",
    "BOMB_SIZE",
    "EXIF_MARKER_COLOUR",
    "EXIF_MARKER_SIZE",
    "EXIF_STORED_SIZE",
    "Expect",
    "GRAY16_BANDS",
    "LA_BANDS",
    "ONE_PIXEL",
    "PHOTO_SEED",
    "PHOTO_SIZE",
    "RGBA_BANDS",
    "bands",
    "bomb_png_bytes",
    "colour_photo",
    "make_image_zoo",
    "write_image",
    "zoo_expectations",
]

PHOTO_SIZE = (96, 64)  # (width, height) of colour_photo.jpg, cmyk.jpg and truncated.jpg
PHOTO_SEED = 7

# Flat-colour bands, BAND_WIDTH px wide each, so tests can sample them exactly.
BAND_WIDTH = 8
BAND_HEIGHT = 8
GRAY16_BANDS = (0, 4112, 32896, 65535)  # 16-bit values; /257 gives 0, 16, 128, 255
RGBA_BANDS = ((220, 30, 30, 255), (0, 0, 0, 128), (0, 0, 0, 0))  # opaque, half, invisible black
LA_BANDS = ((60, 255), (0, 128), (0, 0))

ANIMATED_FRAME_COLOURS = ((230, 20, 20), (20, 20, 230))

EXIF_STORED_SIZE = (40, 24)  # as stored; orientation 6 displays it as 24x40
EXIF_MARKER_SIZE = 8  # red square in the stored top-left, i.e. the displayed top-right
EXIF_MARKER_COLOUR = (255, 0, 0)

BOMB_SIZE = (40000, 40000)
ONE_PIXEL = (10, 200, 30)


@dataclass(frozen=True)
class Expect:
    """Expected decode outcome: the displayed size, or a lowercase substring of the error."""

    ok: bool
    width: int | None = None
    height: int | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.ok and (self.width is None or self.height is None or self.reason is not None):
            raise ValueError(f"a good image needs width and height and no reason: {self}")
        if not self.ok and (not self.reason or self.width is not None or self.height is not None):
            raise ValueError(f"a bad image needs a reason and no size: {self}")

    @classmethod
    def good(cls, width: int, height: int) -> Expect:
        return cls(ok=True, width=width, height=height)

    @classmethod
    def bad(cls, reason: str) -> Expect:
        return cls(ok=False, reason=reason.lower())


def colour_photo(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A smooth, colourful H×W×3 uint8 'landscape': sky gradient, green ground, red sun.

    Smooth so JPEG round trips stay close, colourful so it is never grayscale,
    seeded so different seeds give different but reproducible pictures.
    """
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, h)[:, np.newaxis, np.newaxis]
    x = np.linspace(0.0, 1.0, w)[np.newaxis, :, np.newaxis]
    jitter = rng.uniform(-15.0, 15.0, size=3)

    sky_top = np.array([60.0, 110.0, 210.0]) + jitter
    sky_low = np.array([165.0, 200.0, 240.0]) + jitter
    horizon = rng.uniform(0.45, 0.65)
    sky = sky_top + (sky_low - sky_top) * np.clip(y / horizon, 0.0, 1.0)

    grass_near = np.array([40.0, 110.0, 35.0]) + jitter
    grass_far = np.array([95.0, 165.0, 60.0]) + jitter
    depth = np.clip((y - horizon) / (1.0 - horizon), 0.0, 1.0)
    ground = grass_far + (grass_near - grass_far) * depth + 12.0 * np.sin(6.0 * x + 3.0 * y)

    # Soft edge so the horizon is not a hard JPEG-ringing step.
    ground_weight = np.clip((y - horizon) * h / 2.0 + 0.5, 0.0, 1.0)
    image = sky * (1.0 - ground_weight) + ground * ground_weight

    cx, cy = rng.uniform(0.25, 0.75), rng.uniform(0.15, 0.35)
    radius = rng.uniform(0.12, 0.2)
    aspect = w / max(h, 1)
    dist = np.sqrt(((x - cx) * aspect) ** 2 + (y - cy) ** 2)
    sun_weight = np.clip((radius - dist) * 12.0, 0.0, 1.0)
    sun = np.array([215.0, 60.0, 45.0])
    image = image * (1.0 - sun_weight) + sun * sun_weight
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def bands(values: Sequence, dtype: type = np.uint8) -> np.ndarray:
    """Side-by-side flat bands (BAND_WIDTH × BAND_HEIGHT each) of the given pixel values."""
    cells = [np.full((BAND_HEIGHT, BAND_WIDTH) + np.shape(v), v, dtype=dtype) for v in values]
    return np.concatenate(cells, axis=1)


def write_image(path: Path, rgb: np.ndarray, **save_kwargs) -> Path:
    """Save an array with Pillow (format from the extension), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(rgb)).save(path, **save_kwargs)
    return path


def bomb_png_bytes(width: int, height: int, rows: int = 16) -> bytes:
    """A valid-header 1-bit gray PNG declaring width×height but holding only a few rows.

    Hand-built so a 40000×40000 canvas costs a few hundred bytes on disk and no
    time to create; any decoder that tries to load it allocates the full canvas.
    """

    def chunk(tag: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(tag + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)

    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed 1-bit samples
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * min(rows, height), 9))
        + chunk(b"IEND", b"")
    )


def _photo() -> np.ndarray:
    return colour_photo(*PHOTO_SIZE, seed=PHOTO_SEED)


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _truncated_jpeg(path: Path) -> None:
    full = path.with_name(path.name + ".tmp")
    write_image(full, _photo(), format="JPEG", quality=90)
    data = full.read_bytes()
    full.unlink()
    _write_bytes(path, data[: len(data) // 2])


def _cmyk_jpeg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_photo()).convert("CMYK").save(path, quality=95)


def _rgba_png(path: Path) -> None:
    write_image(path, bands(RGBA_BANDS))


def _la_png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(bands(LA_BANDS), mode="LA").save(path)


def _gray16_png(path: Path) -> None:
    write_image(path, bands(GRAY16_BANDS, dtype=np.uint16))


def _palette_gif(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(colour_photo(48, 32, seed=3)).quantize(colors=64).save(path)


def _animated_gif(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    first, *rest = [Image.new("RGB", (20, 12), colour) for colour in ANIMATED_FRAME_COLOURS]
    first.save(path, save_all=True, append_images=rest, duration=100, loop=0)


def _exif_rotated_jpeg(path: Path) -> None:
    w, h = EXIF_STORED_SIZE
    stored = np.full((h, w, 3), 128, dtype=np.uint8)
    stored[:EXIF_MARKER_SIZE, :EXIF_MARKER_SIZE] = EXIF_MARKER_COLOUR
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    write_image(path, stored, quality=95, exif=exif.tobytes())


_Builder = Callable[[Path], None]


def _entries() -> list[tuple[str, Expect, _Builder]]:
    pw, ph = PHOTO_SIZE
    n = len(RGBA_BANDS) * BAND_WIDTH
    rng_bytes = np.random.default_rng(11).integers(0, 256, size=512, dtype=np.uint8).tobytes()
    return [
        ("empty.jpg", Expect.bad("empty file"), lambda p: _write_bytes(p, b"")),
        ("truncated.jpg", Expect.bad("truncated or corrupt image data"), _truncated_jpeg),
        ("random_bytes.png", Expect.bad("not an image"), lambda p: _write_bytes(p, rng_bytes)),
        (
            "text.jpg",
            Expect.bad("not an image"),
            lambda p: _write_bytes(p, b"These are holiday notes, not a photo.\n" * 4),
        ),
        (
            f"bomb_{BOMB_SIZE[0]}x{BOMB_SIZE[1]}.png",
            Expect.bad("image too large"),
            lambda p: _write_bytes(p, bomb_png_bytes(*BOMB_SIZE)),
        ),
        ("cmyk.jpg", Expect.good(pw, ph), _cmyk_jpeg),
        ("gray16.png", Expect.good(len(GRAY16_BANDS) * BAND_WIDTH, BAND_HEIGHT), _gray16_png),
        ("rgba_transparent.png", Expect.good(n, BAND_HEIGHT), _rgba_png),
        ("la.png", Expect.good(len(LA_BANDS) * BAND_WIDTH, BAND_HEIGHT), _la_png),
        ("palette.gif", Expect.good(48, 32), _palette_gif),
        ("animated.gif", Expect.good(20, 12), _animated_gif),
        ("exif_rotated.jpg", Expect.good(*EXIF_STORED_SIZE[::-1]), _exif_rotated_jpeg),
        ("one_pixel.png", Expect.good(1, 1), lambda p: write_image(p, np.array([[ONE_PIXEL]], np.uint8))),
        (
            "panorama_4000x60.jpg",
            Expect.good(4000, 60),
            lambda p: write_image(p, colour_photo(4000, 60, seed=5), quality=80),
        ),
        (
            "Über Straße ünïcödé.jpg",
            Expect.good(64, 48),
            lambda p: write_image(p, colour_photo(64, 48, seed=2), quality=90),
        ),
        (
            "nested/deeper/inner.png",
            Expect.good(40, 30),
            lambda p: write_image(p, colour_photo(40, 30, seed=4)),
        ),
        (
            "photo.webp",
            Expect.good(48, 32),
            lambda p: write_image(p, colour_photo(48, 32, seed=8), quality=85),
        ),
        (
            "photo.tif",
            Expect.good(48, 32),
            lambda p: write_image(p, colour_photo(48, 32, seed=9), compression="tiff_lzw"),
        ),
        ("photo.bmp", Expect.good(48, 32), lambda p: write_image(p, colour_photo(48, 32, seed=10))),
        ("colour_photo.jpg", Expect.good(pw, ph), lambda p: write_image(p, _photo(), quality=92)),
        (
            "gray_photo.jpg",
            Expect.good(pw, ph),
            lambda p: write_image(p, np.asarray(Image.fromarray(_photo()).convert("L")), quality=92),
        ),
    ]


def zoo_expectations() -> dict[str, Expect]:
    """The zoo's keys and outcomes without writing files, e.g. for test parametrization."""
    return {key: expect for key, expect, _ in _entries()}


def make_image_zoo(root: Path) -> dict[str, Expect]:
    """Write every zoo file under ``root``; return {posix path relative to root: Expect}."""
    root = Path(root)
    zoo = {}
    for key, expect, build in _entries():
        build(root / key)
        zoo[key] = expect
    return zoo
