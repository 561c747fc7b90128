"""develop_file on synthetic RAWs: renditions, formats, orientation, half size, failures."""

from __future__ import annotations

import io
import pickle
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rawpy
from PIL import Image, ImageCms

from darkroom.imaging.develop import DevelopError, DevelopResult, develop_file
from darkroom.imaging.fixtures import upright_size, write_corrupt_raw, write_dng
from darkroom.recipes import DEFAULT_RECIPE, Recipe, parse_recipe

SENSOR = (1200, 800)
TAKEN = datetime(2024, 3, 9, 16, 45, 12)
ALLOWED_EXIF = {0x010F, 0x0110, 0x0112, 0x8769}  # Make, Model, Orientation, EXIF IFD pointer
WEB_THUMB = {
    "renditions": [{"name": "web", "long_edge": 2048}, {"name": "thumb", "long_edge": 400}]
}


@pytest.fixture(scope="module")
def landscape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dng(
        tmp_path_factory.mktemp("raw") / "IMG_0001.dng",
        width=SENSOR[0],
        height=SENSOR[1],
        seed=11,
        make="Studio Cam",
        model="SC-1",
        capture_time=TAKEN,
    )


@pytest.fixture(scope="module")
def portrait(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dng(
        tmp_path_factory.mktemp("raw") / "IMG_0002.dng",
        width=SENSOR[0],
        height=SENSOR[1],
        seed=12,
        orientation=6,
    )


@pytest.fixture(scope="module")
def developed(landscape: Path, tmp_path_factory: pytest.TempPathFactory) -> DevelopResult:
    return develop_file(landscape, tmp_path_factory.mktemp("out"))


def recipe(*renditions: dict[str, object]) -> Recipe:
    return parse_recipe({"renditions": list(renditions)})


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


# -- renditions -------------------------------------------------------------------------
def test_every_rendition_is_written_where_the_s3_layout_expects(
    developed: DevelopResult, landscape: Path
) -> None:
    assert [r.rendition for r in developed.renditions] == [
        r.name for r in DEFAULT_RECIPE.renditions
    ]
    for rendered in developed.renditions:
        assert rendered.path.parent.name == rendered.rendition
        assert rendered.path.name == f"{landscape.stem}.jpg"
        assert rendered.path.stat().st_size == rendered.size_bytes
        assert rendered.content_type == "image/jpeg"
    out_dir = developed.renditions[0].path.parent.parent
    # Nothing else: no temp files survive a successful write.
    assert files_under(out_dir) == sorted(r.path for r in developed.renditions)


def test_long_edges_follow_the_recipe_and_never_upscale(developed: DevelopResult) -> None:
    sizes = {r.rendition: r for r in developed.renditions}
    web, thumb, full = sizes["web"], sizes["thumb"], sizes["full"]
    assert (full.width, full.height) == SENSOR
    # 2048 asked of a 1200-pixel image: the image's own size.
    assert (web.width, web.height) == SENSOR
    assert max(thumb.width, thumb.height) == 400
    assert thumb.width / thumb.height == pytest.approx(SENSOR[0] / SENSOR[1], rel=0.01)
    for rendered in developed.renditions:
        with Image.open(rendered.path) as img:
            img.load()
            assert img.format == "JPEG"
            assert img.size == (rendered.width, rendered.height)
            assert img.mode == "RGB"


def test_jpegs_carry_srgb_profile_upright_exif_and_camera_metadata(
    developed: DevelopResult,
) -> None:
    for rendered in developed.renditions:
        with Image.open(rendered.path) as img:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
            assert "sRGB" in ImageCms.getProfileDescription(profile)
            exif = img.getexif()
            assert exif[0x0112] == 1
            assert exif[0x010F] == "Studio Cam"
            assert exif[0x0110] == "SC-1"
            assert exif.get_ifd(0x8769)[0x9003] == TAKEN.strftime("%Y:%m:%d %H:%M:%S")
            # Only what we put there: never GPS or anything else from the RAW.
            assert set(exif) <= ALLOWED_EXIF
            assert exif.get_ifd(0x8825) == {}


def test_a_file_without_a_date_gets_no_date(tmp_path: Path) -> None:
    src = write_dng(tmp_path / "NODATE.dng", width=320, height=240, seed=3)
    result = develop_file(src, tmp_path / "out", recipe({"name": "small", "long_edge": 100}))
    with Image.open(result.renditions[0].path) as img:
        assert 0x9003 not in img.getexif().get_ifd(0x8769)


def test_portrait_orientation_comes_out_upright(portrait: Path, tmp_path: Path) -> None:
    result = develop_file(portrait, tmp_path, parse_recipe(WEB_THUMB))
    assert (result.width, result.height) == upright_size(*SENSOR, 6)
    for rendered in result.renditions:
        assert rendered.height > rendered.width
        with Image.open(rendered.path) as img:
            assert img.size == (rendered.width, rendered.height)
            assert img.getexif()[0x0112] == 1


def test_orientation_turns_the_picture_not_just_the_frame(tmp_path: Path) -> None:
    """The same scene stored sideways (Orientation 6) develops to the same upright picture."""
    full = recipe({"name": "full", "long_edge": "full", "quality": 95})
    pictures = []
    for orientation in (1, 6):
        # Sensor sizes chosen so both upright pictures are 600x400.
        width, height = (600, 400) if orientation == 1 else (400, 600)
        src = write_dng(
            tmp_path / f"o{orientation}.dng",
            width=width,
            height=height,
            seed=4,
            orientation=orientation,
        )
        result = develop_file(src, tmp_path / f"out{orientation}", full)
        with Image.open(result.renditions[0].path) as img:
            pictures.append(np.asarray(img, dtype=np.float32))
    upright, turned = pictures
    assert upright.shape == turned.shape
    # The scenes differ only in sensor noise and demosaic direction; a picture turned the
    # wrong way round would differ everywhere.
    assert np.abs(upright - turned).mean() < 4
    assert np.abs(upright - np.rot90(turned, 2)).mean() > 20


def test_existing_output_is_replaced(landscape: Path, tmp_path: Path) -> None:
    stale = tmp_path / "web" / f"{landscape.stem}.jpg"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    develop_file(landscape, tmp_path, recipe({"name": "web", "long_edge": 300}))
    with Image.open(stale) as img:
        assert max(img.size) == 300


def test_quality_is_the_recipes(landscape: Path, tmp_path: Path) -> None:
    low, high = (
        develop_file(
            landscape, tmp_path / str(q), recipe({"name": "web", "long_edge": 600, "quality": q})
        ).renditions[0]
        for q in (30, 95)
    )
    assert low.size_bytes < high.size_bytes


class _CountingRaw:
    """A RawPy that counts the decodes asked of it (rawpy's class cannot be patched)."""

    def __init__(self, raw: rawpy.RawPy, calls: dict[str, int]) -> None:
        self._raw = raw
        self._calls = calls

    def __enter__(self) -> _CountingRaw:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._raw, name)

    def postprocess(self, **params: object) -> np.ndarray:
        self._calls["postprocess"] += 1
        return self._raw.postprocess(**params)


