"""What a photographer checks first on a developed frame: no border the camera's own JPEG
lacks (the camera's crop, demosaicing edges) and a white balance that says where it came
from (the camera's, auto when the camera recorded none, or a temperature and tint)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from darkroom.imaging.develop import DevelopResult, develop_file
from darkroom.imaging.develop.crop import edge_trim
from darkroom.imaging.fixtures import (
    as_shot_neutral,
    chart_patch_means,
    write_chart_dng,
    write_dng,
)
from darkroom.imaging.fixtures.scene import D65_XYZ, light_temperature
from darkroom.recipes import Recipe, parse_recipe

FULL = parse_recipe({"renditions": [{"name": "out", "long_edge": "full", "sharpen": "none"}]})
# Half the sensor or less: LibRaw's half-size decode, whose pixels are 2x2 sensor blocks.
HALF = parse_recipe({"renditions": [{"name": "out", "long_edge": 200, "sharpen": "none"}]})
SENSOR = (480, 320)
CROP = (16, 8, 440, 296)  # left, top, width, height: a black border beyond it
GREYS = [0.9, 0.59, 0.36, 0.19, 0.09]
CHART_XYZ = np.array([D65_XYZ * y for y in GREYS])


def _pixels(result: DevelopResult) -> np.ndarray:
    with Image.open(result.renditions[0].path) as img:
        return np.asarray(img, dtype=np.float64)


def _darkest_edge_line(pixels: np.ndarray) -> float:
    """The mean of the darkest outermost row or column, against the picture's mean."""
    edges = [pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]
    return min(float(line.mean()) for line in edges) / float(pixels.mean())


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_the_dng_default_crop_is_honoured_in_every_orientation(
    tmp_path: Path, orientation: int
) -> None:
    raw = write_dng(
        tmp_path / "CROP.dng", width=SENSOR[0], height=SENSOR[1], crop=CROP, orientation=orientation
    )
    result = develop_file(raw, tmp_path / "out", FULL)
    crop_w, crop_h = CROP[2], CROP[3]
    expected = (crop_h, crop_w) if orientation >= 5 else (crop_w, crop_h)
    assert (result.width, result.height) == expected
    pixels = _pixels(result)
    assert pixels.shape[1::-1] == expected
    # The black border outside the crop would make an edge line far darker than the picture.
    assert _darkest_edge_line(pixels) > 0.5
    assert "the camera's crop" in result.notes["crop"]


def test_the_crop_is_carried_to_the_half_size_decode(tmp_path: Path) -> None:
    raw = write_dng(tmp_path / "CROP.dng", width=SENSOR[0], height=SENSOR[1], crop=CROP)
    result = develop_file(raw, tmp_path / "out", HALF)
    assert result.half_size
    assert (result.width, result.height) == (CROP[2] // 2, CROP[3] // 2)
    assert _darkest_edge_line(_pixels(result)) > 0.5


def test_without_a_crop_the_whole_sensor_is_the_picture(tmp_path: Path) -> None:
    raw = write_dng(tmp_path / "PLAIN.dng", width=SENSOR[0], height=SENSOR[1])
    result = develop_file(raw, tmp_path / "out", FULL)
    assert (result.width, result.height) == SENSOR
    assert "crop" not in result.notes


def test_a_broken_edge_line_is_trimmed_and_a_picture_edge_is_not() -> None:
    rng = np.random.default_rng(5)
    # A picture with a real gradient toward every edge, and fine texture.
    y, x = np.mgrid[0:200, 0:300]
    base = 60 + 0.4 * x + 0.2 * y
    picture = np.clip(base[..., None] + rng.normal(0, 4, (200, 300, 3)), 0, 255).astype(np.uint8)
    assert edge_trim(picture) == edge_trim(picture)  # deterministic
    box = edge_trim(picture)
    assert (box.left, box.top, box.right, box.bottom) == (0, 0, 300, 200)
    broken = picture.copy()
    broken[:, -1] = (0, 28, 13)  # a demosaicing column with no neighbours to its right
    broken[:, :2, 2] //= 3  # a two-pixel coloured fringe on the left
    box = edge_trim(broken)
    assert (box.left, box.top, box.right, box.bottom) == (2, 0, 299, 200)


# -- white balance ----------------------------------------------------------------------
def _grey_spread(result: DevelopResult) -> float:
    """How far the chart's greys are from neutral: the largest channel spread, in levels."""
    return float(np.ptp(chart_patch_means(_pixels(result), len(CHART_XYZ)), axis=1).max())


def _chart(tmp_path: Path, seed: int, *, white_balance: bool = True) -> Path:
    return write_chart_dng(
        tmp_path / f"CHART_{seed}.dng",
        CHART_XYZ,
        width=480,
        height=320,
        seed=seed,
        white_balance=white_balance,
    )


def _recipe(white_balance: dict[str, object]) -> Recipe:
    return parse_recipe({**FULL.model_dump(mode="json"), "white_balance": white_balance})


def test_camera_white_balance_falls_back_to_auto_when_the_camera_recorded_none(
    tmp_path: Path,
) -> None:
    # Seed 3's light is a warm 3300 K: daylight multipliers would leave it orange.
    raw = _chart(tmp_path, 3, white_balance=False)
    result = develop_file(raw, tmp_path / "out", FULL)
    assert result.notes["white_balance"] == "auto (the camera recorded no white balance)"
    assert _grey_spread(result) <= 6
    recorded = develop_file(_chart(tmp_path, 3), tmp_path / "recorded", FULL)
    assert recorded.notes["white_balance"] == "camera"


@pytest.mark.parametrize("seed", [3, 0])
def test_a_fixed_temperature_is_converted_through_the_camera_matrix(
    tmp_path: Path, seed: int
) -> None:
    raw = _chart(tmp_path, seed)
    kelvin = light_temperature(seed)
    result = develop_file(raw, tmp_path / "out", _recipe({"mode": "fixed", "temperature": kelvin}))
    neutral = as_shot_neutral(seed)
    np.testing.assert_allclose(result.white_balance, neutral[1] / neutral, rtol=2e-3)
    assert _grey_spread(result) <= 3
    assert result.notes["white_balance"] == "fixed"


def test_a_wrong_temperature_tints_the_greys_the_way_a_photographer_expects(
    tmp_path: Path,
) -> None:
    raw = _chart(tmp_path, 0)  # a cool 7000 K light
    warm_setting = _recipe({"mode": "fixed", "temperature": 3000})
    red, _, blue = _pixels(develop_file(raw, tmp_path / "warm", warm_setting)).mean(axis=(0, 1))
    # Balancing for tungsten under daylight: the picture turns blue.
    assert blue > red + 20


def test_a_positive_tint_turns_the_picture_magenta(tmp_path: Path) -> None:
    raw = _chart(tmp_path, 0)
    kelvin = light_temperature(0)
    plain = _pixels(
        develop_file(raw, tmp_path / "a", _recipe({"mode": "fixed", "temperature": kelvin}))
    )
    tinted = _pixels(
        develop_file(
            raw, tmp_path / "b", _recipe({"mode": "fixed", "temperature": kelvin, "tint": 40})
        )
    )
    r0, g0, b0 = plain.mean(axis=(0, 1))
    r1, g1, b1 = tinted.mean(axis=(0, 1))
    # Magenta: less green against red and blue.
    assert (g1 - (r1 + b1) / 2) < (g0 - (r0 + b0) / 2) - 8
