"""Colour accuracy: a 24-patch ColorChecker shot as a RAW, developed, measured in CIEDE2000.

The reference is colour-science's ColorChecker24 (X-Rite's values after November 2014,
CIE xyY under D50), adapted to D65 with Bradford. The DNG carries a real camera's colour
matrix (Canon EOS 5D Mark III), the as-shot white balance of a non-daylight light, a black
level and sensor noise. Measurements take the middle half of each patch.
"""

from __future__ import annotations

import io
import warnings
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageCms

from darkroom.imaging.develop import DevelopResult, develop_file
from darkroom.imaging.fixtures import (
    Capture,
    chart_patches,
    upright_size,
    write_chart_dng,
)
from darkroom.imaging.icc import SPACES
from darkroom.recipes import parse_recipe

with warnings.catch_warnings():
    # colour-science warns about optional plotting libraries it does not need here.
    warnings.simplefilter("ignore")
    import colour

CHART = colour.CCS_COLOURCHECKERS["ColorChecker24 - After November 2014"]
NAMES = list(CHART.data)
D65 = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
REFERENCE_XYZ = colour.chromatic_adaptation(
    colour.xyY_to_XYZ(np.array(list(CHART.data.values()))),
    colour.xy_to_XYZ(CHART.illuminant),
    colour.xy_to_XYZ(D65),
    method="Von Kries",
    transform="Bradford",
)
REFERENCE_LAB = colour.XYZ_to_Lab(REFERENCE_XYZ, D65)
GREY = NAMES.index("neutral 5 (.70 D)")
CYAN = NAMES.index("cyan")
SENSOR = (1536, 1024)
TAKEN = datetime(2024, 6, 1, 10, 20, 30)
COLOUR_SCIENCE_NAMES = {
    "srgb": "sRGB",
    "display-p3": "Display P3",
    "adobe-rgb": "Adobe RGB (1998)",
}


def chart_dng(directory: Path, orientation: int) -> Path:
    return write_chart_dng(
        directory / f"CHART_{orientation}.dng",
        REFERENCE_XYZ,
        width=SENSOR[0],
        height=SENSOR[1],
        seed=5,
        orientation=orientation,
        make="Canon",
        model="EOS 5D Mark III",
        capture_time=TAKEN,
        capture=Capture(gps=(48.8584, 2.2945, 35.0)),
    )


