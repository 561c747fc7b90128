"""Lens corrections from lensfun's database: distortion, lateral chromatic aberration and
vignetting, for the camera and lens the file names.

lensfun describes each correction as a smooth function of the position in the frame, so
it is evaluated on a coarse grid (one point every GRID_STEP pixels) and resized to the
frame one channel at a time: lensfun's own per-pixel maps of a 24 MP frame would take
more memory than the frame itself. The frame is scaled up just enough (lensfun's
automatic scale) that the corrected picture fills it: no undefined corners, no black
border.

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
    """`pixels` (rows, columns, RGB; 8 or 16 bits) corrected, and what was corrected.

    Each channel's coordinate map is the coarse grid resized to the frame (a few tens of
    MB for a 24 MP frame, gone before the next channel's); the vignetting gain likewise,
    for the three channels at once.
    """
    import cv2  # on first use: see develop_processes

    rows, cols = pixels.shape[:2]
    grid_w = max(2, math.ceil(cols / GRID_STEP) + 1)
    grid_h = max(2, math.ceil(rows / GRID_STEP) + 1)
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
    # cv2.resize maps pixel centres as we do: x_frame + 0.5 = (x_grid + 0.5) * scale.
    scale = np.array([cols / grid_w, rows / grid_h], dtype=np.float32)
    out = pixels
    if coords is not None:
        planes = list(cv2.split(pixels))
        for channel in range(3):
            # One (x, y) map per channel: lateral chromatic aberration moves each its way.
            frame_map = _to_frame(coords[:, :, channel, :], cols, rows, scale)
            planes[channel] = cv2.remap(
                planes[channel], frame_map, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
            del frame_map
        out = cv2.merge(planes)
        del planes
    if vignetting:
        encoded = np.power(np.maximum(gains, 1e-3), 1 / ENCODED_GAMMA).astype(np.float32)
        gain = cv2.resize(encoded, (cols, rows), interpolation=cv2.INTER_LINEAR)
        depth = cv2.CV_16U if pixels.dtype == np.uint16 else cv2.CV_8U
        # Saturating: a corner brightened past white clips, as it would in any editor.
        out = cv2.multiply(out, gain, dtype=depth)
    return np.asarray(out, dtype=pixels.dtype), done


def _to_frame(
    grid: NDArray[np.float32], cols: int, rows: int, scale: NDArray[np.float32]
) -> NDArray[np.float32]:
    """A coarse grid of (x, y) coordinates (grid units) as a per-pixel map in frame
    pixels, one two-channel array as remap takes it.

    Grid units become pixels on the coarse grid, before the resize: interpolation is
    linear, so it commutes with that affine step, which costs nothing there."""
    import cv2  # on first use: see develop_processes

    in_pixels = np.ascontiguousarray((grid + 0.5) * scale - 0.5, dtype=np.float32)
    return np.asarray(
        cv2.resize(in_pixels, (cols, rows), interpolation=cv2.INTER_LINEAR), dtype=np.float32
    )