def test_the_raw_is_decoded_once_for_all_renditions(
    landscape: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"imread": 0, "postprocess": 0}
    imread = rawpy.imread

    def counting_imread(path: str) -> _CountingRaw:
        calls["imread"] += 1
        return _CountingRaw(imread(path), calls)

    monkeypatch.setattr(rawpy, "imread", counting_imread)
    result = develop_file(landscape, tmp_path, DEFAULT_RECIPE)
    assert len(result.renditions) == len(DEFAULT_RECIPE.renditions) == 3
    assert all(r.path.is_file() for r in result.renditions)
    assert calls == {"imread": 1, "postprocess": 1}


def test_web_rendition_of_a_larger_sensor_is_downscaled_to_exactly_2048(tmp_path: Path) -> None:
    # Just over 2048 wide: the smallest sensor that must be scaled down for the web.
    sensor = (2200, 1400)
    src = write_dng(tmp_path / "BIG.dng", width=sensor[0], height=sensor[1], seed=5)
    result = develop_file(src, tmp_path / "out", parse_recipe(WEB_THUMB))
    assert (result.width, result.height) == sensor
    web, thumb = result.renditions
    assert (web.width, web.height) == (2048, round(1400 * 2048 / 2200))
    assert max(thumb.width, thumb.height) == 400
    assert thumb.width / thumb.height == pytest.approx(sensor[0] / sensor[1], rel=0.01)
    for rendered in (web, thumb):
        with Image.open(rendered.path) as img:
            assert img.size == (rendered.width, rendered.height)


