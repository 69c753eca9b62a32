"""(executors) Colorizing images in memory: image bytes in, colorized Lab and JPEG out, in input order.

This is the one per-partition code path behind both the colorize job (`colorize_tasks` adds file outputs, scores and
thumbnails) and the DataFrame API (`api` adds Arrow columns). Per image: decode -> L at the original resolution ->
L resized to the network's input -> predict, in batches, with the worker's cached model -> annealed-mean ab at 1/4
of the input (steered towards the image's reference, if it has one: `colorspark.reference`) -> ab brought up to
the original size (bilinearly, or with `upsample = "guided"` edge-aware, guided by the full-resolution L) ->
recombined with the original L -> 8-bit RGB -> JPEG.
Colour inputs are colorized from their L alone; their own ab is kept for scoring. Nothing here raises for one bad
image: it becomes a `Failed` with a reason, in its place in the output.
"""

from __future__ import annotations

import functools
import io
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from .colorspace import gray_to_l, lab_to_rgb8, rgb_to_l, rgb_to_lab
from .config import defaults as config_defaults
from .decode import DecodeError, decode_image, is_grayscale
from .guard import guard_ab
from .inference import predict_logits
from .reference import Reference, logit_shift, match_cast, steered_decode, training_marginal
from .samples import L_SCALE

NETWORK_STRIDE = 8  # every preset downsamples by 8 before its last upsampling, so input sides are multiples of 8
UPSAMPLING = ("bilinear", "guided")
REFERENCE_KEYS = ("reference_strength", "reference_floor", "reference_warning", "reference_cast")
HELD_BYTES = 128 << 20  # per task: decoded images waiting for a full batch or, once predicted, for their release


@dataclass(frozen=True)
class Rendering:
    """How images are colorized, apart from the model itself; small and picklable for the tasks.

    `input_size` is the network input's side. With `keep_aspect` the input keeps the photo's aspect ratio instead
    and about the same area, input_size² pixels (`network_shape`), so a panorama is not squashed into a square, a
    portrait's colour map is not stretched, and every photo costs the network what a square input costs.

    `upsample` is how ab comes up from the network's output to the photo's size: "bilinear", or "guided" (bilinear
    plus L's detail times the local slope of ab on L, fitted as the guided filter does in windows of
    `guided_radius` output cells with `guided_eps` in (L/100)²; see `guided_ab`).
    """
    temperature: float
    input_size: int
    batch_size: int
    jpeg_quality: int
    max_pixels: int
    max_bytes: int
    reference_strength: float  # β and ε of reference.logit_shift (colorize.reference_*)
    reference_floor: float
    reference_warning: float  # divergence (reference.divergence) above which a reference looks wrong; 0: never
    reference_cast: float  # share of the way from the output's mean ab to a reference scene's (reference.match_cast)
    keep_aspect: bool = False
    upsample: str = "bilinear"
    guided_radius: int = 1
    guided_eps: float = 5e-3
    training_marginal: tuple = field(default=(), repr=False)  # p_train (reference.training_marginal)
    guard_entropy: float = 0.0  # do-no-harm decoding (`guard.guard_ab`; 0: off)
    guard_cast: float = 0.0
    encode_jpeg: bool = True  # False for video frames, which are encoded as a video instead

    @classmethod
    def from_config(cls, config: dict, meta: dict, *, temperature: float | None = None,
                    input_size: int | None = None, keep_aspect: bool | None = None) -> Rendering:
        """Settings from a run's config and a model's `colorspark.json`; the keyword arguments override both.

        The temperature and the input size are the model's own (the ones it was chosen and trained with) unless
        `colorize.temperature` or `colorize.render_size` is set (not 0).
        """
        settings = config["colorize"]
        size = int(input_size or settings.get("render_size") or meta["input_size"])
        if size < NETWORK_STRIDE or size % NETWORK_STRIDE:
            raise ValueError(f"rendering size must be a positive multiple of {NETWORK_STRIDE}, got {size}")
        upsample = str(settings.get("upsample", cls.upsample))
        radius = int(settings.get("guided_radius", cls.guided_radius))
        eps = float(settings.get("guided_eps", cls.guided_eps))
        if upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLING)}, got {upsample!r}")
        if radius < 1 or not eps > 0:
            raise ValueError(f"guided_radius must be >= 1 and guided_eps > 0, got {radius} and {eps}")
        if temperature is None:
            temperature = settings.get("temperature") or meta["temperature"]
        fallback = config_defaults()["colorize"]  # a partial config (tests, callers of the API) takes the schema's
        return cls(temperature=float(temperature),
                   input_size=size, batch_size=int(settings["batch_size"]),
                   jpeg_quality=int(config["output"]["jpeg_quality"]),
                   max_pixels=int(config["limits"]["max_pixels"]), max_bytes=int(config["limits"]["max_bytes"]),
                   keep_aspect=bool(settings.get("keep_aspect", False) if keep_aspect is None else keep_aspect),
                   upsample=upsample, guided_radius=radius, guided_eps=eps,
                   **{key: float(settings.get(key, fallback[key])) for key in REFERENCE_KEYS},
                   training_marginal=_training_marginal(meta),
                   guard_entropy=float(settings.get("guard_entropy", 0.0)),
                   guard_cast=float(settings.get("guard_cast", 0.0)))

    def record(self) -> dict:
        """The settings as summary.json records them (without the 313 values of p_train)."""
        return {key: value for key, value in asdict(self).items() if key != "training_marginal"}

    def shift(self, reference: Reference) -> np.ndarray:
        """The logit shift that steers towards `reference`; `colorize_stream` computes it once per reference."""
        q = len(reference.distribution)
        marginal = np.asarray(self.training_marginal) if self.training_marginal else np.full(q, 1.0 / q)
        return logit_shift(reference.distribution, marginal, self.reference_strength, self.reference_floor)

    def network_shape(self, height: int, width: int) -> tuple[int, int]:
        """(rows, columns) of the network input that a height×width photo's L is resized to.

        With `keep_aspect`, each side is the square's side times the square root of the aspect ratio (or divided
        by it), rounded to the nearest multiple of the network's stride: the area stays within about 10 % of
        input_size² and each side within half a stride of the photo's proportions, so nothing needs padding.
        Keeping the area rather than the shorter side bounds the cost per photo (a 60×4000 panorama would
        otherwise be a 64×4272 input, 66 squares' worth) and puts photos of similar shapes into the same batches.
        """
        size = self.input_size
        if not self.keep_aspect:
            return size, size
        stretch = math.sqrt(width / height)
        rows, columns = (max(NETWORK_STRIDE, round(size * factor / NETWORK_STRIDE) * NETWORK_STRIDE)
                         for factor in (1 / stretch, stretch))
        return rows, columns


