"""Develop one camera RAW file into every rendition of a recipe.

The RAW is decoded once by LibRaw (through rawpy) and every rendition is resized from that
one image. Before decoding, a sparse sample of the sensor data is metered: it says whether
the frame holds a picture at all, gives the auto white balance, and places the exposure
(middle grey for the frame's average brightness, highlights kept below clipping). LibRaw
is then told exactly what to do (white balance multipliers, linear gain, output colour
space and transfer curve), so the fast path costs no pass over the image beyond LibRaw's
own. When no rendition needs more than half the sensor, LibRaw's half-size decode (no
demosaicing) is used.

A file that cannot be developed raises DevelopError with a stable code, and leaves no
output behind: a bad file fails that file, never the job.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import rawpy
from numpy.typing import NDArray
from PIL import Image

from darkroom.imaging import icc, tiff
from darkroom.imaging.metadata import Metadata, exif_bytes, exif_ifd, read_metadata
from darkroom.imaging.sensor import sensor_is_blank
from darkroom.recipes import DEFAULT_RECIPE, Recipe, Rendition

BLANK_REASON = "no image data (sensor data is empty or stripped)"
# A developed frame with fewer than this share of pixels above DARK_LEVEL is black.
MIN_LIT_SHARE = 1 / 1000
DARK_LEVEL = 8

# Metering: about this many CFA cells (a 2x2 Bayer block each) are enough for stable
# statistics and cost a few milliseconds on any sensor.
METER_CELLS = 60_000
# The frame's log-average luminance is placed here: the photographic middle grey.
MIDDLE_GREY = 0.18
# Raw values this close to the white level are the sensor saturating, not the scene.
SATURATED = 0.98
# "Not clipping highlights" means this percentile of the brightest channel stays below
# white: a few hot pixels or specular glints must not hold the whole frame down.
HIGHLIGHT_PERCENTILE = 99.9
GAIN_RANGE = (1 / 16, 16.0)
# With highlights "recover", scene values up to this many times white are rolled off
# smoothly into the top of the range instead of clipping.
RECOVER_HEADROOM = 4.0
# Where the highlight roll-off starts, as a share of output white.
SHOULDER_START = 0.8
# Rec. 709 / sRGB luminance weights.
LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

_LIBRAW_SPACES = {
    "srgb": rawpy.ColorSpace.sRGB,
    "display-p3": rawpy.ColorSpace.P3D65,
    "adobe-rgb": rawpy.ColorSpace.Adobe,
}


class DevelopError(Exception):
    """A file that cannot be developed; `code` is stable, the message is for people."""

    def __init__(self, code: str, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.code = code
        self.file = file
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (worker pools) with its fields intact.
        return (type(self), (self.code, self.file, self.reason))


@dataclass(frozen=True)
class RenderedFile:
    rendition: str
    path: Path
    width: int
    height: int
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class DevelopResult:
    source: str
    # Size of the decoded, upright image every rendition was made from (half the sensor
    # on the half_size fast path).
    width: int
    height: int
    half_size: bool
    renditions: tuple[RenderedFile, ...]
    decode_seconds: float
    render_seconds: float
    # What the recipe came to for this file: linear exposure gain, and the red, green,
    # blue white balance multipliers (green 1).
    exposure_gain: float = 1.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)


def develop_file(
    src: Path,
    out_dir: Path,
    recipe: Recipe = DEFAULT_RECIPE,
    *,
    threads: int | None = None,
) -> DevelopResult:
    """Develop `src` into out_dir/<rendition>/<stem>.<ext> for every rendition of `recipe`.

    `threads`: how many threads may share one resize (default: one per core); a pool that
    develops a file per core passes 1.
    """
    src = Path(src)
    name = src.name
    started = time.perf_counter()
    try:
        size = src.stat().st_size
    except OSError as exc:
        raise DevelopError("decode_failed", name, f"cannot read file ({exc.strerror})") from exc
    if size == 0:
        raise DevelopError("empty_file", name, "empty file (0 bytes)")

    decoded = _decode(src, recipe)
    metadata = read_metadata(src, decoded.libraw, keep_gps=recipe.metadata.keep_gps)
    decode_done = time.perf_counter()
    try:
        _check_developed(decoded.pixels8, name)
        height, width = decoded.pixels8.shape[:2]
        image = _to_image(decoded.pixels8)
        # Pillow holds its own copy from here on; a 24 MP frame is 72 MB we need not keep.
        decoded.pixels8 = _EMPTY
        try:
            renditions = _render_all(
                image, decoded.pixels16, src, Path(out_dir), recipe, metadata, threads or _cores()
            )
        finally:
            image.close()
    finally:
        decoded.pixels16 = None
    return DevelopResult(
        source=name,
        width=width,
        height=height,
        half_size=decoded.half_size,
        renditions=renditions,
        decode_seconds=decode_done - started,
        render_seconds=time.perf_counter() - decode_done,
        exposure_gain=decoded.gain,
        white_balance=decoded.white_balance,
    )


_EMPTY: NDArray[np.uint8] = np.zeros((0, 0, 3), dtype=np.uint8)


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# -- decoding ---------------------------------------------------------------------------
def _libraw_message(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else type(exc).__name__
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return str(detail)


@contextlib.contextmanager
def _libraw_errors(name: str) -> Iterator[None]:
    """LibRaw's failures as DevelopErrors with stable codes and LibRaw's own words."""
    try:
        yield
    except DevelopError:
        raise
    except rawpy.LibRawFileUnsupportedError as exc:
        raise DevelopError(
            "unsupported_format",
            name,
            f"unsupported format or not a RAW file (LibRaw: {_libraw_message(exc)})",
        ) from exc
    except rawpy.LibRawIOError as exc:
        raise DevelopError(
            "truncated",
            name,
            f"truncated or unreadable RAW data (LibRaw: {_libraw_message(exc)})",
        ) from exc
    except rawpy.LibRawError as exc:
        raise DevelopError(
            "decode_failed", name, f"cannot decode RAW data (LibRaw: {_libraw_message(exc)})"
        ) from exc
    except MemoryError as exc:
        raise DevelopError("decode_failed", name, "not enough memory to decode") from exc
    except OSError as exc:
        raise DevelopError("decode_failed", name, f"cannot read file ({exc})") from exc
    except Exception as exc:
        # Whatever else a hostile file provokes in the decoder fails that file, not the job.
        raise DevelopError(
            "decode_failed", name, f"cannot decode ({type(exc).__name__}: {exc})"
        ) from exc


def wants_half_size(recipe: Recipe, sensor_long_edge: int) -> bool:
    # Half-size skips demosaicing (each 2x2 Bayer block becomes one pixel): 3-4x faster and
    # exact enough when no rendition needs more than half the sensor.
    return all(
        r.long_edge != "full" and r.long_edge * 2 <= sensor_long_edge for r in recipe.renditions
    )


@dataclass
class _Decoded:
    pixels8: NDArray[np.uint8]
    # Only when a rendition is 16-bit: the same picture with 16 bits per sample.
    pixels16: NDArray[np.uint16] | None
    half_size: bool
    gain: float
    white_balance: tuple[float, float, float]
    libraw: dict[str, Any]


@dataclass(frozen=True)
class _Plan:
    """How LibRaw is to develop one file."""

    user_wb: list[float] | None  # R, G, B, G2; None: let LibRaw choose (unmetered layouts)
    use_camera_wb: bool
    use_auto_wb: bool
    gain: float
    auto_bright: bool  # only for layouts we cannot meter
    # Linear value that becomes output white: 1 clips, more rolls highlights off.
    white: float
    white_balance: tuple[float, float, float]


def _decode(src: Path, recipe: Recipe) -> _Decoded:
    name = src.name
    space = icc.SPACES[recipe.colour_space]
    needs16 = any(r.bits == 16 for r in recipe.renditions)
    with _libraw_errors(name), rawpy.imread(str(src)) as raw:
        raw.unpack()
        # Before LibRaw brightens a frame with no picture in it into noise.
        if sensor_is_blank(raw):
            raise DevelopError("blank_frame", name, BLANK_REASON)
        libraw = _libraw_metadata(raw)
        sizes = raw.sizes
        half_size = wants_half_size(recipe, max(sizes.width, sizes.height))
        plan = _plan(raw, recipe)
        linear = plan.white > 1.0
        params: dict[str, Any] = {
            "half_size": half_size,
            "output_color": _LIBRAW_SPACES[recipe.colour_space],
            "highlight_mode": (
                rawpy.HighlightMode.Blend
                if recipe.highlights == "recover"
                else rawpy.HighlightMode.Clip
            ),
            # LibRaw would otherwise take the frame's brightest value as the white level
            # when it is near the nominal one: data-dependent scaling the meter can't know.
            "adjust_maximum_thr": 0.0,
            "no_auto_bright": not plan.auto_bright,
            "bright": plan.gain / plan.white,
            "use_camera_wb": plan.use_camera_wb,
            "use_auto_wb": plan.use_auto_wb,
            "user_wb": plan.user_wb,
            "output_bps": 16 if (needs16 or linear) else 8,
            # The output space's own transfer curve, to match the ICC profile; linear when
            # the highlight roll-off is ours to apply.
            "gamma": (1.0, 1.0) if linear else _libraw_gamma(space),
        }
        pixels: Any = raw.postprocess(**params)
    # Leaving the `with` frees LibRaw's own buffers (raw data and the working image) now.
    pixels16: NDArray[np.uint16] | None = None
    pixels8: NDArray[np.uint8]
    if linear:
        lut = _tone_lut(space, plan.white)
        encoded: NDArray[np.uint16] = lut[pixels]
        del pixels
        pixels16 = encoded if needs16 else None
        pixels8 = _to_8bit(encoded)
    elif needs16:
        pixels16 = pixels
        pixels8 = _to_8bit(pixels)
    else:
        pixels8 = pixels
    return _Decoded(pixels8, pixels16, half_size, plan.gain, plan.white_balance, libraw)


def _libraw_gamma(space: icc.ColourSpace) -> tuple[float, float]:
    # LibRaw's (power, toe slope): the sRGB curve, or a pure power law (slope 0).
    return (2.4, 12.92) if space.gamma is None else (space.gamma, 0.0)


def _to_8bit(pixels: NDArray[np.uint16]) -> NDArray[np.uint8]:
    # Round, not truncate: 65535 * k / 255 maps back to exactly k.
    return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _tone_lut(space: icc.ColourSpace, white: float) -> NDArray[np.uint16]:
    """Linear 16-bit (65535 = `white`) -> the space's curve, highlights rolled off."""
    x = np.arange(65536, dtype=np.float64) / 65535 * white
    return np.round(space.encode(shoulder(x, white)) * 65535).astype(np.uint16)


