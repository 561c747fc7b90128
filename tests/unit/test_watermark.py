"""The studio's watermark: a PNG asset of any PNG mode laid over the renditions the recipe
names, placed, sized and faded as asked, after sharpening; a missing or broken asset fails
the file with a message that names it, and no other rendition is touched."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from darkroom.imaging import icc
from darkroom.imaging.develop import DevelopError, develop_file
from darkroom.imaging.fixtures import write_dng
from darkroom.imaging.watermark import WatermarkError, apply, check_asset, placement
from darkroom.keys import MAX_ASSET_EDGE
from darkroom.recipes import RecipeError, Watermark, parse_recipe

ORANGE = (255, 128, 0)


def _png(image: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **params)
    return out.getvalue()


def _logo(width: int = 200, height: int = 100) -> Image.Image:
    """An orange block with a transparent frame around it, as logos are."""
    logo = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    inner = Image.new("RGBA", (width - 20, height - 20), (*ORANGE, 255))
    logo.paste(inner, (10, 10))
    return logo


def _noise() -> Image.Image:
    """A PNG that does not compress: cutting its end cuts its pixels."""
    rng = np.random.default_rng(5)
    return Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8), "RGBA")


@pytest.fixture
def logo_file(tmp_path: Path) -> Path:
    path = tmp_path / "logo.png"
    path.write_bytes(_png(_logo()))
    return path


# -- the recipe --------------------------------------------------------------------------
def test_a_watermark_defaults_to_the_web_rendition_at_the_bottom_right() -> None:
    recipe = parse_recipe({"watermark": {"asset": "studio-logo"}})
    assert recipe.watermark == Watermark(asset="studio-logo")
    assert recipe.watermark.position == "bottom-right"
    assert [r.name for r in recipe.renditions if recipe.watermarked(r.name)] == ["web"]


@pytest.mark.parametrize(
    ("watermark", "message"),
    [
        ({"asset": "Logo!"}, "recipe.watermark.asset: must name a studio asset"),
        ({"asset": "logo", "opacity": 0}, "recipe.watermark.opacity: must be between 0.05 and 1"),
        ({"asset": "logo", "size": 2}, "recipe.watermark.size: must be between 0.02 and 1"),
        ({"asset": "logo", "position": "middle"}, "recipe.watermark.position: must be one of"),
        ({"asset": "logo", "renditions": []}, "recipe.watermark.renditions: must name at least"),
        ({"asset": "logo", "renditions": ["print"]}, "renditions names 'print', which this"),
        ({"position": "top"}, "recipe.watermark.asset: required"),
    ],
)
def test_a_watermark_that_cannot_be_used_is_refused_naming_its_field(
    watermark: dict[str, object], message: str
) -> None:
    with pytest.raises(RecipeError, match=message.replace(".", r"\.")):
        parse_recipe({"watermark": watermark})


def test_a_tiff_master_is_never_watermarked() -> None:
    recipe = {
        "renditions": [{"name": "master", "format": "tiff", "long_edge": "full"}],
        "watermark": {"asset": "logo", "renditions": ["master"]},
    }
    with pytest.raises(RecipeError, match="master is a TIFF master, never watermarked"):
        parse_recipe(recipe)


# -- where it goes -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("position", "corner"),
    [
        ("top-left", (30, 30)),
        ("top", (400, 30)),
        ("top-right", (770, 30)),
        ("left", (30, 450)),
        ("center", (400, 450)),
        ("right", (770, 450)),
        ("bottom-left", (30, 870)),
        ("bottom", (400, 870)),
        ("bottom-right", (770, 870)),
    ],
)
def test_each_position_keeps_the_margin_from_its_edges(
    position: str, corner: tuple[int, int]
) -> None:
    # A 1000 px square: the margin (0.03) is 30 px, the mark 20 % of the width (200 px).
    spec = Watermark(asset="logo", position=position)  # type: ignore[arg-type]
    assert placement((1000, 1000), (400, 200), spec) == ((200, 100), corner)


def test_a_tall_mark_is_scaled_to_fit_within_the_margins() -> None:
    spec = Watermark(asset="logo", size=0.5, margin=0.05)
    (w, h), (x, y) = placement((2000, 400), (100, 1000), spec)
    # Half the width would make it 10,000 px tall: the height (less margins) decides.
    assert h == 400 - 2 * 20
    assert w == 36
    assert (x, y) == (2000 - 20 - 36, 20)


def test_opacity_fades_the_mark_and_its_transparent_frame_leaves_the_photo() -> None:
    photo = Image.new("RGB", (1000, 600), (40, 80, 120))
    spec = Watermark(asset="logo", opacity=0.5, size=0.4, position="center")
    marked = np.asarray(apply(photo, _logo(), spec), dtype=int)
    (w, h), (x, y) = placement(photo.size, (200, 100), spec)
    inside = marked[y + h // 2, x + w // 2]
    assert inside == pytest.approx([(40 + 255) / 2, (80 + 128) / 2, (120 + 0) / 2], abs=1)
    # The frame is transparent: the photo shows through it, and around the mark.
    assert (marked[y + 2, x + 2] == (40, 80, 120)).all()
    assert (marked[:y] == (40, 80, 120)).all() and (marked[y + h :] == (40, 80, 120)).all()
    # Nothing was painted on the photo itself.
    assert np.asarray(photo)[300, 500].tolist() == [40, 80, 120]


# -- the asset ----------------------------------------------------------------------
def test_a_palette_png_with_transparency_becomes_rgba() -> None:
    logo = _logo().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    background = logo.getpixel((0, 0))
    mark = check_asset(_png(logo, transparency=background))
    assert mark.mode == "RGBA"
    assert mark.getpixel((0, 0))[3] == 0 and mark.getpixel((100, 50))[3] == 255


def test_a_sixteen_bit_grey_png_is_read() -> None:
    grey = Image.fromarray(np.full((40, 80), 40000, dtype=np.uint16))
    mark = check_asset(_png(grey))
    assert mark.mode == "RGBA" and mark.size == (80, 40)
    assert mark.getpixel((5, 5))[:3] == pytest.approx((156, 156, 156), abs=1)


def test_an_asset_tagged_in_display_p3_is_brought_to_srgb() -> None:
    green = Image.new("RGB", (16, 16), (0, 255, 0))
    mark = check_asset(_png(green, icc_profile=icc.profile("display-p3")))
    red, g, blue, _ = mark.getpixel((8, 8))
    # P3's green lies outside sRGB: it arrives as sRGB's most saturated green.
    assert g == 255 and red < 10 and blue < 60


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (_png(_noise())[:-2000], "the PNG cannot be read"),
        (b"plain text, not an image", "a watermark must be a PNG; this is not an image"),
    ],
)
def test_an_asset_that_is_no_usable_png_is_refused_saying_why(data: bytes, message: str) -> None:
    with pytest.raises(WatermarkError, match=message):
        check_asset(data)


def test_a_jpeg_is_refused_as_a_watermark() -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (40, 40)).save(jpeg, "JPEG")
    with pytest.raises(WatermarkError, match="must be a PNG; this is a JPEG image"):
        check_asset(jpeg.getvalue())


def test_a_png_wider_than_the_limit_is_refused_before_its_pixels_are_read() -> None:
    wide = _png(Image.new("L", (MAX_ASSET_EDGE + 1, 1)))
    with pytest.raises(WatermarkError, match=f"at most {MAX_ASSET_EDGE} px a side"):
        check_asset(wide)


# -- developing with it --------------------------------------------------------------
@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dng(tmp_path_factory.mktemp("raw") / "PHOTO.dng", width=960, height=640, seed=3)


def _develop(photo: Path, out: Path, watermark: dict[str, object] | None, mark: Path | None):
    recipe = {
        "renditions": [
            {"name": "web", "long_edge": 800},
            {"name": "thumb", "long_edge": 200},
        ],
        "lens": "off",
    }
    if watermark is not None:
        recipe["watermark"] = watermark
    return develop_file(photo, out, parse_recipe(recipe), threads=1, watermark=mark)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img, dtype=int)


def test_the_web_rendition_carries_the_mark_and_the_thumbnail_does_not(
    photo: Path, logo_file: Path, tmp_path: Path
) -> None:
    plain = _develop(photo, tmp_path / "plain", None, None)
    marked = _develop(photo, tmp_path / "marked", {"asset": "logo", "opacity": 1.0}, logo_file)
    web_plain, web_marked = _read(plain.renditions[0].path), _read(marked.renditions[0].path)
    (w, h), (x, y) = placement((800, 533), (200, 100), Watermark(asset="logo"))
    centre = web_marked[y + h // 2, x + w // 2]
    assert centre == pytest.approx(ORANGE, abs=6)
    # Away from the mark (beyond JPEG's 16 px blocks) the photo is as it was.
    assert np.abs(web_marked[: y - 16] - web_plain[: y - 16]).max() <= 2
    assert plain.renditions[1].path.read_bytes() == marked.renditions[1].path.read_bytes()
    assert marked.notes["watermark"] == "logo at bottom-right on web"
    assert "watermark" not in plain.notes


def test_a_recipe_watermark_with_no_asset_given_fails_the_file(photo: Path, tmp_path: Path) -> None:
    with pytest.raises(DevelopError, match="the watermark asset 'logo' was not provided") as err:
        _develop(photo, tmp_path / "out", {"asset": "logo"}, None)
    assert err.value.code == "watermark_unavailable"
    assert not (tmp_path / "out").exists()


def test_a_broken_asset_fails_the_file_naming_the_asset(photo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "logo.png"
    broken.write_bytes(_png(_noise())[:-2000])
    with pytest.raises(
        DevelopError, match="the watermark asset 'logo' is unusable: the PNG"
    ) as err:
        _develop(photo, tmp_path / "out", {"asset": "logo"}, broken)
    assert err.value.code == "watermark_unreadable"
    assert not (tmp_path / "out").exists()