# -- half size --------------------------------------------------------------------------
def test_half_size_when_every_rendition_fits_half_the_sensor(
    landscape: Path, tmp_path: Path
) -> None:
    small = recipe({"name": "a", "long_edge": SENSOR[0] // 2}, {"name": "b", "long_edge": 100})
    result = develop_file(landscape, tmp_path, small)
    assert result.half_size
    assert (result.width, result.height) == (SENSOR[0] // 2, SENSOR[1] // 2)
    assert max(result.renditions[0].width, result.renditions[0].height) == SENSOR[0] // 2


def test_full_decode_when_a_rendition_needs_more_than_half(landscape: Path, tmp_path: Path) -> None:
    result = develop_file(
        landscape, tmp_path, recipe({"name": "a", "long_edge": SENSOR[0] // 2 + 1})
    )
    assert not result.half_size
    assert (result.width, result.height) == SENSOR


def test_full_rendition_is_full_resolution(landscape: Path, tmp_path: Path) -> None:
    result = develop_file(
        landscape,
        tmp_path,
        recipe({"name": "full", "long_edge": "full"}, {"name": "thumb", "long_edge": 100}),
    )
    assert not result.half_size
    full, thumb = result.renditions
    assert (full.width, full.height) == SENSOR
    assert max(thumb.width, thumb.height) == 100


# -- failures ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("empty", "empty_file"),
        ("garbage", "unsupported_format"),
        ("truncated", "truncated"),
        ("blank", "blank_frame"),
        # A valid DNG LibRaw decodes without error; without the check it would come out
        # a black frame sprinkled with garbage.
        ("stripped", "blank_frame"),
    ],
)
def test_corrupt_files_fail_with_a_stable_code(kind: str, code: str, tmp_path: Path) -> None:
    src = write_corrupt_raw(tmp_path / f"BAD_{kind}.dng", kind)  # type: ignore[arg-type]
    out = tmp_path / "out"
    with pytest.raises(DevelopError) as caught:
        develop_file(src, out)
    error = caught.value
    assert error.code == code
    assert error.file == src.name
    assert str(error) == f"{src.name}: {error.reason}"
    assert error.reason
    assert files_under(out) == []


def test_missing_file_is_a_develop_error(tmp_path: Path) -> None:
    with pytest.raises(DevelopError) as caught:
        develop_file(tmp_path / "GONE.dng", tmp_path / "out")
    assert caught.value.file == "GONE.dng"


def test_a_failed_write_removes_the_renditions_already_written(
    landscape: Path, tmp_path: Path
) -> None:
    # A file where the thumb directory should be: the second (smaller) rendition cannot be
    # written after the first one was.
    (tmp_path / "thumb").write_text("in the way")
    with pytest.raises(DevelopError) as caught:
        develop_file(landscape, tmp_path, parse_recipe(WEB_THUMB), threads=1)
    assert caught.value.code == "write_failed"
    assert "thumb" in caught.value.reason
    assert files_under(tmp_path / "web") == []


def test_develop_error_survives_pickling() -> None:
    error = DevelopError("truncated", "A.NEF", "truncated or unreadable RAW data")
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.code, clone.file, clone.reason, str(clone)) == (
        error.code,
        error.file,
        error.reason,
        str(error),
    )
