"""XMP sidecars from Lightroom / Camera Raw and darktable: read safely, paired with their
RAW by name, and honoured when the RAW develops (exposure within 1/10 stop and white
balance within 150 K of what the sidecar states, measured on the project's chart)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from darkroom.formats import is_raw
from darkroom.imaging import icc
from darkroom.imaging.develop import DevelopResult, develop_file
from darkroom.imaging.develop.crop import cut
from darkroom.imaging.fixtures import (
    as_shot_neutral,
    chart_patch_means,
    write_chart_dng,
    write_dng,
)
from darkroom.imaging.fixtures.scene import CAMERA_MATRIX, D65_XYZ, light_temperature
from darkroom.imaging.fixtures.sidecars import darktable_xmp, lightroom_xmp
from darkroom.imaging.illuminant import light_xyz
from darkroom.recipes import parse_recipe
from darkroom.sidecars import SidecarError, pair, parse_sidecar, sidecar_for

FULL = parse_recipe(
    {"renditions": [{"name": "out", "long_edge": "full", "sharpen": "none"}], "lens": "off"}
)
GREYS = [0.9, 0.59, 0.36, 0.19, 0.09]
CHART_XYZ = np.array([D65_XYZ * y for y in GREYS])
MID_GREY = 3
SEED = 3  # a warm light: white balance has work to do


# -- reading ----------------------------------------------------------------------------
def test_a_lightroom_sidecar_gives_its_crop_exposure_white_balance_and_orientation() -> None:
    sidecar = parse_sidecar(
        lightroom_xmp(
            rating=4,
            exposure=0.5,
            temperature=5200,
            tint=12,
            crop=(0.1, 0.2, 0.9, 0.8),
            angle=1.5,
            orientation=6,
            extra={"crs:Clarity2012": "+20"},
        )
    )
    assert sidecar.source == "Lightroom"
    assert (sidecar.rating, sidecar.skips, sidecar.orientation) == (4, False, 6)
    assert (sidecar.exposure_ev, sidecar.temperature, sidecar.tint) == (0.5, 5200, 12)
    assert sidecar.crop is not None
    assert (sidecar.crop.left, sidecar.crop.top, sidecar.crop.right, sidecar.crop.bottom) == (
        0.1,
        0.2,
        0.9,
        0.8,
    )
    assert sidecar.crop.angle == 1.5
    # What the photographer set and darkroom does not apply is named, not dropped silently.
    assert sidecar.ignored == ("Clarity2012",)


def test_properties_written_as_elements_read_like_attributes() -> None:
    xml = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
      xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description
      xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
      xmlns:xmp="http://ns.adobe.com/xap/1.0/">
      <xmp:Rating>-1</xmp:Rating><crs:Exposure2012>-1.25</crs:Exposure2012>
    </rdf:Description></rdf:RDF></x:xmpmeta>"""
    sidecar = parse_sidecar(xml)
    assert (sidecar.rating, sidecar.skips, sidecar.exposure_ev) == (-1, True, -1.25)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_darktable_sidecar_gives_its_history_modules(compressed: bool) -> None:
    sidecar = parse_sidecar(
        darktable_xmp(
            exposure=-0.7,
            crop=(0.05, 0.1, 0.95, 0.9),
            multipliers=(2.0, 1.0, 1.5),
            orientation=8,
            compressed=compressed,
        )
    )
    assert sidecar.source == "darktable"
    assert sidecar.exposure_ev == -0.7
    assert sidecar.multipliers == (2.0, 1.0, 1.5)
    assert sidecar.crop is not None and sidecar.crop.right == 0.95
    assert sidecar.orientation == 8 and not sidecar.skips


def test_a_mirrored_orientation_is_named_not_applied() -> None:
    sidecar = parse_sidecar(lightroom_xmp(orientation=2, exposure=0.3))
    assert sidecar.orientation is None
    assert sidecar.ignored == ("tiff:Orientation 2 (mirrored)",)
    assert sidecar.applied() == ["exposure +0.3 EV"]


def test_a_reject_skips_the_file_in_either_form() -> None:
    assert parse_sidecar(lightroom_xmp(rating=-1)).skips
    assert parse_sidecar(darktable_xmp(rejected=True)).skips
    assert not parse_sidecar(lightroom_xmp(rating=0)).skips


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not xml at all", "not valid XML"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b"<x>&b;</x>",
            "refused: EntitiesForbidden",
        ),
        (lightroom_xmp(extra={"crs:Exposure2012": "lots"}), "crs:Exposure2012: not a number"),
        (b"<x>" + b" " * (1024 * 1024) + b"</x>", "larger than"),
    ],
)
def test_a_broken_or_hostile_sidecar_is_refused_with_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(SidecarError, match=reason):
        parse_sidecar(data)


def test_sidecars_pair_with_their_raw_by_name_in_either_form() -> None:
    names = ["IMG_0001.CR3", "IMG_0001.xmp", "IMG_0002.NEF", "IMG_0002.NEF.xmp", "IMG_0003.dng"]
    paired, orphans = pair([*names, "lost.xmp"], is_raw)
    assert paired == {"IMG_0001.CR3": "IMG_0001.xmp", "IMG_0002.NEF": "IMG_0002.NEF.xmp"}
    assert orphans == ["lost.xmp"]
    # darktable's form names one RAW exactly, so it wins over Lightroom's.
    assert sidecar_for("A.CR3", ["A.xmp", "A.CR3.xmp"]) == "A.CR3.xmp"
    assert sidecar_for("a.cr3", ["A.XMP"]) == "A.XMP"


