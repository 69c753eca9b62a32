"""Colour from a reference: a colour photo, several photos or a palette, as a distribution over the 313 ab bins,
and the decoding that steers a prediction towards it.

The network predicts p(q|x), trained against soft-encoded targets weighted by the rebalancing weights, so its
outputs follow a class prior p_train(q) ∝ w(q)·p̃(q) (p̃ the smoothed training prior, w the class weights; see
docs/reference.md). A reference r replaces that prior (Bayes' rule under a prior shift):

    p'(q|x) ∝ p(q|x) · ((r(q) + ε) / (p_train(q) + ε))^β

which on logits is one additive vector per image, β·log((r + ε)/(p_train + ε)): the forward pass is untouched and
decoding costs one more addition. The floor ε keeps every colour possible; the strength β scales the shift.

References are turned into distributions the way training targets are made (`bins.soft_encode`, k = 10, σ = 5), from
the image's ab at the network's output stride, so r and p_train are on the same footing. Every pixel counts, near-gray
ones too: on the selection split leaving out those within chroma 5 of gray gave less (docs/reference.md), since a
reference's gray walls and shadows say that the scene's gray stays gray.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .bins import annealed_mean, gamut_centres, smooth_prior, soft_encode, softmax
from .colorspace import rgb_to_lab
from .config import GRAY_CHROMA
from .decode import DecodeError, decode_image
from .errors import JobError
from .thumbnails import make_thumbnail

MIN_COLOUR_SHARE = 0.01    # a reference with fewer colourful pixels than this share has no colour to give
ENCODE_SIDE = 64           # a reference image is reduced to about this many pixels a side before soft encoding
PALETTE_PREFIX = "palette:"
PREVIEW_SIDE = 80          # the report's picture of a reference: up to 4 images of this side, or colour swatches
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


class UnusableReference(JobError):
    """A reference that cannot serve: unreadable, without colour, over the size limits, or a malformed palette.
    For the job a usage error found before any work (exit code 2); for the API, the error of the rows using it."""

    exit_code = 2


@dataclass(frozen=True)
class ReferenceMap:
    """Which reference steers which input: one for all (`default`), and by relative path or folder prefix
    (`by_location`, keys without a trailing slash). The most specific entry wins: the file, then its folder, then
    the folder above, ..., then `default`."""
    default: Reference | None = None
    by_location: tuple = ()  # ((relative path or folder, Reference), ...)

    @functools.cached_property
    def _entries(self) -> dict:
        return dict(self.by_location)

    def for_path(self, relative_path: str) -> Reference | None:
        key = relative_path.strip("/")
        while key:
            if key in self._entries:
                return self._entries[key]
            key = key.rpartition("/")[0]
        return self.default

    def references(self) -> list[Reference]:
        """Each distinct reference once, by name."""
        found = {ref.name: ref for ref in [self.default, *(ref for _, ref in self.by_location)] if ref is not None}
        return list(found.values())


@dataclass(frozen=True)
class Reference:
    """A reference's name (what the records show), its distribution over the bins (sums to 1), a small JPEG of it
    for the report, and whether it is a scene (colour photos) rather than a palette: a scene's mean colour is the
    cast its output should have (`cast_target`), a palette lists colours without their shares of the scene."""
    name: str
    distribution: np.ndarray = field(repr=False, compare=False)
    preview: bytes | None = field(default=None, repr=False, compare=False)
    scene: bool = True

    @functools.cached_property
    def cast_target(self) -> np.ndarray | None:
        """The scene's mean ab (of its soft-encoded distribution), or None for a palette; computed once per
        reference, not once per image it steers."""
        return (self.distribution @ gamut_centres()).astype(np.float32) if self.scene else None

    @property
    def key(self) -> str:
        """A short digest of the distribution: two references with the same colours share it."""
        return hashlib.sha1(np.ascontiguousarray(self.distribution, np.float64).tobytes()).hexdigest()[:12]


def ab_distribution(ab: np.ndarray, gray_chroma: float = 0.0) -> np.ndarray | None:
    """Soft-encoded histogram of ab pairs ((..., 2) array) over the bins, pairs nearer gray than `gray_chroma`
    left out (0 keeps all); None when fewer than `MIN_COLOUR_SHARE` of the pairs are at least `GRAY_CHROMA` from
    gray (a gray image has no colour to give)."""
    flat = np.asarray(ab, np.float32).reshape(-1, 2)
    chroma = np.hypot(flat[:, 0], flat[:, 1])
    if not flat.size or (chroma >= GRAY_CHROMA).mean() < MIN_COLOUR_SHARE:
        return None
    return soft_histogram(flat[chroma >= gray_chroma] if gray_chroma > 0 else flat)


def soft_histogram(ab: np.ndarray) -> np.ndarray:
    """(n, 2) ab pairs -> their soft encodings summed and normalized: a distribution made as the training targets
    are, so that it compares with p_train."""
    indices, weights = soft_encode(ab)
    histogram = np.bincount(indices.ravel(), weights.ravel(), minlength=len(gamut_centres()))
    return histogram / histogram.sum()


def image_ab(rgb: np.ndarray) -> np.ndarray:
    """An sRGB image's ab, reduced by area averaging (as the training targets' 4×4 cell means are) to about
    `ENCODE_SIDE` pixels on its longer side: the colours stay, and soft encoding costs a few ms."""
    factor = max(1, round(max(rgb.shape[:2]) / ENCODE_SIDE))
    small = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).reduce(factor)) if factor > 1 else rgb
    return rgb_to_lab(small)[..., 1:]


def images_distribution(images: list[np.ndarray], gray_chroma: float = 0.0) -> np.ndarray | None:
    """Several sRGB images (H×W×3 uint8) as one distribution, each image weighing the same; None if none has
    colour."""
    parts = [ab_distribution(image_ab(rgb), gray_chroma) for rgb in images]
    parts = [p for p in parts if p is not None]
    return np.mean(parts, axis=0) if parts else None


def parse_palette(text: str) -> list[tuple[int, int, int]]:
    """'palette:#aa3311,#2255cc' (or without the prefix) -> sRGB triples."""
    body = text[len(PALETTE_PREFIX):] if text.startswith(PALETTE_PREFIX) else text
    colours = []
    for item in filter(None, (part.strip() for part in body.split(","))):
        match = _HEX.fullmatch(item)
        if not match:
            raise UnusableReference(f"palette colour {item!r} is not a hex sRGB colour like #aa3311")
        colours.append(tuple(int(match.group(1)[i:i + 2], 16) for i in (0, 2, 4)))
    if not colours:
        raise UnusableReference("the palette names no colour (expected palette:#aa3311,#2255cc,...)")
    return colours


def palette_distribution(colours: list[tuple[int, int, int]]) -> np.ndarray:
    """sRGB colours as a distribution, each colour weighing the same; gray colours count (a user who lists them
    wants them)."""
    return soft_histogram(rgb_to_lab(np.asarray(colours, np.uint8)[None])[0, :, 1:])


def from_images(name: str, images: list[bytes], *, max_pixels: int, max_bytes: int) -> Reference:
    """A reference from one or more encoded images, checked: each must decode within the limits, and together
    they must have colour."""
    decoded = []
    for data in images:
        try:
            decoded.append(decode_image(data, max_pixels=max_pixels, max_bytes=max_bytes))
        except DecodeError as exc:
            raise UnusableReference(f"reference {name}: {exc}") from None
    distribution = images_distribution(decoded)
    if distribution is None:
        raise UnusableReference(f"reference {name} has no colour (a gray image): nothing to take colours from")
    return Reference(name, distribution, make_thumbnail(np.concatenate(
        [np.asarray(Image.fromarray(rgb).resize((PREVIEW_SIDE, PREVIEW_SIDE))) for rgb in decoded[:4]], axis=1)))


def from_palette(text: str) -> Reference:
    """A reference from 'palette:#aa3311,...', its preview a row of swatches (the report shows what was asked
    for)."""
    colours = parse_palette(text)
    swatches = np.repeat(np.asarray(colours, np.uint8)[None, :, None, :], PREVIEW_SIDE, axis=(0))
    swatches = np.repeat(swatches, PREVIEW_SIDE // 2, axis=2).reshape(PREVIEW_SIDE, -1, 3)
    return Reference(text, palette_distribution(colours), make_thumbnail(swatches), scene=False)


def load_reference(location: str, *, max_pixels: int, max_bytes: int) -> Reference:
    """A reference from a palette ('palette:#aa3311,...'), an image file or a folder of images (path or URI, read
    through `colorspark.fs`), checked; a `UnusableReference` with one line says what is wrong."""
    from . import fs
    from .config import EXTENSIONS

    if location.startswith(PALETTE_PREFIX):
        return from_palette(location)
    if not location.strip():  # fs.to_uri would make it the working folder, whose images are nobody's reference
        raise UnusableReference("the reference is an empty string: give an image, a folder or palette:..., or null "
                                "for none")
    uri = fs.to_uri(location)
    try:
        if fs.is_file(uri):
            files = [uri]
        else:
            files = sorted(fs.join(uri, name) for name in fs.children(uri)
                           if name.rpartition(".")[2].lower() in EXTENSIONS)
            if not files:
                raise UnusableReference(f"reference {fs.display(uri)}: no such image file, or a folder without images")
        for file in files:
            if fs.size(file) > max_bytes:
                raise UnusableReference(f"reference {fs.display(file)} is larger than limits.max_bytes ({max_bytes})")
        data = [fs.read_bytes(file) for file in files]
    except (OSError, fs.StorageError) as exc:  # in the API, a row's error: not a task that fails
        raise UnusableReference(f"reference {fs.display(uri)} cannot be read: {exc}") from None
    return from_images(fs.display(uri), data, max_pixels=max_pixels, max_bytes=max_bytes)


def training_marginal(prior, class_weights, prior_sigma: float = 5.0) -> np.ndarray:
    """p_train(q) ∝ w(q)·p̃(q): the class prior the network's outputs follow (see the module docstring)."""
    marginal = smooth_prior(np.asarray(prior, np.float64), prior_sigma) * np.asarray(class_weights, np.float64)
    return marginal / marginal.sum()


