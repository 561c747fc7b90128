"""The synthetic RAW fixtures: real DNGs that LibRaw reads like a camera's."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rawpy
from PIL import Image

from darkroom.imaging import fixtures
from darkroom.imaging.develop import develop_file
from darkroom.imaging.fixtures import (
    BLACK_LEVEL,
    CAMERA_NEUTRAL,
    WHITE_LEVEL,
    as_shot_neutral,
    checker_patches,
    make_demo_shoot,
    srgb_to_linear,
    upright_size,
    write_corrupt_raw,
    write_dng,
)
from darkroom.imaging.icc import SRGB
from darkroom.recipes import parse_recipe

FULL = parse_recipe({"renditions": [{"name": "full", "long_edge": "full", "quality": 95}]})
# LibRaw's Orientation -> flip codes for the rotations a camera writes.
LIBRAW_FLIP = {1: 0, 3: 3, 6: 6, 8: 5}


def patch_mean(image: np.ndarray, patch: fixtures.Patch) -> np.ndarray:
    """Mean colour of the middle half of a patch, away from demosaic fringes at its edges."""
    dy, dx = (patch.bottom - patch.top) // 4, (patch.right - patch.left) // 4
    inner = image[patch.top + dy : patch.bottom - dy, patch.left + dx : patch.right - dx]
    return inner.reshape(-1, 3).mean(axis=0)


def test_libraw_reads_the_dng_tags(tmp_path: Path) -> None:
    taken = datetime(2023, 11, 2, 9, 15, 42)
    src = write_dng(tmp_path / "T.dng", width=640, height=480, seed=1, capture_time=taken)
    with rawpy.imread(str(src)) as raw:
        assert (raw.sizes.width, raw.sizes.height) == (640, 480)
        assert raw.raw_pattern is not None
        assert raw.raw_pattern.tolist() == [[0, 1], [3, 2]]  # R G / G B
        assert raw.color_desc == b"RGBG"
        assert list(raw.black_level_per_channel) == [BLACK_LEVEL] * 4
        assert raw.white_level == WHITE_LEVEL
        assert raw.other.timestamp == taken
        # As-shot neutral becomes the camera white balance (green-normalised gains).
        gains = np.array(raw.camera_whitebalance[:3])
        neutral = as_shot_neutral(1)
        expected = neutral[1] / neutral
        np.testing.assert_allclose(gains / gains[1], expected, rtol=1e-3)
        data = raw.raw_image_visible
        assert data.min() >= 0
        assert data.max() <= WHITE_LEVEL
        # Mid-tones, not a dark frame: most of the sensor is well above black.
        assert np.median(data) > BLACK_LEVEL + (WHITE_LEVEL - BLACK_LEVEL) * 0.05


@pytest.mark.parametrize("orientation", sorted(LIBRAW_FLIP))
def test_orientation_tag_reaches_libraw(orientation: int, tmp_path: Path) -> None:
    src = write_dng(tmp_path / "O.dng", width=320, height=240, orientation=orientation)
    with rawpy.imread(str(src)) as raw:
        assert raw.sizes.flip == LIBRAW_FLIP[orientation]


@pytest.mark.parametrize(("orientation", "seed"), [(1, 1), (3, 3), (6, 9), (8, 22)])
def test_developed_colours_match_the_scene(orientation: int, seed: int, tmp_path: Path) -> None:
    width, height = 720, 480
    src = write_dng(
        tmp_path / "C.dng", width=width, height=height, seed=seed, orientation=orientation
    )
    result = develop_file(src, tmp_path / "out", FULL)
    with Image.open(result.renditions[0].path) as img:
        developed = np.asarray(img, dtype=np.float64)
    # A light far enough from daylight that a developer ignoring the as-shot white balance
    # (LibRaw's fallback is daylight from the colour matrix) would show a colour cast.
    daylight = CAMERA_NEUTRAL / CAMERA_NEUTRAL.max()
    assert np.abs(as_shot_neutral(seed) / daylight - 1).max() > 0.1
    upright = upright_size(width, height, orientation)
    assert (developed.shape[1], developed.shape[0]) == upright
    patches = checker_patches(*upright, seed=seed)
    means = {patch.name: patch_mean(developed, patch) for patch in patches}
    # Auto exposure places the frame's brightness, not the scene's absolute level: one
    # gain in linear light (from the mid-grey patch) takes it back to the scene's.
    grey = next(p for p in patches if p.name == "neutral_65")
    gain = srgb_to_linear(np.array(grey.srgb)).mean() / srgb_to_linear(means[grey.name]).mean()
    assert 0.5 < gain < 2
    for patch in patches:
        got = 255 * SRGB.encode(srgb_to_linear(means[patch.name]) * gain)
        unclipped = got < 250
        # Camera matrix, white balance and sRGB encoding undone by the developer: within a
        # few levels (JPEG and sensor noise account for the rest).
        assert np.abs(got - patch.srgb)[unclipped].max() <= 10, (patch.name, got, patch.srgb)
        if patch.name.startswith("neutral"):
            assert np.ptp(got) <= 4, (patch.name, got)


def test_same_seed_same_file_other_seed_other_scene(tmp_path: Path) -> None:
    a = write_dng(tmp_path / "a.dng", width=200, height=160, seed=5)
    b = write_dng(tmp_path / "b.dng", width=200, height=160, seed=5)
    c = write_dng(tmp_path / "c.dng", width=200, height=160, seed=6)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_fixture_rejects_impossible_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="64x64"):
        write_dng(tmp_path / "x.dng", width=10, height=10)
    with pytest.raises(ValueError, match="Orientation"):
        write_dng(tmp_path / "x.dng", orientation=9)


def test_demo_shoot(tmp_path: Path) -> None:
    files = make_demo_shoot(tmp_path / "shoot", count=4, width=480, height=320)
    assert [f.name for f in files] == [f"DRM_{i:04d}.dng" for i in range(1, 5)]
    flips = []
    payloads = set()
    for f in files:
        payloads.add(f.read_bytes())
        with rawpy.imread(str(f)) as raw:
            flips.append(raw.sizes.flip)
            assert (raw.sizes.width, raw.sizes.height) == (480, 320)
    assert LIBRAW_FLIP[6] in flips
    assert LIBRAW_FLIP[1] in flips
    assert len(payloads) == len(files)


def test_corrupt_kinds(tmp_path: Path) -> None:
    assert write_corrupt_raw(tmp_path / "e.dng", "empty").stat().st_size == 0

    garbage = write_corrupt_raw(tmp_path / "g.dng", "garbage").read_bytes()
    assert garbage[:2] not in (b"II", b"MM")

    truncated = write_corrupt_raw(tmp_path / "t.dng", "truncated").read_bytes()
    assert truncated[:4] == b"II*\x00"
    with pytest.raises(rawpy.LibRawError), rawpy.imread(str(tmp_path / "t.dng")) as raw:
        raw.unpack()

    blank = write_corrupt_raw(tmp_path / "b.dng", "blank")
    with rawpy.imread(str(blank)) as raw:
        assert (raw.raw_image_visible == BLACK_LEVEL).all()

    with pytest.raises(ValueError):
        write_corrupt_raw(tmp_path / "x.dng", "melted")  # type: ignore[arg-type]


def test_tags_the_metadata_tests_rely_on_are_in_the_dng(tmp_path: Path) -> None:
    from fractions import Fraction

    from darkroom.imaging import tiff

    capture = fixtures.Capture(
        artist="A", copyright="C", lens_model="L", exposure_time=Fraction(1, 60), gps=(1, 2, 3)
    )
    src = write_dng(tmp_path / "M.dng", width=128, height=96, capture=capture)
    with src.open("rb") as fh:
        tags = tiff.read_tags(fh)
    assert tags.ifd0[315].value == "A"
    assert tags.ifd0[33432].value == "C"
    assert tags.exif[0xA434].value == "L"
    assert tags.exif[0x829A].value == (Fraction(1, 60),)
    assert tags.gps[1].value == "N"


def test_a_photo_becomes_a_raw_of_the_same_size(tmp_path: Path) -> None:
    pixels = np.zeros((96, 128, 3), dtype=np.uint8)
    pixels[:, :64] = (200, 120, 40)
    src = fixtures.write_photo_dng(tmp_path / "P.dng", pixels)
    with rawpy.imread(str(src)) as raw:
        assert (raw.sizes.width, raw.sizes.height) == (128, 96)
