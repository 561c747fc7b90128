"""Decoding a RAW once with LibRaw, as the metering planned it, into 8-bit (and 16-bit) pixels."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rawpy
from numpy.typing import NDArray

from darkroom.imaging import icc
from darkroom.imaging.develop import crop
from darkroom.imaging.develop.metering import make_plan
from darkroom.imaging.develop_result import DevelopError
from darkroom.imaging.sensor import sensor_is_blank
from darkroom.recipes import Recipe

BLANK_REASON = "no image data (sensor data is empty or stripped)"
# A developed frame with fewer than this share of pixels above DARK_LEVEL is black.
MIN_LIT_SHARE = 1 / 1000
DARK_LEVEL = 8
OUT_OF_MEMORY_REASON = "not enough memory to develop this file"
# Where the highlight roll-off starts, as a share of output white.
SHOULDER_START = 0.8

_LIBRAW_SPACES = {
    "srgb": rawpy.ColorSpace.sRGB,
    "display-p3": rawpy.ColorSpace.P3D65,
    "adobe-rgb": rawpy.ColorSpace.Adobe,
}


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
    except (rawpy.LibRawUnsufficientMemoryError, rawpy.LibRawMemPoolOverflowError) as exc:
        # LibRaw reports a failed allocation as a mempool overflow too.
        raise DevelopError("out_of_memory", name, OUT_OF_MEMORY_REASON) from exc
    except rawpy.LibRawError as exc:
        raise DevelopError(
            "decode_failed", name, f"cannot decode RAW data (LibRaw: {_libraw_message(exc)})"
        ) from exc
    except MemoryError as exc:
        raise DevelopError("out_of_memory", name, OUT_OF_MEMORY_REASON) from exc
    except OSError as exc:
        if _is_enomem(exc):
            raise DevelopError("out_of_memory", name, OUT_OF_MEMORY_REASON) from exc
        raise DevelopError("decode_failed", name, f"cannot read file ({exc})") from exc
    except Exception as exc:
        # Whatever else a hostile file provokes in the decoder fails that file, not the job.
        raise DevelopError(
            "decode_failed", name, f"cannot decode ({type(exc).__name__}: {exc})"
        ) from exc


def _is_enomem(exc: OSError) -> bool:
    # rawpy raises OSError((12, "Cannot allocate memory")), one tuple argument, when
    # LibRaw's output image cannot be allocated.
    first = exc.args[0] if exc.args else None
    return exc.errno == errno.ENOMEM or (isinstance(first, tuple) and first[:1] == (errno.ENOMEM,))


def wants_half_size(recipe: Recipe, sensor_long_edge: int) -> bool:
    # Half-size skips demosaicing (each 2x2 Bayer block becomes one pixel): 3-4x faster and
    # exact enough when no rendition needs more than half the sensor.
    return all(
        r.long_edge != "full" and r.long_edge * 2 <= sensor_long_edge for r in recipe.renditions
    )


@dataclass
class Decoded:
    pixels8: NDArray[np.uint8]
    # Only when a rendition is 16-bit: the same picture with 16 bits per sample.
    pixels16: NDArray[np.uint16] | None
    half_size: bool
    gain: float
    white_balance: tuple[float, float, float]
    libraw: dict[str, Any]
    # What was decided for this file and why, for the run's manifest (crop, white balance).
    notes: dict[str, str]
    # LibRaw's flip, as applied: how the sensor was turned upright.
    flip: int = 0


def decode(src: Path, recipe: Recipe, *, orientation: int | None = None) -> Decoded:
    """`orientation`: a TIFF Orientation that replaces the file's (a sidecar's)."""
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
        plan = make_plan(raw, recipe)
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
        flip = crop.FLIP_FOR_ORIENTATION.get(orientation or 0)
        if flip is not None:
            params["user_flip"] = flip
            sizes = sizes._replace(flip=flip)
        pixels: Any = raw.postprocess(**params)
        # `sizes` as read before postprocessing: LibRaw halves some of them on the way.
        pixels, notes = _crop(pixels, sizes)
    notes["white_balance"] = plan.white_balance_source
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
    return Decoded(
        pixels8, pixels16, half_size, plan.gain, plan.white_balance, libraw, notes, int(sizes.flip)
    )


def _crop(pixels: Any, sizes: Any) -> tuple[Any, dict[str, str]]:
    """The camera's crop, then any demosaicing edge lines, cut away (views, no copies)."""
    notes: dict[str, str] = {}
    box = crop.camera_crop(sizes)
    if box is not None:
        upright = crop.upright_box(box, sizes, pixels.shape)
        notes["crop"] = crop.describe(upright, pixels.shape, "the camera's crop")
        pixels = pixels[upright.top : upright.bottom, upright.left : upright.right]
    edges = crop.edge_trim(pixels)
    if (edges.width, edges.height) != (pixels.shape[1], pixels.shape[0]):
        border = crop.describe(edges, pixels.shape, "demosaicing border trimmed")
        notes["crop"] = f"{notes['crop']}; {border}" if "crop" in notes else border
        pixels = pixels[edges.top : edges.bottom, edges.left : edges.right]
    return pixels, notes


def _libraw_gamma(space: icc.ColourSpace) -> tuple[float, float]:
    # LibRaw's (power, toe slope): the sRGB curve, or a pure power law (slope 0).
    return (2.4, 12.92) if space.gamma is None else (space.gamma, 0.0)


def _to_8bit(pixels: NDArray[np.uint16]) -> NDArray[np.uint8]:
    # A table rather than arithmetic: no 32-bit copy of the frame (690 MB at 60 MP).
    return _TO_8BIT[pixels]


# Round, not truncate: 65535 * k / 255 maps back to exactly k.
_TO_8BIT: NDArray[np.uint8] = ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(
    np.uint8
)


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


def check_developed(rgb: NDArray[np.uint8], name: str) -> None:
    sample = rgb[::3, ::3]
    if sample.size == 0 or np.count_nonzero(sample > DARK_LEVEL) < MIN_LIT_SHARE * sample.size:
        raise DevelopError("blank_frame", name, BLANK_REASON)


def to_rgb(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The developed frame as (rows, columns, RGB): itself when it is that already."""
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return pixels
    # Monochrome sensors: the outputs carry an RGB profile, so they must be RGB.
    grey = pixels.reshape(pixels.shape[:2])
    return np.repeat(grey[:, :, np.newaxis], 3, axis=2)