# -- developing -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chart_dng(
        tmp_path_factory.mktemp("raw") / "CHART.dng", CHART_XYZ, width=480, height=320, seed=SEED
    )


def _patches(result: DevelopResult) -> np.ndarray:
    with Image.open(result.renditions[0].path) as img:
        return chart_patch_means(np.asarray(img, dtype=np.float64), len(CHART_XYZ))


def _linear_grey(result: DevelopResult) -> float:
    return float(icc.SRGB.decode(_patches(result)[MID_GREY] / 255).mean())


def test_sidecar_exposure_lands_within_a_tenth_of_a_stop(chart: Path, tmp_path: Path) -> None:
    manual = parse_recipe({**FULL.model_dump(mode="json"), "exposure": {"mode": "manual"}})
    plain = develop_file(chart, tmp_path / "plain", manual)
    brighter = develop_file(
        chart, tmp_path / "plus", manual, sidecar=parse_sidecar(lightroom_xmp(exposure=0.7))
    )
    stops = math.log2(_linear_grey(brighter) / _linear_grey(plain))
    assert stops == pytest.approx(0.7, abs=0.1)
    assert brighter.notes["sidecar"] == "Lightroom: exposure +0.7 EV"


def _camera_multipliers(kelvin: float) -> np.ndarray:
    neutral = CAMERA_MATRIX @ light_xyz(kelvin)
    return neutral[1] / neutral


def test_sidecar_white_balance_lands_within_150_kelvin(chart: Path, tmp_path: Path) -> None:
    kelvin = round(light_temperature(SEED))
    result = develop_file(
        chart, tmp_path / "wb", FULL, sidecar=parse_sidecar(lightroom_xmp(temperature=kelvin))
    )
    red_over_blue = result.white_balance[0] / result.white_balance[2]
    warmer, cooler = _camera_multipliers(kelvin - 150), _camera_multipliers(kelvin + 150)
    low, high = sorted([warmer[0] / warmer[2], cooler[0] / cooler[2]])
    assert low <= red_over_blue <= high
    greys = _patches(result)
    assert np.ptp(greys, axis=1).max() <= 4
    camera = as_shot_neutral(SEED)
    np.testing.assert_allclose(result.white_balance, camera[1] / camera, rtol=0.02)


def test_darktable_multipliers_and_as_shot_are_honoured(chart: Path, tmp_path: Path) -> None:
    fixed = develop_file(
        chart,
        tmp_path / "dt",
        FULL,
        sidecar=parse_sidecar(darktable_xmp(multipliers=(2.0, 1.0, 1.5))),
    )
    np.testing.assert_allclose(fixed.white_balance, (2.0, 1.0, 1.5), rtol=1e-3)
    as_shot = develop_file(
        chart, tmp_path / "shot", FULL, sidecar=parse_sidecar(lightroom_xmp(as_shot=True))
    )
    assert as_shot.notes["white_balance"] == "camera"


def _blocks(pixels: np.ndarray, size: int = 10) -> np.ndarray:
    rows, cols = pixels.shape[0] // size, pixels.shape[1] // size
    trimmed = pixels[: rows * size, : cols * size]
    return trimmed.reshape(rows, size, cols, size, -1).mean(axis=(1, 3))


def test_sidecar_crop_and_orientation_frame_the_picture(tmp_path: Path) -> None:
    raw = write_dng(tmp_path / "SHOT.dng", width=600, height=400, seed=9)
    whole = develop_file(raw, tmp_path / "whole", FULL)
    cropped = develop_file(
        raw,
        tmp_path / "crop",
        FULL,
        sidecar=parse_sidecar(lightroom_xmp(crop=(0.25, 0.1, 0.75, 0.6))),
    )
    assert (cropped.width, cropped.height) == (300, 200)
    with Image.open(whole.renditions[0].path) as a, Image.open(cropped.renditions[0].path) as b:
        expected = _blocks(np.asarray(a, dtype=np.float64)[40:240, 150:450])
        # The same part of the picture (compared in 10 px blocks: JPEG's own 8 px blocks
        # fall differently in the two files).
        np.testing.assert_allclose(_blocks(np.asarray(b, dtype=np.float64)), expected, atol=3)
    turned = develop_file(
        raw, tmp_path / "turned", FULL, sidecar=parse_sidecar(lightroom_xmp(orientation=6))
    )
    assert (turned.width, turned.height) == (400, 600)
    assert turned.notes["sidecar"] == "Lightroom: orientation 6"


def test_a_straightening_angle_turns_the_crop_frame_clockwise() -> None:
    frame = np.zeros((101, 201, 3), dtype=np.uint8)
    frame[50, 120] = 255  # 20 px right of the centre
    turned = cut(frame, (0.0, 0.0, 1.0, 1.0), 90)
    # The frame's top now points at the picture's right: that point shows above centre.
    row, col = np.unravel_index(turned[..., 0].argmax(), turned.shape[:2])
    assert (row, col) in {(30, 100), (30, 99), (29, 100)}
