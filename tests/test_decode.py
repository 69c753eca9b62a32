"""Unit tests for colorspark.decode against the generated image zoo and hand-made edge cases."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import imagefactory as factory  # noqa: E402
import numpy as np
import pytest
from PIL import Image

from colorspark.decode import SUPPORTED_FORMATS, DecodeError, decode_image, is_grayscale  # noqa: E402

LIMITS = {"max_pixels": 100_000_000, "max_bytes": 50_000_000}
JOB_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
ZOO = factory.zoo_expectations()


@pytest.fixture(scope="module")
def zoo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    assert factory.make_image_zoo(root) == ZOO
    return root


def decode_zoo(root: Path, key: str) -> np.ndarray:
    return decode_image((root / key).read_bytes(), **LIMITS)


def encode(im: Image.Image, fmt: str, **save_kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **save_kwargs)
    return buf.getvalue()


def band_centres(rgb: np.ndarray) -> np.ndarray:
    """The pixel at the middle of each flat band of an imagefactory.bands() image."""
    return rgb[factory.BAND_HEIGHT // 2, factory.BAND_WIDTH // 2 :: factory.BAND_WIDTH].astype(int)


# --- the zoo ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(ZOO))
def test_zoo_entry_decodes_as_expected(zoo_root: Path, key: str) -> None:
    expect = ZOO[key]
    if expect.ok:
        rgb = decode_zoo(zoo_root, key)
        assert rgb.dtype == np.uint8
        assert rgb.shape == (expect.height, expect.width, 3)
        assert rgb.flags.writeable and rgb.flags.c_contiguous
    else:
        with pytest.raises(DecodeError) as err:
            decode_zoo(zoo_root, key)
        assert expect.reason in str(err.value).lower()


def test_zoo_files_are_small_and_pass_the_job_extension_filter(zoo_root: Path) -> None:
    files = sorted(p for p in zoo_root.rglob("*") if p.is_file())
    assert sorted(p.relative_to(zoo_root).as_posix() for p in files) == sorted(ZOO)
    assert {p.suffix.lower() for p in files} <= JOB_EXTENSIONS
    assert sum(p.stat().st_size for p in files) < 1_000_000


def test_zoo_covers_good_and_bad_inputs() -> None:
    assert {k for k, e in ZOO.items() if not e.ok} == {
        "empty.jpg",
        "truncated.jpg",
        "random_bytes.png",
        "text.jpg",
        "bomb_40000x40000.png",
    }
    assert "nested/deeper/inner.png" in ZOO
    assert "Über Straße ünïcödé.jpg" in ZOO


def test_error_messages_are_short_and_specific(zoo_root: Path) -> None:
    messages = {}
    for key, expect in ZOO.items():
        if not expect.ok:
            with pytest.raises(DecodeError) as err:
                decode_zoo(zoo_root, key)
            messages[key] = str(err.value)
    assert messages["empty.jpg"] == "empty file (0 bytes)"
    assert messages["random_bytes.png"] == "not an image: cannot identify image file format"
    assert messages["bomb_40000x40000.png"] == (
        "image too large: 1600000000 pixels > limit 100000000 (raise limits.max_pixels)"
    )
    assert messages["truncated.jpg"].startswith(
        "truncated or corrupt image data: image file is truncated"
    )
    assert all(len(m) < 160 and "BytesIO" not in m for m in messages.values())


# --- orientation, transparency, colour and bit depth -------------------------------------


def test_exif_rotation_rotates_size_and_pixels(zoo_root: Path) -> None:
    rgb = decode_zoo(zoo_root, "exif_rotated.jpg").astype(int)
    m = factory.EXIF_MARKER_SIZE
    assert rgb.shape[:2] == (factory.EXIF_STORED_SIZE[0], factory.EXIF_STORED_SIZE[1])
    # Orientation 6 displays the stored top-left marker at the top-right.
    top_right = rgb[2 : m - 2, -m + 2 : -2].reshape(-1, 3)
    top_left = rgb[2 : m - 2, 2 : m - 2].reshape(-1, 3)
    assert np.abs(top_right - factory.EXIF_MARKER_COLOUR).max() <= 12
    assert np.abs(top_left - 128).max() <= 12


@pytest.mark.parametrize(
    ("orientation", "display"),
    [
        (1, lambda a: a),
        (2, lambda a: a[:, ::-1]),
        (3, lambda a: a[::-1, ::-1]),
        (4, lambda a: a[::-1]),
        (5, lambda a: a.transpose(1, 0, 2)),
        (6, lambda a: np.rot90(a, -1)),
        (7, lambda a: a[::-1, ::-1].transpose(1, 0, 2)),
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_every_exif_orientation_matches_a_reference_transform(orientation, display) -> None:
    stored = np.random.default_rng(orientation).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.fromarray(stored), "PNG", exif=exif.tobytes())
    np.testing.assert_array_equal(decode_image(data, **LIMITS), display(stored))


def test_rgba_is_composited_over_white(zoo_root: Path) -> None:
    opaque, half, invisible = band_centres(decode_zoo(zoo_root, "rgba_transparent.png"))
    assert tuple(opaque) == factory.RGBA_BANDS[0][:3]
    assert tuple(half) == (127, 127, 127)  # black at alpha 128 over white
    assert tuple(invisible) == (255, 255, 255)  # stored colour is black: white proves compositing


def test_la_is_composited_over_white(zoo_root: Path) -> None:
    centres = band_centres(decode_zoo(zoo_root, "la.png"))
    np.testing.assert_array_equal(centres, [[60] * 3, [127] * 3, [255] * 3])


def test_cmyk_jpeg_is_close_to_the_original_rgb(zoo_root: Path) -> None:
    original = factory.colour_photo(*factory.PHOTO_SIZE, seed=factory.PHOTO_SEED).astype(int)
    diff = np.abs(decode_zoo(zoo_root, "cmyk.jpg").astype(int) - original)
    # Measured with Pillow 13 at quality 95: mean 0.16, max 4 (no chroma subsampling for CMYK).
    assert diff.mean() < 1.0
    assert diff.max() <= 8


def test_adobe_inverted_cmyk_jpeg_gives_the_right_primaries() -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)]
    patches = np.repeat(np.array(colours, np.uint8)[np.newaxis], 16, axis=1).repeat(16, axis=0)
    data = encode(Image.fromarray(patches).convert("CMYK"), "JPEG", quality=95)
    assert b"Adobe" in data  # Pillow writes inverted CMYK with an APP14 marker
    rgb = decode_image(data, **LIMITS).astype(int)
    centres = rgb[8, 8::16]
    assert np.abs(centres - np.array(colours)).max() <= 6


def test_16bit_png_is_scaled_not_clipped(zoo_root: Path) -> None:
    centres = band_centres(decode_zoo(zoo_root, "gray16.png"))
    np.testing.assert_array_equal(centres[:, 0], [0, 16, 128, 255])
    assert (centres == centres[:, :1]).all()


def test_animated_gif_returns_the_first_frame(zoo_root: Path) -> None:
    rgb = decode_zoo(zoo_root, "animated.gif")
    assert (rgb == factory.ANIMATED_FRAME_COLOURS[0]).all()


def test_multi_picture_jpeg_returns_the_first_picture() -> None:
    first, second = (Image.new("RGB", (16, 8), c) for c in factory.ANIMATED_FRAME_COLOURS)
    data = encode(first, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    rgb = decode_image(data, **LIMITS).astype(int)
    assert np.abs(rgb - factory.ANIMATED_FRAME_COLOURS[0]).max() <= 4


def _with_info(im: Image.Image, **info) -> Image.Image:
    im.info.update(info)
    return im


def _row(mode: str, values: list) -> Image.Image:
    im = Image.new(mode, (len(values), 1))
    for x, v in enumerate(values):
        im.putpixel((x, 0), v)
    return im


def gray(*levels: int) -> list[tuple[int, int, int]]:
    return [(v, v, v) for v in levels]


def _palette_image(transparent_index: int | None) -> Image.Image:
    im = Image.new("P", (3, 1))
    im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    for x in range(3):
        im.putpixel((x, 0), x)
    if transparent_index is not None:
        im.info["transparency"] = transparent_index
    return im


MODE_CASES = {
    "1": (lambda: encode(_row("1", [0, 1]), "TIFF"), gray(0, 255), 0),
    "L": (lambda: encode(_row("L", [0, 77, 255]), "PNG"), gray(0, 77, 255), 0),
    "L+tRNS": (
        lambda: encode(_with_info(_row("L", [10, 77]), transparency=10), "PNG"),
        gray(255, 77),
        0,
    ),
    "P": (lambda: encode(_palette_image(None), "PNG"), [(255, 0, 0), (0, 255, 0), (0, 0, 255)], 0),
    "P+transparency": (
        lambda: encode(_palette_image(1), "PNG"),
        [(255, 0, 0), (255, 255, 255), (0, 0, 255)],
        0,
    ),
    "PA": (
        lambda: encode(_palette_image(None).convert("PA"), "TIFF"),
        [(255, 0, 0), (0, 255, 0), (0, 0, 255)],
        0,
    ),
    "LA": (lambda: encode(_row("LA", [(60, 128), (60, 255)]), "TIFF"), gray(157, 60), 0),
    "RGB+tRNS": (
        lambda: encode(_with_info(_row("RGB", [(1, 2, 3), (9, 8, 7)]), transparency=(1, 2, 3)), "PNG"),
        [(255, 255, 255), (9, 8, 7)],
        0,
    ),
    "RGBA": (
        lambda: encode(_row("RGBA", [(10, 20, 30, 255), (0, 0, 255, 0)]), "TIFF"),
        [(10, 20, 30), (255, 255, 255)],
        0,
    ),
    "CMYK": (
        lambda: encode(_row("CMYK", [(0, 255, 255, 0), (0, 0, 0, 255)]), "TIFF"),
        [(255, 0, 0), (0, 0, 0)],
        0,
    ),
    "YCbCr": (lambda: encode(_row("YCbCr", [(100, 128, 128)]), "TIFF"), gray(100), 1),
    "LAB": (lambda: encode(_row("LAB", [(255, 128, 128), (0, 128, 128)]), "TIFF"), gray(255, 0), 2),
    "I;16": (lambda: encode(_row("I;16", [0, 257, 32896, 65535]), "PNG"), gray(0, 1, 128, 255), 0),
    "I;16B": (lambda: encode(_row("I;16B", [0, 32896, 65535]), "TIFF"), gray(0, 128, 255), 0),
    "I 16-bit range": (lambda: encode(_row("I", [0, 32896, 65535]), "TIFF"), gray(0, 128, 255), 0),
    "I 32-bit range": (lambda: encode(_row("I", [-(1 << 20), 0, 1 << 20]), "TIFF"), gray(0, 128, 255), 0),
    "F 0..1": (lambda: encode(_row("F", [0.0, 0.5, 1.0]), "TIFF"), gray(0, 128, 255), 0),
    "F 0..255": (lambda: encode(_row("F", [0.0, 100.4, 255.0]), "TIFF"), gray(0, 100, 255), 0),
    "F other range": (
        lambda: encode(_row("F", [-2.0, 0.0, 2.0, float("nan")]), "TIFF"),
        gray(0, 128, 255, 128),
        0,
    ),
}


@pytest.mark.parametrize("case", sorted(MODE_CASES))
def test_every_mode_becomes_8bit_rgb(case: str) -> None:
    make, expected, tolerance = MODE_CASES[case]
    rgb = decode_image(make(), **LIMITS)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, len(expected), 3)
    assert np.abs(rgb[0].astype(int) - np.array(expected)).max() <= tolerance, rgb[0].tolist()


@pytest.mark.parametrize("case", sorted(MODE_CASES))
def test_keep_gray_returns_single_channel_images_as_2d_with_the_same_values(case: str) -> None:
    make, _, _ = MODE_CASES[case]
    rgb = decode_image(make(), **LIMITS)
    kept = decode_image(make(), **LIMITS, keep_gray=True)
    assert kept.dtype == np.uint8
    single_channel = case in ("1", "L") or case.startswith(("I", "F"))
    if single_channel:
        assert kept.shape == rgb.shape[:2]
        np.testing.assert_array_equal(np.repeat(kept[..., None], 3, axis=-1), rgb)
    else:  # colour, palette, transparency (composited over white): RGB as before
        np.testing.assert_array_equal(kept, rgb)


def test_keep_gray_on_a_gray_jpeg_and_on_a_transparent_gray_png() -> None:
    gray = np.random.default_rng(2).integers(0, 256, (20, 30), dtype=np.uint8)
    jpeg = encode(Image.fromarray(gray, mode="L"), "JPEG")
    kept = decode_image(jpeg, **LIMITS, keep_gray=True)
    assert kept.shape == (20, 30)
    np.testing.assert_array_equal(kept, decode_image(jpeg, **LIMITS)[..., 0])
    keyed = _with_info(Image.fromarray(gray, mode="L"), transparency=int(gray[0, 0]))
    assert decode_image(encode(keyed, "PNG"), **LIMITS, keep_gray=True).shape == (20, 30, 3)


# --- limits and arguments -----------------------------------------------------------------


def test_max_bytes_is_inclusive_and_checked_before_anything_else(zoo_root: Path) -> None:
    data = (zoo_root / "colour_photo.jpg").read_bytes()
    assert decode_image(data, max_pixels=LIMITS["max_pixels"], max_bytes=len(data)).shape == (64, 96, 3)
    with pytest.raises(DecodeError) as err:
        decode_image(data, max_pixels=1, max_bytes=len(data) - 1)
    assert str(err.value) == f"file too large: {len(data)} bytes > limit {len(data) - 1}"


def test_max_pixels_boundary(zoo_root: Path) -> None:
    data = (zoo_root / "colour_photo.jpg").read_bytes()
    w, h = factory.PHOTO_SIZE
    assert decode_image(data, max_pixels=w * h, max_bytes=LIMITS["max_bytes"]).shape == (h, w, 3)
    with pytest.raises(DecodeError) as err:
        decode_image(data, max_pixels=w * h - 1, max_bytes=LIMITS["max_bytes"])
    assert str(err.value) == (
        f"image too large: {w * h} pixels ({w}x{h}) > limit {w * h - 1} (raise limits.max_pixels)"
    )


def _images_allocated_by_pillow() -> int:
    return Image.core.get_stats()["new_count"]


def test_oversized_header_is_rejected_before_any_pixel_memory_is_allocated() -> None:
    # 81 Mpx stays under Pillow's own guard, so only decode_image's check can stop it.
    data = factory.bomb_png_bytes(9000, 9000)
    before = _images_allocated_by_pillow()
    with pytest.raises(DecodeError) as err:
        decode_image(data, max_pixels=1_000_000, max_bytes=LIMITS["max_bytes"])
    assert _images_allocated_by_pillow() == before
    assert str(err.value).startswith("image too large: 81000000 pixels (9000x9000) > limit 1000000")
    # The same kind of file is otherwise decodable (Pillow fills the rows the short
    # zlib stream lacks), and decoding does move the counter: the check above can fail.
    assert decode_image(factory.bomb_png_bytes(300, 200), **LIMITS).shape == (200, 300, 3)
    assert _images_allocated_by_pillow() > before


def test_zoo_bomb_is_rejected_before_any_pixel_memory_is_allocated(zoo_root: Path) -> None:
    before = _images_allocated_by_pillow()
    with pytest.raises(DecodeError, match="image too large"):
        decode_zoo(zoo_root, "bomb_40000x40000.png")
    assert _images_allocated_by_pillow() == before


def test_pillow_bomb_guard_is_reported_when_max_pixels_exceeds_it() -> None:
    with pytest.raises(DecodeError) as err:
        decode_image(
            factory.bomb_png_bytes(*factory.BOMB_SIZE), max_pixels=2_000_000_000, max_bytes=1000
        )
    limit = 2 * Image.MAX_IMAGE_PIXELS
    assert str(err.value) == (
        f"image too large: 1600000000 pixels > Pillow's decompression-bomb limit {limit} "
        "(raise PIL.Image.MAX_IMAGE_PIXELS)"
    )


def test_pillow_bomb_warning_raised_as_error_becomes_decode_error() -> None:
    # 90 Mpx is over Pillow's warning threshold but under max_pixels and its hard limit.
    data = factory.bomb_png_bytes(10_000, 9_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(DecodeError) as err:
            decode_image(data, **LIMITS)
    assert str(err.value) == (
        f"image too large: 90000000 pixels > Pillow's decompression-bomb limit "
        f"{Image.MAX_IMAGE_PIXELS} (raise PIL.Image.MAX_IMAGE_PIXELS)"
    )


@pytest.mark.parametrize("bad", [0, -1, None, 1.5, True, "100"])
@pytest.mark.parametrize("name", ["max_pixels", "max_bytes"])
def test_limits_must_be_positive_ints(name: str, bad: object) -> None:
    limits = {**LIMITS, name: bad}
    with pytest.raises(ValueError, match=name) as err:
        decode_image(b"\xff\xd8", **limits)
    assert not isinstance(err.value, DecodeError)


def test_data_must_be_bytes_like(zoo_root: Path) -> None:
    with pytest.raises(TypeError):
        decode_image(str(zoo_root / "one_pixel.png"), **LIMITS)
    data = (zoo_root / "one_pixel.png").read_bytes()
    for view in (bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(decode_image(view, **LIMITS), [[factory.ONE_PIXEL]])


def test_formats_outside_the_job_filter_are_not_images() -> None:
    ppm = encode(Image.new("RGB", (4, 4), (1, 2, 3)), "PPM")
    assert Image.open(io.BytesIO(ppm)).size == (4, 4)  # Pillow itself could read it
    with pytest.raises(DecodeError, match="^not an image"):
        decode_image(ppm, **LIMITS)


def test_supported_formats_are_all_registered_openers() -> None:
    Image.init()
    assert set(SUPPORTED_FORMATS) <= set(Image.OPEN)


def test_truncated_png_fails_at_decode_time(zoo_root: Path) -> None:
    data = (zoo_root / "nested/deeper/inner.png").read_bytes()
    with pytest.raises(DecodeError, match="^truncated or corrupt image data"):
        decode_image(data[: len(data) - 40], **LIMITS)


# --- is_grayscale -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "gray"),
    [
        ("gray_photo.jpg", True),
        ("gray16.png", True),
        ("la.png", True),
        ("colour_photo.jpg", False),
        ("cmyk.jpg", False),
    ],
)
def test_is_grayscale_on_zoo_images(zoo_root: Path, key: str, gray: bool) -> None:
    assert is_grayscale(decode_zoo(zoo_root, key)) is gray


def test_is_grayscale_tolerance_boundary() -> None:
    rgb = np.full((3000, 500, 3), 100, dtype=np.uint8)  # > one block, so the late rows count
    rgb[-1, -1] = (100, 102, 101)
    assert is_grayscale(rgb, tolerance=2) is True
    assert is_grayscale(rgb, tolerance=1) is False
    rgb[-1, -1] = (100, 103, 100)
    assert is_grayscale(rgb) is False
    assert is_grayscale(rgb, tolerance=3) is True


def test_is_grayscale_shapes() -> None:
    assert is_grayscale(np.zeros((4, 4), np.uint8)) is True
    assert is_grayscale(np.zeros((0, 4, 3), np.uint8)) is True
    with pytest.raises(ValueError):
        is_grayscale(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError):
        is_grayscale(np.zeros((4, 4, 3), np.uint8), tolerance=-1)


# --- robustness ---------------------------------------------------------------------------


def _fuzz_bases() -> list[bytes]:
    photo = Image.fromarray(factory.colour_photo(32, 24, seed=1))
    exif = Image.Exif()
    exif[0x0112] = 6
    return [
        encode(photo, "PNG"),
        encode(photo, "JPEG", quality=80, exif=exif.tobytes()),
        encode(photo.convert("CMYK"), "JPEG"),
        encode(photo.quantize(32), "GIF"),
        encode(photo, "GIF", save_all=True, append_images=[photo.rotate(90)]),
        encode(photo, "BMP"),
        encode(photo, "TIFF"),
        encode(photo, "TIFF", compression="tiff_lzw"),
        encode(photo, "WEBP", quality=70),
        encode(Image.fromarray(np.full((24, 32), 40000, np.uint16)), "PNG"),
    ]


def _mutations(seed: int, count: int):
    rng = np.random.default_rng(seed)
    bases = _fuzz_bases()
    for i in range(count):
        data = bytearray(bases[i % len(bases)])
        how = rng.integers(0, 4)
        if how in (0, 2):  # flip a few bytes anywhere
            for pos in rng.integers(0, len(data), size=rng.integers(1, 6)):
                data[pos] ^= int(rng.integers(1, 256))
        if how in (1, 2):  # cut short
            data = data[: rng.integers(1, len(data))]
        if how == 3:  # hit the headers, where sizes and offsets live
            for pos in rng.integers(0, min(len(data), 64), size=rng.integers(1, 4)):
                data[pos] = int(rng.integers(0, 256))
        yield i, bytes(data)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("warning_action", ["ignore", "error"])
def test_mutated_files_only_ever_raise_decode_error(warning_action: str) -> None:
    escaped, decoded, rejected = [], 0, 0
    with warnings.catch_warnings():
        warnings.simplefilter(warning_action)
        for i, data in _mutations(seed=20240611, count=1000):
            try:
                rgb = decode_image(data, max_pixels=4_000_000, max_bytes=1_000_000)
            except DecodeError as exc:
                assert str(exc), f"case {i}: empty DecodeError message"
                rejected += 1
            except BaseException as exc:  # noqa: BLE001 - the point is to catch everything
                escaped.append(f"case {i}: {type(exc).__name__}: {exc}")
            else:
                assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, f"case {i}"
                decoded += 1
    assert escaped == []
    # Both outcomes occur, so the fuzz really exercises the decoder and the error paths.
    assert decoded > 100 and rejected > 100