def logit_shift(distribution: np.ndarray, marginal: np.ndarray, strength: float, floor: float) -> np.ndarray:
    """β·log((r + ε)/(p_train + ε)), float32 (313,): added to an image's logits before the annealed mean."""
    shift = strength * np.log((np.asarray(distribution) + floor) / (np.asarray(marginal) + floor))
    return shift.astype(np.float32)


def divergence(distribution: np.ndarray, probabilities: np.ndarray, floor: float) -> float:
    """How far the reference is from the model's own prediction for an image (its per-pixel distributions,
    (..., 313), averaged to p̄): KL(r ‖ p̄), with ε added to both, in nats. Large when much of the reference's
    colour is what the model finds implausible anywhere in this image: the sign of a reference from another scene.
    (Of five measures this separated the references that cost PSNR best on the selection split; docs/reference.md.)"""
    mean = np.asarray(probabilities, np.float64).reshape(-1, len(distribution)).mean(0)
    r = np.asarray(distribution, np.float64)
    return float(np.sum(r * (np.log(r + floor) - np.log(mean + floor))))


def match_cast(ab: np.ndarray, target: np.ndarray, share: float) -> np.ndarray:
    """h×w×2 `ab` moved by `share` of the way from its mean to `target` (the reference scene's mean ab), every
    pixel by the same amount: the local variation stays, the global cast becomes the reference's."""
    if not share:
        return ab
    return (ab + share * (target - ab.reshape(-1, 2).mean(axis=0))).astype(np.float32)


