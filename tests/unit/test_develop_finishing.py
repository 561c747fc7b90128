"""The finishing a photographer expects of an export: output sharpening sized to the
rendition, lens corrections from lensfun when the lens is known (and said when it is not),
noise reduction by strength; and exposure settings written as the camera states them."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import exifread
import lensfunpy
import numpy as np
import pytest
from PIL import Image

from darkroom.imaging.develop import DevelopResult, develop_file
from darkroom.imaging.develop.denoise import noise_sigma
from darkroom.imaging.fixtures import Capture, write_chart_dng, write_dng
from darkroom.imaging.fixtures.scene import BACKDROP_Y, D65_XYZ
from darkroom.imaging.metadata import aperture_fraction, exposure_fraction
from darkroom.recipes import parse_recipe

CAMERA = ("Canon", "Canon EOS 5D Mark III")
WIDE = Capture(
    lens_make="Canon",
    lens_model="Canon EF 16-35mm f/2.8L II USM",
    focal_length=Fraction(16),
    f_number=Fraction(28, 10),
)


def _recipe(**settings: object) -> object:
    rendition = {"name": "out", "long_edge": "full", "sharpen": "none"}
    rendition.update(settings.pop("rendition", {}))  # type: ignore[arg-type]
    return parse_recipe({"renditions": [rendition], "lens": "off", **settings})


def _pixels(result: DevelopResult) -> np.ndarray:
    with Image.open(result.renditions[0].path) as img:
        return np.asarray(img, dtype=np.float64)


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dng(tmp_path_factory.mktemp("raw") / "PHOTO.dng", width=960, height=640, seed=8)


# -- sharpening -------------------------------------------------------------------------
def _edge_contrast(pixels: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels: what sharpening raises."""
    grey = pixels.mean(axis=2)
    return float(np.abs(np.diff(grey, axis=1)).mean() + np.abs(np.diff(grey, axis=0)).mean())


def test_screen_sharpening_is_the_default_for_a_downscaled_rendition_only() -> None:
    recipe = parse_recipe({})
    assert {r.name: r.sharpen for r in recipe.renditions} == {
        "web": "screen",
        "thumb": "screen",
        "full": "none",
    }
    tiff = parse_recipe({"renditions": [{"name": "master", "format": "tiff", "long_edge": 800}]})
    assert tiff.renditions[0].sharpen == "none"


def test_sharpening_raises_edge_contrast_after_the_resize(photo: Path, tmp_path: Path) -> None:
    results = {
        mode: _pixels(
            develop_file(
                photo, tmp_path / mode, _recipe(rendition={"long_edge": 480, "sharpen": mode})
            )
        )
        for mode in ("none", "screen", "print")
    }
    none, screen, printed = (_edge_contrast(results[m]) for m in ("none", "screen", "print"))
    assert none * 1.1 < screen < printed
    # Sharpening moves edges, not tones: the frame's average stays put.
    assert abs(results["screen"].mean() - results["none"].mean()) < 1.0


# -- noise reduction --------------------------------------------------------------------
@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A flat grey field, underexposed by six stops and brought back up: ISO 6400's noise.
    return write_chart_dng(
        tmp_path_factory.mktemp("raw") / "NOISY.dng",
        np.array([D65_XYZ * 0.18]),
        width=480,
        height=320,
        seed=2,
        exposure=0.01,
        capture=Capture(iso=6400),
    )


def test_noise_reduction_grows_with_its_strength_and_keeps_the_tone(
    noisy: Path, tmp_path: Path
) -> None:
    sigmas, means = {}, {}
    for level in ("off", "low", "medium", "high"):
        result = develop_file(noisy, tmp_path / level, _recipe(noise_reduction=level))
        pixels = _pixels(result)
        sigmas[level] = noise_sigma(np.ascontiguousarray(pixels[..., 1], dtype=np.uint8))
        means[level] = pixels.mean()
        if level == "off":
            assert "noise_reduction" not in result.notes
        else:
            assert result.notes["noise_reduction"].startswith(f"{level}: measured noise")
    assert sigmas["off"] > 1.0
    assert sigmas["off"] > sigmas["low"] > sigmas["medium"] > sigmas["high"]
    assert sigmas["high"] < sigmas["off"] / 2
    assert max(means.values()) - min(means.values()) < 1.5


# -- lens corrections -------------------------------------------------------------------
def _flat_field(directory: Path, capture: Capture) -> Path:
    # An even grey wall: any change in brightness toward the corners is the correction's.
    return write_chart_dng(
        directory / "WALL.dng",
        np.array([D65_XYZ * BACKDROP_Y]),  # one patch, the backdrop's own grey
        width=600,
        height=400,
        seed=0,
        make=CAMERA[0],
        model=CAMERA[1],
        capture=capture,
    )


def _lensfun_corner_gain() -> float:
    """lensfun's own vignetting gain at the corner of a 3:2 frame for WIDE, per channel
    mean, as the developed (gamma-encoded) picture shows it."""
    database = lensfunpy.Database()
    camera = database.find_cameras(*CAMERA)[0]
    lens = database.find_lenses(camera, "Canon", WIDE.lens_model)[0]
    modifier = lensfunpy.Modifier(lens, camera.crop_factor, 60, 40)
    modifier.initialize(16.0, 2.8, pixel_format=np.float32, scale=1.0)
    gains = np.ones((40, 60, 3), dtype=np.float32)
    assert modifier.apply_color_modification(gains)
    return float(np.mean(gains[0, 0]) ** (1 / 2.2))


