"""Metering a sparse sample of the sensor data: white balance and exposure, as a Plan for LibRaw.

About METER_CELLS colour filter array cells are read, black-subtracted and scaled to
white; from them come the automatic white balance, the exposure that puts the frame's
average brightness at middle grey without clipping what the sensor recorded, and the
white point of the highlight roll-off.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import rawpy
from numpy.typing import NDArray

from darkroom.imaging import icc
from darkroom.imaging.illuminant import light_xyz
from darkroom.recipes import Recipe

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
# Rec. 709 / sRGB luminance weights.
LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


@dataclass(frozen=True)
class Plan:
    """How LibRaw is to develop one file."""

    user_wb: list[float] | None  # R, G, B, G2; None: let LibRaw choose (unmetered layouts)
    use_camera_wb: bool
    use_auto_wb: bool
    gain: float
    auto_bright: bool  # only for layouts we cannot meter
    # Linear value that becomes output white: 1 clips, more rolls highlights off.
    white: float
    white_balance: tuple[float, float, float]
    # Where the white balance came from, for the manifest: "camera", "auto", "fixed", ...
    white_balance_source: str = "camera"


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


def _camera_multipliers(raw: rawpy.RawPy) -> NDArray[np.float64] | None:
    """The as-shot balance the camera recorded; None when it recorded none (LibRaw marks
    that with a negative first multiplier: CRW and other old formats)."""
    with contextlib.suppress(Exception):
        values = np.array(raw.camera_whitebalance[:3], dtype=np.float64)
        if np.all(np.isfinite(values)) and np.all(values > 0):
            return values / values[1]
    return None


def light_multipliers(raw: rawpy.RawPy, kelvin: float, tint: float) -> NDArray[np.float64]:
    """The multipliers that make a light of this temperature and tint neutral on this
    camera: its response to the light, inverted.

    LibRaw's camera -> sRGB matrix applies to camera values already balanced for daylight
    (its daylight multipliers), so the camera's own response to a colour is that matrix's
    inverse applied to the colour's linear sRGB, divided by the daylight multipliers.
    """
    srgb = _XYZ_TO_SRGB @ light_xyz(kelvin, tint)
    with contextlib.suppress(Exception):
        rgb_cam = np.array(raw.color_matrix, dtype=np.float64)[:3, :3]
        daylight = np.array(raw.daylight_whitebalance[:3], dtype=np.float64)
        if np.all(np.isfinite(daylight)) and np.all(daylight > 0):
            response = np.linalg.solve(rgb_cam, srgb) / daylight
            if np.all(response > 0):
                return np.asarray(response[1] / response)
    # No usable matrix: the light's own sRGB, the best guess at a camera's response.
    return np.asarray(srgb[1] / np.maximum(srgb, 1e-6))


_XYZ_TO_SRGB = np.linalg.inv(icc.SRGB.to_xyz)


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


def make_plan(raw: rawpy.RawPy, recipe: Recipe) -> Plan:
    wb, exposure = recipe.white_balance, recipe.exposure
    recover = recipe.highlights == "recover"
    compensation = 2.0**exposure.compensation_ev
    camera = _camera_multipliers(raw)
    fixed = _fixed_multipliers(raw, recipe)
    if wb.mode == "fixed":
        source = "fixed"
    elif wb.mode == "auto":
        source = "auto"
    elif camera is None:
        source = "auto (the camera recorded no white balance)"
    else:
        source = "camera"
    metered = cfa_cells(raw)
    if metered is None:
        # Unusual layouts: LibRaw's own white balance and brightening, the recipe on top.
        # LibRaw too falls back to auto when the camera recorded none.
        return Plan(
            user_wb=[*fixed, fixed[1]] if fixed else None,
            use_camera_wb=wb.mode == "camera",
            use_auto_wb=wb.mode == "auto",
            gain=compensation,
            auto_bright=exposure.mode == "auto",
            white=1.0,
            white_balance=(fixed[0], 1.0, fixed[2]) if fixed else (1.0, 1.0, 1.0),
            white_balance_source=source,
        )
    cells, saturated = metered
    if fixed is not None:
        multipliers = np.array(fixed, dtype=np.float64)
    elif wb.mode == "auto" or camera is None:
        multipliers = grey_world(cells, saturated)
    else:
        multipliers = camera
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
    return Plan(
        user_wb=[*multipliers.tolist(), float(multipliers[1])],
        use_camera_wb=False,
        use_auto_wb=False,
        gain=gain,
        auto_bright=False,
        white=white,
        white_balance=(float(multipliers[0]), 1.0, float(multipliers[2])),
        white_balance_source=source,
    )


def _fixed_multipliers(raw: rawpy.RawPy, recipe: Recipe) -> list[float] | None:
    wb = recipe.white_balance
    if wb.mode != "fixed":
        return None
    if wb.multipliers:
        values = np.array(wb.multipliers, dtype=np.float64)
    else:
        assert wb.temperature is not None  # the recipe's own check
        values = light_multipliers(raw, wb.temperature, wb.tint or 0.0)
    return [float(v) for v in values / values[1]]


def _rgb_cam(raw: rawpy.RawPy) -> NDArray[np.float32]:
    """LibRaw's camera -> linear sRGB matrix (identity when the file gives none)."""
    with contextlib.suppress(Exception):
        matrix = np.array(raw.color_matrix, dtype=np.float32)[:3, :3]
        if np.all(np.isfinite(matrix)) and np.abs(matrix).sum() > 0:
            return matrix
    return np.eye(3, dtype=np.float32)
