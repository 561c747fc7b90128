"""Where the picture is: the camera's own crop, and no demosaicing border.

Sensors record a few rows and columns more than the picture: LibRaw reads the crop the
camera intended (a DNG's DefaultCropOrigin/Size, the inset crops of CR2, CR3, CRW, RW2 and
others) but does not apply it, so the developed frame keeps a black or coloured stripe the
camera's own JPEG never shows. The crop is given on the unrotated sensor; the developed
image is upright and, on the half-size path, half as large, so the box is carried over.

Formats that record no crop (old compacts, phone DNGs) can still end in an edge row or
column that demosaicing had no neighbours for: lines at the very edge (at most EDGE_PROBE)
whose colour breaks from the steady lines inside them are trimmed away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# How far from each edge a demosaicing artefact reaches (LibRaw's interpolations leave at
# most two lines without neighbours; a wider band at the edge is the picture's own), and
# how many lines inside it say what the picture looks like there.
EDGE_PROBE = 2
EDGE_REFERENCE = 4
# A line whose mean colour is this many 8-bit levels off the picture's trend is an artefact
# (or this share of the local level, in bright areas).
EDGE_LEVELS = 10.0
EDGE_SHARE = 0.12
# Below this a frame is too small to spare lines for a border.
MIN_SIDE = 64


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


def camera_crop(sizes: Any) -> Box | None:
    """The crop the file records, on the visible sensor (LibRaw gives it on the raw one)."""
    try:
        width, height = int(sizes.crop_width), int(sizes.crop_height)
        left = int(sizes.crop_left_margin) - int(sizes.left_margin)
        top = int(sizes.crop_top_margin) - int(sizes.top_margin)
        visible_w, visible_h = int(sizes.width), int(sizes.height)
    except (AttributeError, TypeError, ValueError):
        return None
    if width <= 0 or height <= 0:
        return None
    box = Box(max(0, left), max(0, top), min(visible_w, left + width), min(visible_h, top + height))
    if box.width < MIN_SIDE or box.height < MIN_SIDE:
        return None  # a crop that leaves (almost) nothing is a misread, not a framing
    if box == Box(0, 0, visible_w, visible_h):
        return None
    return box


def upright_box(box: Box, sizes: Any, shape: tuple[int, ...]) -> Box:
    """`box` on the visible sensor -> the same region of the developed image of `shape`
    (rows, columns), which LibRaw turned upright by `sizes.flip` and may have halved."""
    sensor_w, sensor_h = int(sizes.width), int(sizes.height)
    flip = int(sizes.flip)
    # LibRaw's flip: 3 half a turn, 5 a quarter turn counter-clockwise, 6 clockwise.
    if flip == 3:
        box = Box(
            sensor_w - box.right, sensor_h - box.bottom, sensor_w - box.left, sensor_h - box.top
        )
    elif flip == 5:
        box = Box(box.top, sensor_w - box.right, box.bottom, sensor_w - box.left)
        sensor_w, sensor_h = sensor_h, sensor_w
    elif flip == 6:
        box = Box(sensor_h - box.bottom, box.left, sensor_h - box.top, box.right)
        sensor_w, sensor_h = sensor_h, sensor_w
    rows, cols = shape[:2]
    sx, sy = cols / sensor_w, rows / sensor_h
    # Inward rounding: a half-size pixel that straddles the crop's edge is left out.
    return Box(
        min(cols, math.ceil(box.left * sx)),
        min(rows, math.ceil(box.top * sy)),
        max(0, math.floor(box.right * sx)),
        max(0, math.floor(box.bottom * sy)),
    )


def _line_means(pixels: NDArray[Any], side: str) -> NDArray[np.float64]:
    count = EDGE_PROBE + EDGE_REFERENCE
    if side == "top":
        lines = pixels[:count]
        axis = 1
    elif side == "bottom":
        lines = pixels[-count:][::-1]
        axis = 1
    elif side == "left":
        lines = pixels[:, :count]
        axis = 0
    else:
        lines = pixels[:, -count:][:, ::-1]
        axis = 0
    means = lines.mean(axis=axis, dtype=np.float64)
    return means.reshape(count, -1)


def _artefact_lines(means: NDArray[np.float64], scale: float) -> int:
    """How many of the outermost lines break from the trend of the lines inside them.

    An artefact starts at the edge: the count is of consecutive lines from the edge. Where
    the lines inside vary (texture, a real edge in the picture), the trend says less, and
    a line must break from it by more.
    """
    inner = means[EDGE_PROBE:]
    centre = (EDGE_REFERENCE - 1) / 2
    slope = (inner[0] - inner[-1]) / max(1, EDGE_REFERENCE - 1)  # per line, toward the edge
    level = inner.mean(axis=0)
    spread = np.abs(inner - level).max(axis=0)
    trim = 0
    for k in range(EDGE_PROBE):
        expected = level + slope * (EDGE_PROBE + centre - k)
        limit = np.maximum(EDGE_LEVELS * scale, EDGE_SHARE * np.abs(expected)) + 2 * spread
        if not np.any(np.abs(means[k] - expected) > limit):
            break
        trim = k + 1
    return trim


def edge_trim(pixels: NDArray[Any]) -> Box:
    """The box of `pixels` (rows, columns[, channels]) without demosaicing edge lines."""
    rows, cols = pixels.shape[:2]
    full = Box(0, 0, cols, rows)
    if rows < MIN_SIDE or cols < MIN_SIDE:
        return full
    scale = 257.0 if pixels.dtype == np.uint16 else 1.0
    trims = {side: _artefact_lines(_line_means(pixels, side), scale) for side in _SIDES}
    return Box(trims["left"], trims["top"], cols - trims["right"], rows - trims["bottom"])


_SIDES = ("top", "bottom", "left", "right")


def describe(box: Box, shape: tuple[int, ...], source: str) -> str:
    rows, cols = shape[:2]
    return f"{box.width}x{box.height} at ({box.left}, {box.top}) of {cols}x{rows} ({source})"


# LibRaw's flip for each TIFF Orientation it can do (rotations; mirrored ones it cannot).
FLIP_FOR_ORIENTATION = {1: 0, 3: 3, 6: 6, 8: 5}


def upright_fraction(
    left: float, top: float, right: float, bottom: float, flip: int
) -> tuple[float, float, float, float]:
    """A box given as fractions of the picture before orientation, as fractions of the
    upright picture LibRaw's `flip` makes of it."""
    if flip == 3:
        return 1 - right, 1 - bottom, 1 - left, 1 - top
    if flip == 5:
        return top, 1 - right, bottom, 1 - left
    if flip == 6:
        return 1 - bottom, left, 1 - top, right
    return left, top, right, bottom