def shoulder(x: NDArray[np.float64], white: float) -> NDArray[np.float64]:
    """Identity up to SHOULDER_START, then a smooth roll-off that reaches 1 at `white`.

    Reinhard's extended operator on the part above the knee: slope 1 where it starts (no
    visible kink) and exactly 1 at the brightest value kept, so nothing clips below it.
    """
    knee = SHOULDER_START
    if white <= 1.0:
        return np.minimum(x, 1.0)
    span = 1.0 - knee
    u = np.maximum(x - knee, 0.0) / span
    top = (white - knee) / span
    rolled = knee + span * u * (1 + u / top**2) / (1 + u)
    return np.where(x <= knee, x, np.minimum(rolled, 1.0))


def _libraw_metadata(raw: rawpy.RawPy) -> dict[str, Any]:
    found: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        other = raw.other
        found.update(
            iso=other.iso_speed,
            shutter=other.shutter_speed,
            aperture=other.aperture,
            focal_length=other.focal_length,
            artist=other.artist,
        )
        when = other.timestamp
        # LibRaw reports 0 (the epoch) when the file carries no date.
        if when.year > 1970:
            found["taken"] = when.strftime("%Y:%m:%d %H:%M:%S")
    with contextlib.suppress(Exception):
        found.update(lens_make=raw.lens.make, lens_model=raw.lens.model)
    return found


