"""Lens corrections from lensfun's database: distortion, lateral chromatic aberration and
vignetting, for the camera and lens the file names.

lensfun describes each correction as a smooth function of the position in the frame, so
it is evaluated on a coarse grid (one point every GRID_STEP pixels) and interpolated, band
by band: the per-pixel coordinate maps of a 24 MP frame would take more memory than the
frame itself. The frame is scaled up just enough (lensfun's automatic scale) that the
corrected picture fills it: no undefined corners, no black border.

Vignetting is a gain on linear light; the frame here is encoded with its colour space's
curve, so the gain is applied through a 2.2 power, which is within a few percent of the
curve over the tones vignetting shows in.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from darkroom.imaging.metadata import (
    F_NUMBER,
    FOCAL_LENGTH,
    LENS_MAKE,
    LENS_MODEL,
    MAKE,
    MODEL,
    Metadata,
)

GRID_STEP = 16
BAND_ROWS = 256
# The f-number assumed for vignetting when the file records none.
DEFAULT_APERTURE = 8.0
ENCODED_GAMMA = 2.2


@dataclass(frozen=True)
class LensProfile:
    """The lens and shot lensfun corrects for."""

    lens: Any  # lensfunpy.Lens
    crop_factor: float
    focal: float
    aperture: float
    name: str


@functools.cache
def _database() -> Any:
    import lensfunpy  # a native library with its database: loaded only where RAWs develop

    return lensfunpy.Database()


def _text(metadata: Metadata, tag: int) -> str:
    value = metadata.value(tag)
    return value.strip() if isinstance(value, str) else ""


def _number(metadata: Metadata, tag: int) -> float:
    value = metadata.value(tag)
    with contextlib.suppress(TypeError, ValueError, IndexError, ZeroDivisionError):
        first = value[0] if isinstance(value, tuple | list) else value
        number = float(first)
        if math.isfinite(number) and number > 0:
            return number
    return 0.0


def find_profile(metadata: Metadata) -> LensProfile | str:
    """What lensfun knows of this shot's lens, or why it cannot be corrected, in words."""
    lens_model = _text(metadata, LENS_MODEL)
    if not lens_model:
        return "not corrected: the file does not name its lens"
    make, model = _text(metadata, MAKE), _text(metadata, MODEL)
    focal = _number(metadata, FOCAL_LENGTH)
    if not focal:
        return f"not corrected: no focal length recorded for {lens_model}"
    try:
        database = _database()
        cameras = database.find_cameras(make, model) if make and model else []
        # Strict matching only: lensfun's loose search offers any lens of the focal length.
        lenses = (
            database.find_lenses(cameras[0], _text(metadata, LENS_MAKE) or None, lens_model)
            if cameras
            else []
        )
    except Exception as exc:  # the database is a native library: never fail the file on it
        return f"not corrected: lensfun could not be searched ({type(exc).__name__})"
    if not cameras:
        camera_name = f"{make} {model}".strip() or "an unnamed camera"
        return f"not corrected: {camera_name} is not in lensfun's database"
    if not lenses:
        return f"not corrected: {lens_model} is not in lensfun's database"
    camera = cameras[0]
    lens = lenses[0]
    crop_factor = float(camera.crop_factor)
    aperture = _number(metadata, F_NUMBER) or DEFAULT_APERTURE
    name = f"{lens.model} on {camera.model} at {focal:g} mm f/{aperture:g}"
    return LensProfile(lens, crop_factor, focal, aperture, name)


def _grid_modifier(profile: LensProfile, width: int, height: int) -> Any:
    import lensfunpy

    modifier = lensfunpy.Modifier(profile.lens, profile.crop_factor, width, height)
    modifier.initialize(profile.focal, profile.aperture, pixel_format=np.float32, scale=0.0)
    return modifier


def correct(pixels: NDArray[Any], profile: LensProfile) -> tuple[NDArray[Any], list[str]]:
    """`pixels` (rows, columns, RGB; 8 or 16 bits) corrected, and what was corrected."""
    import cv2  # on first use: see develop_processes

    rows, cols = pixels.shape[:2]
    grid_w, grid_h = (
        max(2, math.ceil(cols / GRID_STEP) + 1),
        max(2, math.ceil(rows / GRID_STEP) + 1),
    )
    modifier = _grid_modifier(profile, grid_w, grid_h)
    # Where each output point samples the input, per channel (x, y), in grid units.
    coords = modifier.apply_subpixel_geometry_distortion()
    gains = np.ones((grid_h, grid_w, 3), dtype=np.float32)
    vignetting = bool(modifier.apply_color_modification(gains))
    done = []
    if coords is not None:
        done.append("distortion and lateral chromatic aberration")
    if vignetting:
        done.append("vignetting")
    if not done:
        return pixels, done
    scale_x, scale_y = cols / grid_w, rows / grid_h
    top_value = float(np.iinfo(pixels.dtype).max)
    encoded_gains = np.power(np.maximum(gains, 1e-3), 1 / ENCODED_GAMMA).astype(np.float32)
    out = np.empty_like(pixels)
    xs = ((np.arange(cols, dtype=np.float32) + 0.5) / scale_x - 0.5)[None, :]
    for top in range(0, rows, BAND_ROWS):
        bottom = min(rows, top + BAND_ROWS)
        ys = ((np.arange(top, bottom, dtype=np.float32) + 0.5) / scale_y - 0.5)[:, None]
        grid_x = np.broadcast_to(xs, (bottom - top, cols)).astype(np.float32)
        grid_y = np.broadcast_to(ys, (bottom - top, cols)).astype(np.float32)
        for channel in range(3):
            if coords is not None:
                map_x = _interpolate(coords[:, :, channel, 0], grid_x, grid_y)
                map_y = _interpolate(coords[:, :, channel, 1], grid_x, grid_y)
                # Grid units -> pixels of this frame.
                map_x = (map_x + 0.5) * scale_x - 0.5
                map_y = (map_y + 0.5) * scale_y - 0.5
                band = cv2.remap(
                    pixels[..., channel],
                    map_x,
                    map_y,
                    cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REFLECT,
                )
            else:
                band = pixels[top:bottom, :, channel]
            if vignetting:
                gain = _interpolate(encoded_gains[:, :, channel], grid_x, grid_y)
                band = np.minimum(band.astype(np.float32) * gain, top_value)
            out[top:bottom, :, channel] = band
    return out, done


def _interpolate(
    grid: NDArray[np.float32], grid_x: NDArray[np.float32], grid_y: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Bilinear values of a coarse grid at (fractional) grid positions."""
    import cv2  # on first use: see develop_processes

    values = cv2.remap(
        np.ascontiguousarray(grid, dtype=np.float32),
        grid_x,
        grid_y,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(values, dtype=np.float32)