def cut(pixels: NDArray[Any], box: tuple[float, float, float, float], angle: float) -> NDArray[Any]:
    """The part of `pixels` inside `box` (fractions of the upright picture: left, top,
    right, bottom), the box turned `angle` degrees clockwise about its centre first, as
    Lightroom's straightening tool turns its crop frame."""
    rows, cols = pixels.shape[:2]
    left, top, right, bottom = box
    width = max(1, round((right - left) * cols))
    height = max(1, round((bottom - top) * rows))
    if not angle:
        x0, y0 = round(left * cols), round(top * rows)
        return pixels[y0 : y0 + height, x0 : x0 + width]
    import cv2  # on first use: see develop_processes

    centre_x, centre_y = (left + right) / 2 * cols, (top + bottom) / 2 * rows
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    # Output pixel (u, v) -> source: the centre plus the offset from the output's centre,
    # turned clockwise (on screen, where y grows downward).
    matrix = np.array(
        [
            [c, -s, centre_x - c * (width - 1) / 2 + s * (height - 1) / 2],
            [s, c, centre_y - s * (width - 1) / 2 - c * (height - 1) / 2],
        ],
        dtype=np.float64,
    )
    turned = cv2.warpAffine(
        np.ascontiguousarray(pixels),
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )
    return np.asarray(turned, dtype=pixels.dtype)