def test_a_known_lens_is_corrected_and_named_in_the_notes(tmp_path: Path) -> None:
    wall = _flat_field(tmp_path, WIDE)
    off = _pixels(develop_file(wall, tmp_path / "off", _recipe()))
    result = develop_file(wall, tmp_path / "auto", _recipe(lens="auto"))
    on = _pixels(result)
    note = result.notes["lens"]
    assert note.startswith("distortion and lateral chromatic aberration and vignetting corrected")
    assert "Canon EF 16-35mm f/2.8L II USM on Canon EOS 5D Mark III at 16 mm f/2.8" in note
    assert on.shape == off.shape

    def corner_ratio(pixels: np.ndarray) -> float:
        h, w = pixels.shape[:2]
        corner = pixels[: h // 20, : w // 20].mean()
        return float(corner / pixels[h * 9 // 20 : h * 11 // 20, w * 9 // 20 : w * 11 // 20].mean())

    # The wall had no vignetting: corrected, its corners are brightened by lensfun's gain
    # (the automatic scale pulls the frame in a little, so the corner sampled is inside).
    assert corner_ratio(off) == pytest.approx(1.0, abs=0.03)
    assert 1.15 < corner_ratio(on) <= _lensfun_corner_gain() * 1.03
    # Scaled to fill the frame: no black (undefined) corner.
    assert on[:3, :3].min() > 40 and on[-3:, -3:].min() > 40
    # A web-sized rendition is corrected at its own size: the same correction, no border.
    small = develop_file(
        wall, tmp_path / "small", _recipe(lens="auto", rendition={"long_edge": 300})
    )
    web = _pixels(small)
    assert web.shape[:2] == (200, 300)
    assert corner_ratio(web) == pytest.approx(corner_ratio(on), rel=0.05)
    assert web[:2, :2].min() > 40 and web[-2:, -2:].min() > 40


@pytest.mark.parametrize(
    ("capture", "reason"),
    [
        (Capture(), "not corrected: the file does not name its lens"),
        (
            Capture(lens_model="Darkroom Pinhole 50", focal_length=Fraction(50)),
            "not corrected: Darkroom Pinhole 50 is not in lensfun's database",
        ),
        (
            Capture(lens_model=WIDE.lens_model),
            f"not corrected: no focal length recorded for {WIDE.lens_model}",
        ),
    ],
)
def test_a_lens_that_cannot_be_corrected_is_left_alone_and_says_why(
    tmp_path: Path, capture: Capture, reason: str
) -> None:
    wall = _flat_field(tmp_path, capture)
    off = _pixels(develop_file(wall, tmp_path / "off", _recipe()))
    result = develop_file(wall, tmp_path / "auto", _recipe(lens="auto"))
    assert result.notes["lens"] == reason
    np.testing.assert_array_equal(_pixels(result), off)


def test_lens_off_touches_nothing_and_notes_nothing(tmp_path: Path) -> None:
    result = develop_file(_flat_field(tmp_path, WIDE), tmp_path / "off", _recipe())
    assert "lens" not in result.notes


# -- exposure settings as rationals -----------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "written"),
    [
        (4.96743106842041, Fraction(5)),  # a Canon D30's APEX value, as LibRaw reads it
        (0.00500000024, Fraction(1, 200)),
        (1 / 125.4, Fraction(1, 125)),
        (1 / 121, Fraction(1, 121)),  # a phone's exact time is kept, not rounded to a mark
        (0.3333, Fraction(1, 3)),
        (1.6, Fraction(8, 5)),
        (30.2, Fraction(30)),
    ],
)
def test_exposure_time_is_written_as_the_camera_states_it(
    seconds: float, written: Fraction
) -> None:
    assert exposure_fraction(seconds) == written


@pytest.mark.parametrize(
    ("f_number", "written"),
    [
        (5.656854, Fraction(28, 5)),
        (2.8, Fraction(14, 5)),
        (1.4142, Fraction(7, 5)),
        (3.3, Fraction(33, 10)),
    ],
)
def test_aperture_is_written_as_the_lens_is_marked(f_number: float, written: Fraction) -> None:
    assert aperture_fraction(f_number) == written


def test_exposure_settings_read_back_as_rationals_with_a_kept_exif_reader(
    photo: Path, tmp_path: Path
) -> None:
    shot = write_dng(
        tmp_path / "SHOT.dng",
        width=480,
        height=320,
        seed=3,
        make=CAMERA[0],
        model=CAMERA[1],
        capture=Capture(
            exposure_time=Fraction(1, 200),
            f_number=Fraction(56, 10),
            focal_length=Fraction(35),
            iso=800,
        ),
    )
    result = develop_file(shot, tmp_path / "out", _recipe())
    with result.renditions[0].path.open("rb") as fh:
        tags = exifread.process_file(fh, details=False)
    assert str(tags["Image Make"]) == "Canon"
    assert str(tags["Image Model"]) == "Canon EOS 5D Mark III"
    assert str(tags["EXIF ExposureTime"]) == "1/200"
    assert str(tags["EXIF FNumber"]) == "28/5"
    assert str(tags["EXIF FocalLength"]) == "35"
    assert str(tags["EXIF ISOSpeedRatings"]) == "800"