def steered_decode(logits: np.ndarray, temperature: float, reference: Reference | None, shift: np.ndarray | None,
                   floor: float) -> tuple[np.ndarray, float | None]:
    """One image's logits (h×w×313) -> (annealed-mean ab, divergence of its own prediction from the reference).
    Without a reference: the plain annealed mean and None."""
    if reference is None:
        return annealed_mean(logits, temperature), None
    return (annealed_mean(logits + shift, temperature),
            divergence(reference.distribution, softmax(logits, temperature), floor))


def read_reference_table(location: str) -> list[tuple[str, str]]:
    """(input's relative path or folder prefix, reference) pairs from a CSV (header `path,reference`) or Parquet
    table (columns `path` and `reference`), read through `colorspark.fs`. A reference that is neither a palette nor
    an absolute path or URI is taken relative to the table's folder."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from . import fs

    uri = fs.to_uri(location)
    try:
        data = fs.read_bytes(uri)
        table = (pq.read_table(pa.BufferReader(data)) if data[:4] == b"PAR1"
                 else pacsv.read_csv(pa.BufferReader(data), convert_options=pacsv.ConvertOptions(
                     column_types={"path": pa.string(), "reference": pa.string()})))
    except (OSError, pa.ArrowInvalid) as exc:
        raise UnusableReference(f"references table {fs.display(uri)} cannot be read: {exc}") from None
    missing = {"path", "reference"} - set(table.column_names)
    if missing:
        raise UnusableReference(f"references table {fs.display(uri)} needs columns path and reference "
                                f"(it has {', '.join(table.column_names)})")
    try:  # a folder named 2019 is a path, not a number
        paths, refs = (table.column(name).cast(pa.string()).to_pylist() for name in ("path", "reference"))
    except pa.ArrowException as exc:
        raise UnusableReference(f"references table {fs.display(uri)}: path and reference must be text: {exc}") from None
    folder = uri.rpartition("/")[0]
    pairs = []
    for path, ref in zip(paths, refs):
        if not path or not ref:
            raise UnusableReference(f"references table {fs.display(uri)} has a row without path or reference")
        absolute = ref.startswith(PALETTE_PREFIX) or ref.startswith("/") or "://" in ref or ref.startswith("file:")
        pairs.append((path.strip("/"), ref if absolute else fs.join(folder, ref)))
    return pairs


def reference_map(reference: str | None, table: str | None, *, max_pixels: int, max_bytes: int) -> ReferenceMap:
    """The job's `--reference` and `--references` as a `ReferenceMap`, each distinct reference loaded (and
    checked) once."""
    loaded: dict[str, Reference] = {}

    def load(location: str) -> Reference:
        if location not in loaded:
            loaded[location] = load_reference(location, max_pixels=max_pixels, max_bytes=max_bytes)
        return loaded[location]

    default = load(reference) if reference else None
    pairs = read_reference_table(table) if table else []
    return ReferenceMap(default, tuple((path, load(ref)) for path, ref in pairs))