# -- metering ---------------------------------------------------------------------------
def cfa_cells(raw: rawpy.RawPy) -> tuple[NDArray[np.float32], NDArray[np.bool_]] | None:
    """Camera red, green, blue of a sparse grid of CFA cells, black-subtracted and scaled
    to the white level, and which cells hold a saturated site; None for layouts that are
    not a red-green-blue colour filter array (monochrome, Foveon, linear DNG, CMYG)."""
    try:
        data = raw.raw_image_visible
        pattern = raw.raw_pattern
        desc = raw.color_desc.decode("ascii", "replace")
    except Exception:
        return None
    if data.ndim != 2 or pattern is None or pattern.ndim != 2:
        return None
    p = pattern.shape[0]
    if pattern.shape != (p, p) or p not in (2, 6):
        return None
    letters = [desc[i] if i < len(desc) else "?" for i in pattern.flat]
    if set(letters) != {"R", "G", "B"}:
        return None
    rows, cols = data.shape[0] // p, data.shape[1] // p
    if rows == 0 or cols == 0:
        return None
    stride = max(1, int(math.sqrt(rows * cols / METER_CELLS)))
    # Gather only the sampled cells: the visible plane is a view with margins, and any
    # reshape of the whole of it would copy the full sensor.
    row_index = (np.arange(0, rows, stride)[:, None] * p + np.arange(p)).ravel()
    col_index = (np.arange(0, cols, stride)[:, None] * p + np.arange(p)).ravel()
    cells = data[row_index[:, None], col_index[None, :]]
    cells = cells.reshape(len(row_index) // p, p, len(col_index) // p, p)
    sites = cells.transpose(0, 2, 1, 3).reshape(-1, p * p).astype(np.float32)
    black = np.array([raw.black_level_per_channel[i] for i in pattern.flat], dtype=np.float32)
    span = np.maximum(float(raw.white_level) - black, 1.0)
    sites = (sites - black) / span
    saturated = (sites >= SATURATED).any(axis=1)
    rgb = np.empty((len(sites), 3), dtype=np.float32)
    for channel, letter in enumerate("RGB"):
        rgb[:, channel] = sites[:, [i for i, x in enumerate(letters) if x == letter]].mean(axis=1)
    return np.maximum(rgb, 0.0), saturated


def _camera_multipliers(raw: rawpy.RawPy) -> NDArray[np.float64]:
    for source in ("camera_whitebalance", "daylight_whitebalance"):
        with contextlib.suppress(Exception):
            values = np.array(getattr(raw, source)[:3], dtype=np.float64)
            if np.all(np.isfinite(values)) and np.all(values > 0):
                return values / values[1]
    return np.ones(3)


def grey_world(cells: NDArray[np.float32], saturated: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Multipliers that make the frame's average colour neutral (saturated and nearly
    black cells, whose colour is the sensor's rather than the scene's, left out)."""
    usable = ~saturated & (cells.min(axis=1) > 0.002)
    if np.count_nonzero(usable) < 100:
        usable = ~saturated
    means = cells[usable].astype(np.float64).mean(axis=0) if usable.any() else np.ones(3)
    if not np.all(means > 0):
        return np.ones(3)
    return np.asarray(means[1] / means)


def _plan(raw: rawpy.RawPy, recipe: Recipe) -> _Plan:
    wb, exposure = recipe.white_balance, recipe.exposure
    recover = recipe.highlights == "recover"
    compensation = 2.0**exposure.compensation_ev
    metered = cfa_cells(raw)
    if metered is None:
        # Unusual layouts: LibRaw's own white balance and brightening, the recipe on top.
        fixed = list(wb.multipliers) if wb.multipliers else None
        return _Plan(
            user_wb=[*fixed, fixed[1]] if fixed else None,
            use_camera_wb=wb.mode == "camera",
            use_auto_wb=wb.mode == "auto",
            gain=compensation,
            auto_bright=exposure.mode == "auto",
            white=1.0,
            white_balance=tuple(fixed) if fixed else (1.0, 1.0, 1.0),  # type: ignore[arg-type]
        )
    cells, saturated = metered
    if wb.mode == "fixed" and wb.multipliers:
        multipliers = np.array(wb.multipliers, dtype=np.float64)
    elif wb.mode == "auto":
        multipliers = grey_world(cells, saturated)
    else:
        multipliers = _camera_multipliers(raw)
    multipliers = multipliers / multipliers[1]
    # What LibRaw's scale_colors does with them: the weakest (clip) or strongest (recover)
    # channel keeps the sensor's scale, and nothing goes past white.
    scale = multipliers / (multipliers.max() if recover else multipliers.min())
    camera = np.minimum(cells * scale.astype(np.float32), 1.0)
    rgb_cam = _rgb_cam(raw)
    rgb = camera @ rgb_cam.T
    peak = rgb.max(axis=1)
    if exposure.mode == "auto":
        luminance = np.maximum(rgb @ LUMA, 1e-4)
        key = float(np.exp(np.log(luminance).mean()))
        gain = MIDDLE_GREY / key
        # Only highlights the sensor still recorded can be protected.
        unsaturated = peak[~saturated] if (~saturated).any() else peak
        bright = float(np.percentile(unsaturated, HIGHLIGHT_PERCENTILE)) if unsaturated.size else 1
        headroom = RECOVER_HEADROOM if recover else 1.0
        if bright > 0:
            gain = min(gain, headroom / bright)
        gain = float(np.clip(gain, *GAIN_RANGE))
    else:
        # The camera's exposure: sensor white of the weakest channel is output white.
        gain = float(scale.max() / scale.min()) if recover else 1.0
    gain *= compensation
    white = 1.0
    if recover:
        brightest = float(np.percentile(peak, 99.99)) * gain if peak.size else 1.0
        white = float(np.clip(brightest, 1.0, RECOVER_HEADROOM))
    return _Plan(
        user_wb=[*multipliers.tolist(), float(multipliers[1])],
        use_camera_wb=False,
        use_auto_wb=False,
        gain=gain,
        auto_bright=False,
        white=white,
        white_balance=(float(multipliers[0]), 1.0, float(multipliers[2])),
    )


def _rgb_cam(raw: rawpy.RawPy) -> NDArray[np.float32]:
    """LibRaw's camera -> linear sRGB matrix (identity when the file gives none)."""
    with contextlib.suppress(Exception):
        matrix = np.array(raw.color_matrix, dtype=np.float32)[:3, :3]
        if np.all(np.isfinite(matrix)) and np.abs(matrix).sum() > 0:
            return matrix
    return np.eye(3, dtype=np.float32)


def _check_developed(rgb: NDArray[np.uint8], name: str) -> None:
    sample = rgb[::3, ::3]
    if sample.size == 0 or np.count_nonzero(sample > DARK_LEVEL) < MIN_LIT_SHARE * sample.size:
        raise DevelopError("blank_frame", name, BLANK_REASON)


def _to_image(rgb: NDArray[np.uint8]) -> Image.Image:
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        return Image.fromarray(rgb, "RGB")
    # Monochrome sensors: the outputs carry an RGB profile, so they must be RGB.
    return Image.fromarray(np.ascontiguousarray(rgb.reshape(rgb.shape[:2])), "L").convert("RGB")


# -- rendering --------------------------------------------------------------------------
def target_size(width: int, height: int, rendition: Rendition) -> tuple[int, int]:
    long_edge = max(width, height)
    wanted = long_edge if rendition.long_edge == "full" else rendition.long_edge
    if wanted >= long_edge:
        # Never upscale: a rendition larger than the image is the image.
        return width, height
    scale = wanted / long_edge
    if width >= height:
        return wanted, max(1, round(height * scale))
    return max(1, round(width * scale)), wanted


_pool_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def _threads(count: int) -> ThreadPoolExecutor:
    with _pool_lock:
        if count not in _pools:
            _pools[count] = ThreadPoolExecutor(count, thread_name_prefix="resize")
        return _pools[count]


# Bands shorter than this cost more in coordination than they save.
MIN_BAND_ROWS = 128


def resize(source: Image.Image, size: tuple[int, int], threads: int = 1) -> Image.Image:
    """Lanczos resize, split into horizontal bands across threads (Pillow drops the GIL).

    Each band names its source rows with `box`, and Pillow takes the filter's support from
    outside the box, so the bands join without a seam: the same pixels as one call.
    """
    if source.size == size:
        return source
    width, height = size
    ratio = source.height / height
    if ratio >= 2.0:
        # A large reduction: an integer box-reduce first, Lanczos over the last factor of 2
        # or more (Pillow's reducing_gap), is already cheap.
        return source.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    bands = min(threads, height // MIN_BAND_ROWS)
    if bands <= 1:
        return source.resize(size, Image.Resampling.LANCZOS)
    edges = [height * i // bands for i in range(bands + 1)]

    def band(i: int) -> Image.Image:
        top, bottom = edges[i], edges[i + 1]
        box = (0.0, top * ratio, float(source.width), bottom * ratio)
        return source.resize((width, bottom - top), Image.Resampling.LANCZOS, box=box)

    parts = list(_threads(threads).map(band, range(bands)))
    out = Image.new(source.mode, size)
    for top, part in zip(edges, parts, strict=False):
        out.paste(part, (0, top))
        part.close()
    return out


def _render_all(
    image: Image.Image,
    pixels16: NDArray[np.uint16] | None,
    src: Path,
    out_dir: Path,
    recipe: Recipe,
    metadata: Metadata,
    threads: int,
) -> tuple[RenderedFile, ...]:
    name = src.name
    profile = icc.profile(recipe.colour_space)
    exif = exif_bytes(metadata)
    # Largest first, so each smaller rendition is resized from the previous, smaller image.
    order = sorted(
        recipe.renditions,
        key=lambda r: max(target_size(image.width, image.height, r)),
        reverse=True,
    )
    written: dict[str, RenderedFile] = {}
    # Encoding one rendition overlaps resizing the next (both drop the GIL).
    saves: list[tuple[Rendition, Path, int, int, Future[int]]] = []
    pool = _threads(threads) if threads > 1 else None
    source = image
    try:
        for rendition in order:
            dest = out_dir / rendition.name / f"{src.stem}.{rendition.extension}"
            size = target_size(image.width, image.height, rendition)
            try:
                if rendition.bits == 16 and pixels16 is not None:
                    array = _resize16(pixels16, size, threads)
                    writer = _tiff_writer(array, profile, metadata)
                    width, height = size
                else:
                    resized = resize(source, size, threads)
                    writer = _pillow_writer(resized, rendition, profile, exif)
                    width, height = resized.size
                    source = resized
            except Exception as exc:
                raise _write_failed(name, rendition, exc) from exc
            future: Future[int]
            if pool is not None:
                future = pool.submit(save_atomic, dest, writer)
            else:
                future = Future()
                try:
                    future.set_result(save_atomic(dest, writer))
                except Exception as exc:
                    future.set_exception(exc)
            saves.append((rendition, dest, width, height, future))
        failure: BaseException | None = None
        for rendition, dest, width, height, future in saves:
            try:
                size_bytes = future.result()
            except Exception as exc:
                # Disk full, permissions, out of memory: the file fails, the job goes on.
                failure = failure or _write_failed(name, rendition, exc)
                continue
            written[rendition.name] = RenderedFile(
                rendition=rendition.name,
                path=dest,
                width=width,
                height=height,
                content_type=rendition.content_type,
                size_bytes=size_bytes,
            )
        if failure is not None:
            raise failure
    except BaseException:
        for _, dest, _, _, future in saves:
            with contextlib.suppress(BaseException):
                future.result()
            with contextlib.suppress(OSError):
                dest.unlink(missing_ok=True)
        raise
    return tuple(written[r.name] for r in recipe.renditions)


def _write_failed(name: str, rendition: Rendition, exc: BaseException) -> DevelopError:
    return DevelopError(
        "write_failed", name, f"cannot write the {rendition.name} rendition ({exc})"
    )


Writer = Callable[[BinaryIO], None]


def _pillow_writer(
    image: Image.Image, rendition: Rendition, icc_profile: bytes, exif: bytes
) -> Writer:
    def write(fh: BinaryIO) -> None:
        if rendition.format == "webp":
            image.save(fh, "WEBP", quality=rendition.quality, icc_profile=icc_profile, exif=exif)
        else:
            # Baseline, not progressive: libjpeg-turbo's progressive mode costs several
            # times the encode for a few percent of size.
            image.save(
                fh,
                "JPEG",
                quality=rendition.quality,
                optimize=False,
                progressive=False,
                icc_profile=icc_profile,
                exif=exif,
            )

    return write


def _resize16(pixels: NDArray[np.uint16], size: tuple[int, int], threads: int) -> NDArray:
    if (pixels.shape[1], pixels.shape[0]) == size:
        return pixels
    channels = []
    for c in range(pixels.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(pixels[..., c]))
        channels.append(np.asarray(resize(plane, size, threads)))
    return np.stack(channels, axis=2)


# TIFF tags of the 16-bit renditions.
_WIDTH, _LENGTH, _BITS, _COMPRESSION, _PHOTOMETRIC = 256, 257, 258, 259, 262
_SAMPLES, _ROWS_PER_STRIP, _PLANAR, _PREDICTOR, _ICC = 277, 278, 284, 317, 34675
_DEFLATE, _HORIZONTAL_DIFFERENCING = 8, 2


def _tiff_writer(pixels: NDArray[np.uint16], icc_profile: bytes, metadata: Metadata) -> Writer:
    def write(fh: BinaryIO) -> None:
        height, width = pixels.shape[:2]
        # Horizontal differencing (TIFF predictor 2) makes smooth 16-bit data compress.
        diff = pixels.astype(np.uint16, copy=True)
        diff[:, 1:] -= pixels[:, :-1]
        data = zlib.compress(diff.astype("<u2").tobytes(), 4)
        ifd = tiff.Ifd(strip=data)
        ifd.add(_WIDTH, tiff.LONG, [width]).add(_LENGTH, tiff.LONG, [height])
        ifd.add(_BITS, tiff.SHORT, [16, 16, 16]).add(_COMPRESSION, tiff.SHORT, [_DEFLATE])
        ifd.add(_PHOTOMETRIC, tiff.SHORT, [2]).add(_SAMPLES, tiff.SHORT, [3])
        ifd.add(_ROWS_PER_STRIP, tiff.LONG, [height]).add(_PLANAR, tiff.SHORT, [1])
        ifd.add(_PREDICTOR, tiff.SHORT, [_HORIZONTAL_DIFFERENCING])
        ifd.add(_ICC, tiff.UNDEFINED, icc_profile)
        fh.write(tiff.write_tiff(exif_ifd(metadata, main=ifd)))

    return write


def save_atomic(dest: Path, write: Writer) -> int:
    """Write through `write` so that `dest` is either absent or complete, never half-written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        size = tmp.stat().st_size
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size
