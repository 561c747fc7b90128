"""What each recipe setting does to a developed file: formats, white balance, exposure,
highlights, colour space and metadata."""

from __future__ import annotations

import io
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from darkroom.imaging import icc
from darkroom.imaging.develop import DevelopResult, develop_file, shoulder
from darkroom.imaging.fixtures import (
    D65_XYZ,
    Capture,
    as_shot_neutral,
    chart_patch_means,
    chart_patches,
    write_chart_dng,
    write_dng,
)
from darkroom.recipes import Recipe, parse_recipe

TAKEN = datetime(2024, 9, 14, 18, 5, 9)
SHOT = Capture(
    artist="Ada Lovelace",
    copyright="(c) 2024 Ada Lovelace Studio",
    lens_make="Canon",
    lens_model="EF 85mm f/1.4L IS USM",
    exposure_time=Fraction(1, 125),
    f_number=Fraction(56, 10),
    iso=400,
    focal_length=Fraction(85),
    gps=(51.5007, -0.1246, 12.5),
)
# Neutral greys (Y 0.9 .. 0.03) and a few colours, as CIE XYZ under D65.
GREYS = [0.9, 0.59, 0.36, 0.19, 0.09, 0.03]
CHART_XYZ = np.array([D65_XYZ * y for y in GREYS] * 2)
MID_GREY = 3


def small(**settings: object) -> Recipe:
    return parse_recipe({"renditions": [{"name": "out", "long_edge": "full"}], **settings})


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dng(
        tmp_path_factory.mktemp("raw") / "SHOT.dng",
        width=480,
        height=320,
        seed=21,
        make="Canon",
        model="EOS R5",
        capture_time=TAKEN,
        capture=SHOT,
    )


@pytest.fixture(scope="module")
def greys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Seed 3's light is far from daylight: white balance has visible work to do.
    return write_chart_dng(
        tmp_path_factory.mktemp("raw") / "GREYS.dng", CHART_XYZ, width=600, height=400, seed=3
    )


def patch_means(result: DevelopResult) -> np.ndarray:
    with Image.open(result.renditions[0].path) as img:
        return chart_patch_means(np.asarray(img, dtype=np.float64), len(CHART_XYZ))


def linear(values: np.ndarray) -> np.ndarray:
    return icc.SRGB.decode(values / 255)


# -- metadata ---------------------------------------------------------------------------
def _kept_metadata(path: Path, fmt: str) -> dict[str, object]:
    """The capture metadata a rendition carries, read the way its format is read."""
    if fmt == "tiff":
        with tifffile.TiffFile(path) as f:
            tags = f.pages.first.tags
            exif = tags["ExifTag"].value
            return {
                "make": tags["Make"].value,
                "model": tags["Model"].value,
                "orientation": int(tags["Orientation"].value),
                "artist": tags["Artist"].value,
                "copyright": tags["Copyright"].value,
                "taken": exif["DateTimeOriginal"],
                "exposure_time": Fraction(*exif["ExposureTime"]),
                "f_number": Fraction(*exif["FNumber"]),
                "iso": exif["ISOSpeedRatings"],
                "focal_length": Fraction(*exif["FocalLength"]),
                "lens": (exif["LensMake"], exif["LensModel"]),
                "gps": "GPSTag" in tags,
            }
    with Image.open(path) as img:
        assert img.format == fmt.upper()
        ifd0 = img.getexif()
    sub = ifd0.get_ifd(0x8769)
    return {
        "make": ifd0[0x010F],
        "model": ifd0[0x0110],
        "orientation": ifd0[0x0112],
        "artist": ifd0[0x013B],
        "copyright": ifd0[0x8298],
        "taken": sub[0x9003],
        "exposure_time": Fraction(float(sub[0x829A])).limit_denominator(10_000),
        "f_number": Fraction(float(sub[0x829D])).limit_denominator(100),
        "iso": sub[0x8827],
        "focal_length": Fraction(float(sub[0x920A])).limit_denominator(100),
        "lens": (sub[0xA433], sub[0xA434]),
        "gps": 0x8825 in ifd0,
    }


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "tiff"])
def test_capture_date_camera_lens_exposure_and_credits_are_kept_in_every_format(
    shot: Path, tmp_path: Path, fmt: str
) -> None:
    recipe = parse_recipe({"renditions": [{"name": "out", "long_edge": 200, "format": fmt}]})
    rendered = develop_file(shot, tmp_path, recipe).renditions[0]
    assert rendered.path.suffix == {"jpeg": ".jpg", "webp": ".webp", "tiff": ".tif"}[fmt]
    assert _kept_metadata(rendered.path, fmt) == {
        "make": "Canon",
        "model": "EOS R5",
        "orientation": 1,
        "artist": SHOT.artist,
        "copyright": SHOT.copyright,
        "taken": TAKEN.strftime("%Y:%m:%d %H:%M:%S"),
        "exposure_time": SHOT.exposure_time,
        "f_number": SHOT.f_number,
        "iso": SHOT.iso,
        "focal_length": SHOT.focal_length,
        "lens": (SHOT.lens_make, SHOT.lens_model),
        # The RAW has a location; the default recipe leaves it out.
        "gps": False,
    }