def _training_marginal(meta: dict) -> tuple:
    """p_train of a model's `colorspark.json`; empty for a test's stand-in without a prior (shifts then take p_train
    as uniform)."""
    if "prior" not in meta:
        return ()
    sigma = meta.get("config", {}).get("bins", {}).get("prior_sigma", 5.0)
    return tuple(training_marginal(meta["prior"], meta["class_weights"], sigma).tolist())


@dataclass
class Colorized:
    """One colorized image, with what the job needs to write and score it."""
    pixels: np.ndarray              # the decoded input: H×W×3 uint8, or H×W for a single-channel (gray) file
    lab: np.ndarray                 # the colorized image, H×W×3 float32 Lab (the input's own L)
    rgb: np.ndarray                 # the colorized image, H×W×3 uint8
    jpeg: bytes
    ab_true: np.ndarray | None      # the input's own ab where it has colour and scores need it, else None
    seconds: float                  # this image's share of the work, batch prediction included
    coloured: bool = False          # whether the input has colour (its ab computed or not)
    reference: str | None = None        # the name of the reference that steered the colours
    divergence: float | None = None     # how far that reference is from the model's own prediction
    reference_looks_wrong: bool = False  # divergence above `Rendering.reference_warning`

    @property
    def rgb_in(self) -> np.ndarray:
        """The decoded input as H×W×3 uint8 (a gray file's value in all three channels, made only when asked)."""
        if self.pixels.ndim == 3:
            return self.pixels
        return np.repeat(self.pixels[..., None], 3, axis=-1)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    def gray_values(self) -> np.ndarray:
        """A gray input's values, H×W uint8 (its one channel, or the first of three equal ones)."""
        return self.pixels if self.pixels.ndim == 2 else self.pixels[..., 0]

    def gray_rgb(self) -> np.ndarray:
        """The input rendered without colour (L with ab = 0): the gray baseline. A gray input is that already."""
        if not self.coloured:
            return self.rgb_in
        lightness = self.lab[..., 0]
        return lab_to_rgb8(np.stack([lightness, np.zeros_like(lightness), np.zeros_like(lightness)], axis=-1))


@dataclass
class Failed:
    error: str


# --- pure image steps -------------------------------------------------------------------------------------------------