@pytest.fixture(scope="module")
def raws(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    directory = tmp_path_factory.mktemp("chart")
    return {orientation: chart_dng(directory, orientation) for orientation in (1, 6)}


@pytest.fixture(scope="module")
def default_develop(
    raws: dict[int, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[int, DevelopResult]:
    # The default recipe, as a studio gets it; its full rendition is the one measured.
    return {o: develop_file(src, tmp_path_factory.mktemp(f"dev{o}")) for o, src in raws.items()}


def rendition(result: DevelopResult, name: str = "full") -> Path:
    return next(r.path for r in result.renditions if r.rendition == name)


def measured_xyz(path: Path, space: str) -> NDArray[np.float64]:
    """Each patch's mean colour, as CIE XYZ (D65), read through the output's colour space."""
    with Image.open(path) as img:
        pixels = np.asarray(img, dtype=np.float64) / 255
    height, width = pixels.shape[:2]
    means = []
    for patch in chart_patches(width, height, len(NAMES)):
        dy, dx = (patch.bottom - patch.top) // 4, (patch.right - patch.left) // 4
        inner = pixels[patch.top + dy : patch.bottom - dy, patch.left + dx : patch.right - dx]
        means.append(inner.reshape(-1, 3).mean(axis=0))
    linear = SPACES[space].decode(np.array(means))
    return np.asarray(
        colour.RGB_to_XYZ(linear, colour.RGB_COLOURSPACES[COLOUR_SCIENCE_NAMES[space]], D65)
    )


def delta_e_after_grey_gain(xyz: NDArray[np.float64]) -> NDArray[np.float64]:
    """CIEDE2000 of each patch after one gain in linear light that matches middle grey."""
    gain = REFERENCE_XYZ[GREY, 1] / xyz[GREY, 1]
    return np.asarray(
        colour.delta_E(colour.XYZ_to_Lab(xyz * gain, D65), REFERENCE_LAB, method="CIE 2000")
    )


def test_default_recipe_reproduces_the_chart_within_one_delta_e(
    default_develop: dict[int, DevelopResult],
) -> None:
    errors = delta_e_after_grey_gain(measured_xyz(rendition(default_develop[1]), "srgb"))
    report = ", ".join(f"{n} {e:.2f}" for n, e in zip(NAMES, errors, strict=True))
    assert errors.mean() <= 1.0, report
    assert errors.max() <= 4.0, report
    # The one patch outside sRGB is the worst, and only it is far off.
    assert int(errors.argmax()) == CYAN, report
    assert np.delete(errors, CYAN).max() <= 1.5, report


def test_auto_exposure_places_middle_grey_within_a_third_of_a_stop(
    default_develop: dict[int, DevelopResult],
) -> None:
    xyz = measured_xyz(rendition(default_develop[1]), "srgb")
    stops = np.log2(xyz[GREY, 1] / REFERENCE_XYZ[GREY, 1])
    assert abs(stops) <= 1 / 3, stops
    # The chart was shot a stop under (scene white at half the sensor): the gain is real.
    assert default_develop[1].exposure_gain > 1.5


def test_a_rotated_raw_develops_to_a_rotated_picture_just_as_accurate(
    default_develop: dict[int, DevelopResult],
) -> None:
    result = default_develop[6]
    assert (result.width, result.height) == upright_size(*SENSOR, 6)
    with Image.open(rendition(result)) as img:
        assert img.size == upright_size(*SENSOR, 6)
    # The patches are where an upright chart has them only if the pixels were turned.
    errors = delta_e_after_grey_gain(measured_xyz(rendition(result), "srgb"))
    assert errors.mean() <= 1.0
    assert errors.max() <= 4.0


@pytest.mark.parametrize("space", ["display-p3", "adobe-rgb"])
def test_wide_gamut_outputs_carry_their_profile_and_hold_the_cyan_patch(
    space: str, raws: dict[int, Path], tmp_path: Path
) -> None:
    recipe = parse_recipe(
        {
            "renditions": [{"name": "full", "long_edge": "full", "quality": 95}],
            "colour_space": space,
        }
    )
    result = develop_file(raws[1], tmp_path, recipe)
    path = rendition(result)
    with Image.open(path) as img:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
    assert COLOUR_SCIENCE_NAMES[space] in ImageCms.getProfileDescription(profile)
    errors = delta_e_after_grey_gain(measured_xyz(path, space))
    # Both spaces contain every patch, cyan included.
    assert errors.mean() <= 1.0
    assert errors.max() <= 1.5


def test_outputs_read_back_with_date_camera_upright_orientation_and_no_gps(
    default_develop: dict[int, DevelopResult],
) -> None:
    for result in default_develop.values():
        for rendered in result.renditions:
            with Image.open(rendered.path) as img:
                exif = img.getexif()
            assert exif[0x0112] == 1
            assert (exif[0x010F], exif[0x0110]) == ("Canon", "EOS 5D Mark III")
            assert exif.get_ifd(0x8769)[0x9003] == TAKEN.strftime("%Y:%m:%d %H:%M:%S")
            # The RAW has a location; the default recipe strips it.
            assert 0x8825 not in exif
            assert exif.get_ifd(0x8825) == {}


def test_gps_is_kept_only_when_the_recipe_says_so(raws: dict[int, Path], tmp_path: Path) -> None:
    keep = parse_recipe(
        {"renditions": [{"name": "small", "long_edge": 300}], "metadata": {"keep_gps": True}}
    )
    result = develop_file(raws[1], tmp_path, keep)
    with Image.open(result.renditions[0].path) as img:
        gps = img.getexif().get_ifd(0x8825)
    assert gps[1] == "N" and gps[3] == "E"
    degrees, minutes, seconds = (Fraction(float(v)).limit_denominator(1000) for v in gps[2])
    assert float(degrees + minutes / 60 + seconds / 3600) == pytest.approx(48.8584, abs=1e-4)


@pytest.mark.parametrize("space", sorted(COLOUR_SCIENCE_NAMES))
def test_generated_profiles_convert_like_the_colour_space_definitions(space: str) -> None:
    from darkroom.imaging.icc import profile

    codes = np.array(
        [[200, 30, 40], [20, 180, 60], [128, 128, 128], [30, 60, 200], [250, 240, 10]],
        dtype=np.uint8,
    )
    srgb = ImageCms.createProfile("sRGB")
    transform = ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(profile(space))),
        srgb,
        "RGB",
        "RGB",
        ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    converted = np.asarray(ImageCms.applyTransform(Image.fromarray(codes[None]), transform))[0]
    expected = colour.RGB_to_RGB(
        codes / 255,
        colour.RGB_COLOURSPACES[COLOUR_SCIENCE_NAMES[space]],
        colour.RGB_COLOURSPACES["sRGB"],
        apply_cctf_decoding=True,
        apply_cctf_encoding=True,
    )
    assert np.abs(converted - np.clip(expected, 0, 1) * 255).max() <= 1.5