def test_gps_is_stripped_by_default_and_kept_when_asked(shot: Path, tmp_path: Path) -> None:
    stripped = develop_file(shot, tmp_path / "a", small())
    kept = develop_file(shot, tmp_path / "b", small(metadata={"keep_gps": True}))
    with Image.open(stripped.renditions[0].path) as img:
        assert 0x8825 not in img.getexif()
    with Image.open(kept.renditions[0].path) as img:
        gps = img.getexif().get_ifd(0x8825)
    assert (gps[1], gps[3]) == ("N", "W")
    assert float(gps[6]) == pytest.approx(12.5)


# -- formats ----------------------------------------------------------------------------
def test_webp_rendition_carries_profile_and_exif(shot: Path, tmp_path: Path) -> None:
    recipe = parse_recipe({"renditions": [{"name": "w", "long_edge": 300, "format": "webp"}]})
    rendered = develop_file(shot, tmp_path, recipe).renditions[0]
    assert rendered.path.suffix == ".webp"
    assert rendered.content_type == "image/webp"
    with Image.open(rendered.path) as img:
        assert img.format == "WEBP"
        assert max(img.size) == 300
        assert "sRGB" in ImageCms.getProfileDescription(
            ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
        )
        assert img.getexif()[0x0110] == "EOS R5"


def test_tiff_rendition_is_16_bit_with_profile_and_exif(shot: Path, tmp_path: Path) -> None:
    recipe = parse_recipe(
        {
            "renditions": [
                {"name": "t", "long_edge": "full", "format": "tiff"},
                {"name": "j", "long_edge": "full", "quality": 100},
            ],
            "colour_space": "adobe-rgb",
        }
    )
    tif, jpg = develop_file(shot, tmp_path, recipe).renditions
    assert (tif.path.suffix, tif.content_type) == (".tif", "image/tiff")
    with tifffile.TiffFile(tif.path) as f:
        page = f.pages.first
        pixels = page.asarray()
        assert pixels.dtype == np.uint16
        assert pixels.shape == (320, 480, 3)
        profile = page.tags["InterColorProfile"].value
        exif = page.tags["ExifTag"].value
    assert bytes(profile) == icc.profile("adobe-rgb")
    assert exif["DateTimeOriginal"] == TAKEN.strftime("%Y:%m:%d %H:%M:%S")
    # More than 256 levels: real 16-bit data, not 8-bit scaled up.
    assert len(np.unique(pixels[..., 1])) > 1024
    with Image.open(jpg.path) as img:
        eight = np.asarray(img, dtype=np.float64)
    # The same picture as the 8-bit rendition.
    assert np.abs(pixels / 257.0 - eight).mean() < 2.0


# -- white balance ----------------------------------------------------------------------
def test_camera_white_balance_makes_the_greys_neutral(greys: Path, tmp_path: Path) -> None:
    result = develop_file(greys, tmp_path, small())
    neutral = as_shot_neutral(3)
    expected = neutral[1] / neutral
    np.testing.assert_allclose(result.white_balance, expected, rtol=1e-3)
    means = patch_means(result)[: len(GREYS) - 1]
    assert np.ptp(means, axis=1).max() <= 3


def test_auto_white_balance_finds_the_light_from_the_frame(greys: Path, tmp_path: Path) -> None:
    result = develop_file(greys, tmp_path, small(white_balance={"mode": "auto"}))
    neutral = as_shot_neutral(3)
    np.testing.assert_allclose(result.white_balance, neutral[1] / neutral, rtol=0.03)
    means = patch_means(result)[: len(GREYS) - 1]
    assert np.ptp(means, axis=1).max() <= 6


def test_fixed_multipliers_are_used_as_given(greys: Path, tmp_path: Path) -> None:
    result = develop_file(
        greys, tmp_path, small(white_balance={"mode": "fixed", "multipliers": [1, 1, 1]})
    )
    assert result.white_balance == (1.0, 1.0, 1.0)
    red, _, blue = patch_means(result)[MID_GREY]
    # No correction for a warm (or cool) light: the grey is visibly tinted.
    assert abs(red - blue) > 20


# -- exposure ---------------------------------------------------------------------------
def test_compensation_scales_linear_light_by_two_to_the_ev(greys: Path, tmp_path: Path) -> None:
    base = develop_file(greys, tmp_path / "0", small(exposure={"mode": "manual"}))
    plus = develop_file(
        greys, tmp_path / "1", small(exposure={"mode": "manual", "compensation_ev": 1})
    )
    assert plus.exposure_gain == pytest.approx(2 * base.exposure_gain)
    ratio = linear(patch_means(plus)[MID_GREY]) / linear(patch_means(base)[MID_GREY])
    np.testing.assert_allclose(ratio, 2.0, rtol=0.08)