def model_input(l_full: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Full-resolution L -> the network's input of L codes (L·2.55), resized to `shape` (rows, columns; Pillow
    antialiases when shrinking)."""
    image = Image.fromarray(np.ascontiguousarray(l_full, dtype=np.float32), mode="F")
    return np.asarray(image.resize((shape[1], shape[0]), Image.BILINEAR), dtype=np.float32) * L_SCALE


@functools.lru_cache(maxsize=512)
def _bilinear_weights(n_in: int, n_out: int) -> np.ndarray:
    """The n_out×n_in matrix of Pillow's bilinear resize along one axis, taken from Pillow itself by resizing the
    identity: resizing is linear and separable, so upsampling a channel is then two small matrix products."""
    identity = Image.fromarray(np.eye(n_in, dtype=np.float32), mode="F")
    return np.asarray(identity.resize((n_in, n_out), Image.BILINEAR), dtype=np.float32)


def upsample_ab(ab_small: np.ndarray, width: int, height: int, out: np.ndarray | None = None) -> np.ndarray:
    """ab at the network's output size -> H×W×2 (into `out` if given), equal to Pillow's bilinear resize of each
    channel within float rounding, at a fraction of its cost: one product along the rows, then one matrix product
    for both channels along the columns."""
    h, w = ab_small.shape[:2]
    rows = _bilinear_weights(h, height)                                     # H×h
    cols = _bilinear_weights(w, width)                                      # W×w
    along_rows = rows @ np.asarray(ab_small, np.float32).reshape(h, w * 2)  # H×(w·2)
    channels_first = along_rows.reshape(height, w, 2).transpose(0, 2, 1).reshape(height * 2, w)
    full = (channels_first @ cols.T).reshape(height, 2, width)              # H×2×W
    if out is None:
        out = np.empty((height, width, 2), dtype=np.float32)
    np.copyto(out, full.transpose(0, 2, 1))
    return out


def guided_ab(l_full: np.ndarray, ab_small: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """ab brought up to L's size so that colour changes where L changes: the bilinear ab plus L's detail within each
    cell times the local slope of ab on L, q = up(ab) + up(ā)·(L/100 − up(L̄)).

    The slope is the guided filter's (He, Sun and Tang 2010; `guided.linear_coefficients`): L is reduced to the
    network's output grid (each cell's mean L), ab ≈ a·L̄ + b is fitted in every window
    of (2·radius+1)² cells, a = cov(L̄, ab) / (var(L̄) + eps), averaged over the windows holding a cell, and brought
    up bilinearly like ab itself. This is the fast guided filter's form (He and Sun 2015: coefficients at low
    resolution, applied to the full-resolution guide) with the offset left to the network's own cell values: where L
    holds no more detail than its cell means brought up bilinearly the result is the bilinear one exactly, and no
    cell's colour is smoothed into its neighbours (the filter proper is a smoother, and it blurred ab more than it
    sharpened it; see the model card, "Edge-aware upsampling").
    `radius` is in output cells, whatever the photo's size; `eps` is in (L/100)²: a window whose cells' mean L
    varies by much less than √eps (e.g. 0.07 for 5e-3, 7 L) gets a small slope and stays bilinear.

    The result is clipped to the range of the predicted cells, per channel: where the fit extrapolates (a thin dark
    line in a bright cell) no colour comes out more extreme than the network predicted somewhere in the photo."""
    from .guided import area_weights, linear_coefficients

    height, width = l_full.shape
    rows, cols = ab_small.shape[:2]
    guide = np.asarray(l_full, np.float32) / 100.0
    guide_small = area_weights(height, rows) @ guide @ area_weights(width, cols).T
    cells = np.asarray(ab_small, np.float32)
    slopes, _ = linear_coefficients(guide_small, cells, radius, eps)
    up_rows = _bilinear_weights(rows, height)  # upsample_ab's weights, one channel at a time
    up_cols_t = _bilinear_weights(cols, width).T
    detail = guide - (up_rows @ guide_small) @ up_cols_t
    ab_full = upsample_ab(cells, width, height)
    low, high = cells.min(axis=(0, 1)), cells.max(axis=(0, 1))
    for c in range(2):  # per channel: contiguous products, and a clip with scalar bounds (a broadcast one is slow)
        channel = ab_full[..., c]
        channel += ((up_rows @ slopes[..., c]) @ up_cols_t) * detail
        np.clip(channel, low[c], high[c], out=channel)
    return ab_full


def recombine(l_full: np.ndarray, ab_small: np.ndarray, *, upsample: str = "bilinear", radius: int = 1,
              eps: float = 5e-3) -> np.ndarray:
    """The colorized Lab image: the original full-resolution L with the predicted ab brought up to its size,
    bilinearly or, with `upsample="guided"`, edge-aware (`guided_ab` with `radius` and `eps`)."""
    height, width = l_full.shape
    lab = np.empty((height, width, 3), dtype=np.float32)
    lab[..., 0] = l_full
    if upsample == "bilinear":
        upsample_ab(ab_small, width, height, out=lab[..., 1:])
    elif upsample == "guided":  # on a contiguous H×W×2 array: per-channel work on lab's strided view costs 2× more
        lab[..., 1:] = guided_ab(l_full, ab_small, radius, eps)
    else:
        raise ValueError(f"upsample must be one of {', '.join(UPSAMPLING)}, got {upsample!r}")
    return lab


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# --- the stream ----------------------------------------------------------------------------------------------------

@dataclass
class _Prepared:
    pixels: np.ndarray
    l_full: np.ndarray
    ab_true: np.ndarray | None
    x: np.ndarray
    seconds: float
    coloured: bool
    reference: Reference | None = None

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in (self.pixels, self.l_full, self.x, self.ab_true) if array is not None)


def _prepare(data, rendering: Rendering, truth: bool = True) -> _Prepared | Failed:
    """Decode an input and derive its network input; a colour input's own ab only with `truth` (what its scores
    need): without, its L alone costs less than half of its Lab."""
    started = time.perf_counter()
    if isinstance(data, Failed):
        return data
    if data is None:
        return Failed("no image bytes (null)")
    try:
        pixels = data if isinstance(data, np.ndarray) else decode_image(
            data, max_pixels=rendering.max_pixels, max_bytes=rendering.max_bytes, keep_gray=True)
        coloured = pixels.ndim == 3 and not is_grayscale(pixels)  # a gray RGB file has JPEG's chroma noise
        if pixels.ndim == 2:
            l_full, ab_true = gray_to_l(pixels), None
        elif not (coloured and truth):
            l_full, ab_true = rgb_to_l(pixels), None
        else:
            lab_in = rgb_to_lab(pixels)
            l_full, ab_true = lab_in[..., 0], lab_in[..., 1:]
        x = model_input(l_full, rendering.network_shape(*l_full.shape))
    except DecodeError as exc:
        return Failed(str(exc))
    except Exception as exc:
        return Failed(f"internal error: {type(exc).__name__}: {exc}")
    return _Prepared(pixels, l_full, ab_true, x, time.perf_counter() - started, coloured)


@dataclass
class _Predicted:
    """An image whose ab the network has predicted, waiting to be rendered when its turn to be released comes: it
    holds the decoded image and its L (5 bytes per pixel for a gray photo), not yet the Lab, RGB and JPEG (16 more)."""
    item: _Prepared
    ab_small: np.ndarray
    predict_share: float
    divergence: float | None = None


def _render(predicted: _Predicted, rendering: Rendering) -> Colorized | Failed:
    started = time.perf_counter()
    item = predicted.item
    try:
        lab = recombine(item.l_full, predicted.ab_small, upsample=rendering.upsample, radius=rendering.guided_radius,
                        eps=rendering.guided_eps)
        rgb = lab_to_rgb8(lab)
        jpeg = encode_jpeg(rgb, rendering.jpeg_quality) if rendering.encode_jpeg else b""
    except Exception as exc:
        return Failed(f"rendering failed: {type(exc).__name__}: {exc}")
    seconds = item.seconds + predicted.predict_share + time.perf_counter() - started
    divergence = predicted.divergence
    return Colorized(item.pixels, lab, rgb, jpeg, item.ab_true, seconds, item.coloured,
                     reference=item.reference.name if item.reference else None, divergence=divergence,
                     reference_looks_wrong=divergence is not None and 0 < rendering.reference_warning < divergence)


def _decode(reference: Reference | None, logits: np.ndarray, rendering: Rendering,
            shifts: dict[str, np.ndarray]) -> tuple[np.ndarray, float | None]:
    """One image's ab at the output stride and its reference's divergence. A reference's logit shift is made once
    per stream and kept in `shifts`. The do-no-harm guard holds back only colours no reference steers: a reference
    asks for its colours, so no cast of them is unsupported, and a reference scene sets the cast
    (`reference.match_cast`); at strength 0 it only measures, and the photo is decoded as without it."""
    if reference is not None and reference.key not in shifts:
        shifts[reference.key] = rendering.shift(reference)
    ab, divergence = steered_decode(logits, rendering.temperature, reference,
                                    shifts[reference.key] if reference else None, rendering.reference_floor)
    if reference is None or not rendering.reference_strength:
        ab = guard_ab(ab[None], logits[None], rendering.guard_entropy, rendering.guard_cast)[0]
    elif (target := reference.cast_target) is not None:
        ab = match_cast(ab, target, rendering.reference_cast)
    return ab, divergence


def _predict_batch(batch: list[_Prepared], get_model, rendering: Rendering,
                   shifts: dict[str, np.ndarray]) -> list[_Predicted | Failed]:
    """One network call for images of one input shape; each image decoded with its own reference, if any
    (`_decode`)."""
    started = time.perf_counter()
    try:
        logits = predict_logits(get_model(), np.stack([item.x for item in batch]))
        decoded = [_decode(item.reference, one, rendering, shifts) for item, one in zip(batch, logits)]
    except Exception as exc:  # e.g. out of memory: every image of the batch gets the reason
        return [Failed(f"prediction failed: {type(exc).__name__}: {exc}")] * len(batch)
    share = (time.perf_counter() - started) / len(batch)
    return [_Predicted(item, ab_small, share, divergence) for item, (ab_small, divergence) in zip(batch, decoded)]


def colorize_stream(items: Iterable[tuple[Any, Any]], get_model: Callable[[], Any], rendering: Rendering,
                    reference_of: Callable[[Any], Reference | None] | None = None,
                    adjust: Callable[[Any, np.ndarray, np.ndarray], np.ndarray] | None = None,
                    truth_of: Callable[[Any], bool] | None = None) -> Iterator[tuple[Any, Colorized | Failed]]:
    """(key, image bytes, decoded H×W×3 uint8 RGB pixels (video frames), or None) pairs -> (key, Colorized or Failed)
    pairs, one per input and in input order.

    `reference_of(key)`, when given, is the `Reference` that steers that input's colours (or None): each distinct
    reference's logit shift is computed once per stream.

    `adjust(key, network input, predicted ab)`, if given, returns the ab to render instead; it is called in input
    order, image after image, which is what a temporal filter over video frames needs.

    `truth_of(key)`, if given, says whether that input's own ab is needed (to score it); without, every colour
    input's is computed (`Colorized.ab_true`).

    A `Failed` in place of the bytes (a file that could not even be read) passes through as that input's outcome.
    `get_model` is called only once there is something to predict, so a partition of bad files never loads a model.

    Images are predicted in batches of one network input shape (with `keep_aspect` there is one shape per aspect
    ratio, to the network's stride). A batch runs when it is full. Decoded images, waiting for their batch or, once
    predicted, for an earlier image to be released, are held up to `HELD_BYTES`; past that, the batch of the oldest
    waiting image runs, full or not, which lets the outcomes go out in input order again. An image is rendered (Lab,
    RGB, JPEG: three times the bytes of its decoded pixels and L) only when it is released, so the budget holds as
    many images as it can. Small photos of a dozen shapes fill their batches (a partly filled batch costs nearly a
    full one), while large photos, or a rare shape early in a partition, cannot make a task hold more than the budget
    and a batch.
    """
    outcomes: dict[int, tuple[Any, _Predicted | Failed | None]] = {}
    waiting: dict[tuple, list[tuple[int, _Prepared]]] = {}
    held = 0
    released = 0
    shifts: dict[str, np.ndarray] = {}

    def run(shape):
        nonlocal held
        batch = waiting.pop(shape)
        outcomes_of_batch = _predict_batch([item for _, item in batch], get_model, rendering, shifts)
        for (index, item), outcome in zip(batch, outcomes_of_batch):
            if isinstance(outcome, Failed):
                held -= item.nbytes
            outcomes[index] = (outcomes[index][0], outcome)

    def oldest(shape) -> int:  # the input index of the first image waiting for this shape's batch
        return waiting[shape][0][0]

    def release():
        nonlocal released, held
        while released in outcomes and outcomes[released][1] is not None:
            key, outcome = outcomes.pop(released)
            if isinstance(outcome, _Predicted):
                held -= outcome.item.nbytes
                if adjust is not None:
                    outcome.ab_small = adjust(key, outcome.item.x, outcome.ab_small)
                outcome = _render(outcome, rendering)
            yield key, outcome
            released += 1

    for index, (key, data) in enumerate(items):
        item = _prepare(data, rendering, truth_of(key) if truth_of else True)
        if isinstance(item, Failed):
            outcomes[index] = (key, item)
        else:
            item.reference = reference_of(key) if reference_of else None
            outcomes[index] = (key, None)
            held += item.nbytes
            batch = waiting.setdefault(item.x.shape, [])
            batch.append((index, item))
            if len(batch) >= rendering.batch_size:
                run(item.x.shape)
            while held > HELD_BYTES and waiting:
                run(min(waiting, key=oldest))
        yield from release()
    for shape in sorted(waiting, key=oldest):
        run(shape)
    yield from release()