def test_auto_exposure_brightens_an_underexposed_frame_to_middle_grey(
    greys: Path, tmp_path: Path
) -> None:
    manual = develop_file(greys, tmp_path / "m", small(exposure={"mode": "manual"}))
    auto = develop_file(greys, tmp_path / "a", small())
    assert auto.exposure_gain > 1.5 * manual.exposure_gain
    grey = linear(patch_means(auto)[MID_GREY]).mean()
    assert abs(np.log2(grey / GREYS[MID_GREY])) <= 1 / 3


def test_auto_exposure_never_pushes_recorded_highlights_past_white(
    shot: Path, tmp_path: Path
) -> None:
    result = develop_file(shot, tmp_path, small())
    with Image.open(result.renditions[0].path) as img:
        pixels = np.asarray(img)
    # The scene's sun is recorded below saturation; it must not be blown.
    assert np.count_nonzero(pixels.max(axis=2) >= 255) <= 0.002 * pixels.shape[0] * pixels.shape[1]


def test_auto_exposure_holds_a_dark_frame_down_to_keep_its_lamp_below_white(
    tmp_path: Path,
) -> None:
    """A night scene: greys four stops under, and a lamp recorded at 90% of the sensor.

    Placing the frame's average at middle grey alone would push the lamp several stops past
    white; auto exposure must stop where the lamp reaches white.
    """
    greys = [0.5, 0.3, 0.2, 0.1, 0.05]
    lamp_y = 9.0  # scene white lands at 10% of the sensor, so the lamp at 90%
    src = write_chart_dng(
        tmp_path / "NIGHT.dng",
        np.array([D65_XYZ * y for y in [*greys, lamp_y]]),
        width=600,
        height=400,
        seed=5,
        exposure=0.1,
    )
    lamp = chart_patches(600, 400, len(greys) + 1)[-1]

    def develop(name: str, **exposure: object) -> np.ndarray:
        recipe = small(exposure=exposure) if exposure else small()
        result = develop_file(src, tmp_path / name, recipe)
        with Image.open(result.renditions[0].path) as img:
            return np.asarray(img)

    def white_share(pixels: np.ndarray) -> float:
        return float(np.mean(pixels.max(axis=2) >= 255))

    as_shot = develop("as-shot", mode="manual")
    # The lamp was recorded, not clipped: as shot it is below white.
    assert white_share(as_shot[lamp.top : lamp.bottom, lamp.left : lamp.right]) < 0.01
    # The stops that would put this frame's log-average luminance at middle grey.
    luminance = linear(as_shot.astype(np.float64)) @ np.array([0.2126, 0.7152, 0.0722])
    key = float(np.exp(np.log(np.maximum(luminance, 1e-4)).mean()))
    mid_grey_ev = round(float(np.log2(0.18 / key)), 2)
    assert mid_grey_ev > 2.5

    pushed = develop("pushed", mode="manual", compensation_ev=mid_grey_ev)
    auto = develop("auto")
    pushed_lamp = pushed[lamp.top : lamp.bottom, lamp.left : lamp.right]
    auto_lamp = auto[lamp.top : lamp.bottom, lamp.left : lamp.right]
    assert white_share(pushed_lamp) > 0.9
    assert white_share(auto_lamp) < 0.1
    assert white_share(auto) < 0.002
    # Held down only as far as needed: the lamp is still near white, not dimmed.
    assert auto_lamp.mean() > 240


# -- highlights -------------------------------------------------------------------------
def test_recover_rolls_off_highlights_that_clip_would_blow(shot: Path, tmp_path: Path) -> None:
    over = {"mode": "manual", "compensation_ev": 1.5}
    clipped = develop_file(shot, tmp_path / "c", small(exposure=over))
    recovered = develop_file(shot, tmp_path / "r", small(exposure=over, highlights="recover"))
    blown = []
    for result in (clipped, recovered):
        with Image.open(result.renditions[0].path) as img:
            pixels = np.asarray(img)
        blown.append(np.count_nonzero(pixels.min(axis=2) >= 254))
    assert blown[0] > 1000
    assert blown[1] < blown[0] / 10


def test_the_shoulder_is_smooth_and_reaches_white_exactly_at_the_white_point() -> None:
    x = np.linspace(0, 3, 3001)
    y = shoulder(x, 3.0)
    assert np.all(np.diff(y) >= 0)
    assert y[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(y[x <= 0.8], x[x <= 0.8])
    slope = np.diff(y) / np.diff(x)
    assert np.abs(np.diff(slope)).max() < 0.01  # no kink at the knee
    np.testing.assert_allclose(shoulder(x, 1.0), np.minimum(x, 1.0))


# -- colour space -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("space", "name"), [("display-p3", "Display P3"), ("adobe-rgb", "Adobe RGB")]
)
def test_every_output_embeds_the_profile_of_its_colour_space(
    shot: Path, tmp_path: Path, space: str, name: str
) -> None:
    recipe = parse_recipe(
        {
            "renditions": [{"name": "a", "long_edge": 200}, {"name": "b", "format": "webp"}],
            "colour_space": space,
        }
    )
    for rendered in develop_file(shot, tmp_path, recipe).renditions:
        with Image.open(rendered.path) as img:
            data = img.info["icc_profile"]
        assert data == icc.profile(space)
        assert name in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(data)))
