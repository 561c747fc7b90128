"""make_thumbnails on images made in code: every format, colour and failure case."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageCms

from darkroom.imaging.fixtures import images as fx
from darkroom.imaging.thumbnailer import (
    JPEG,
    WEBP,
    Reason,
    ThumbnailError,
    ThumbnailSet,
    make_thumbnails,
    raw_preview,
    srgb_icc,
    validate_sizes,
)
from darkroom.imaging.thumbnailer.resize import FIRST_REDUCING_GAP, REDUCING_GAP

LIMIT = 50_000_000


def thumbs(
    data: bytes | Path, sizes: tuple[int, ...] = (64,), *, max_pixels: int = LIMIT, name: str = ""
) -> ThumbnailSet:
    return make_thumbnails(data, sizes, max_pixels=max_pixels, name=name)


def opened(result: ThumbnailSet, index: int = 0) -> Image.Image:
    image = Image.open(io.BytesIO(result.thumbnails[index].data))
    image.load()
    return image


def failure(
    data: bytes | Path, sizes: tuple[int, ...] = (64,), *, max_pixels: int = LIMIT, name: str = ""
) -> ThumbnailError:
    with pytest.raises(ThumbnailError) as caught:
        thumbs(data, sizes, max_pixels=max_pixels, name=name)
    return caught.value


def close_to(actual: object, expected: tuple[int, ...], tolerance: int = 8) -> bool:
    assert isinstance(actual, tuple), actual
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))


def centre(image: Image.Image) -> tuple[int, ...]:
    pixel = image.getpixel((image.width // 2, image.height // 2))
    assert isinstance(pixel, tuple)
    return pixel


# -- sizes --------------------------------------------------------------------------
def test_each_size_is_the_long_edge_and_keeps_the_aspect_ratio() -> None:
    result = thumbs(fx.encoded(fx.quadrants(1200, 800), "JPEG"), (256, 1024))
    assert [(t.size, t.width, t.height) for t in result.thumbnails] == [
        (256, 256, 171),
        (1024, 1024, 683),
    ]
    assert [opened(result, i).size for i in range(2)] == [(256, 171), (1024, 683)]
    assert (result.source_width, result.source_height) == (1200, 800)


def test_a_small_image_is_never_enlarged() -> None:
    result = thumbs(fx.encoded(fx.quadrants(300, 150), "PNG"), (256, 1024))
    assert [(t.width, t.height) for t in result.thumbnails] == [(256, 128), (300, 150)]


def test_invalid_sizes_are_refused_up_front() -> None:
    for sizes in ((), (0,), (-5,), (True,)):
        with pytest.raises(ValueError):
            validate_sizes(sizes)
    assert validate_sizes((1024, 256, 1024)) == (1024, 256)


# -- orientation --------------------------------------------------------------------
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_to_the_pixels(orientation: int) -> None:
    data = fx.oriented_jpeg(fx.quadrants(400, 200), orientation)
    image = opened(thumbs(data, (200,)))
    assert image.size == (200, 100)
    for (x, y), quadrant in {
        (50, 25): "top_left",
        (150, 25): "top_right",
        (50, 75): "bottom_left",
        (150, 75): "bottom_right",
    }.items():
        assert close_to(image.getpixel((x, y)), fx.QUADRANT_COLOURS[quadrant], 12), quadrant
    # The orientation is in the pixels now; nothing must tell a viewer to rotate again.
    assert image.getexif().get(0x0112) in (None, 1)


def test_orientation_is_read_from_png_and_webp_exif_too() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = fx.quadrants(400, 200).transpose(Image.Transpose.ROTATE_90)
    for fmt in ("PNG", "WEBP"):
        image = opened(thumbs(fx.encoded(stored, fmt, exif=exif.tobytes(), lossless=True)))
        assert image.size == (64, 32), fmt
        assert close_to(image.getpixel((8, 4)), fx.QUADRANT_COLOURS["top_left"], 16), fmt


# -- colour ---------------------------------------------------------------------------
def test_every_thumbnail_carries_the_srgb_profile() -> None:
    image = opened(thumbs(fx.encoded(fx.quadrants(), "JPEG")))
    profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
    assert image.info["icc_profile"] == srgb_icc()


def test_an_embedded_rgb_profile_is_converted_from() -> None:
    red = Image.new("RGB", (32, 32), (255, 0, 0))
    data = fx.encoded(red, "PNG", icc_profile=fx.swapped_rgb_profile())
    # Only a real conversion through the profile turns its "red" into sRGB green.
    assert close_to(centre(opened(thumbs(data))), (0, 255, 0), 10)


def test_a_linear_profile_named_like_srgb_is_still_converted() -> None:
    grey = Image.new("RGB", (32, 32), (128, 128, 128))
    linear = fx.rgb_profile("sRGB-elle-V4-g10", gamma=1.0)
    # Linear 0.5 is sRGB 188; skipping the conversion by name would leave 128.
    assert close_to(
        centre(opened(thumbs(fx.encoded(grey, "PNG", icc_profile=linear)))), (188,) * 3, 4
    )


def test_cmyk_jpeg_is_converted_through_its_icc_profile() -> None:
    profile = fx.cmyk_profile()
    ink = (255, 0, 0, 0)
    data = fx.encoded(Image.new("CMYK", (32, 32), ink), "JPEG", quality=95, icc_profile=profile)
    expected = ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(profile)),
        ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")),
        "CMYK",
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    ).apply(Image.new("CMYK", (1, 1), ink))
    image = opened(thumbs(data))
    assert image.mode == "RGB"
    assert close_to(centre(image), expected.getpixel((0, 0)), 8)  # type: ignore[arg-type]
    naive = Image.new("CMYK", (1, 1), ink).convert("RGB").getpixel((0, 0))
    assert not close_to(centre(image), naive, 40)  # type: ignore[arg-type]


def test_cmyk_without_a_profile_still_gives_an_rgb_thumbnail() -> None:
    data = fx.encoded(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    assert close_to(centre(opened(thumbs(data))), (255, 0, 0), 12)


def test_grey_images_come_out_as_rgb() -> None:
    image = opened(thumbs(fx.encoded(Image.new("L", (32, 32), 100), "JPEG")))
    assert image.mode == "RGB"
    assert close_to(centre(image), (100, 100, 100), 3)


def test_an_unreadable_profile_is_ignored_and_noted() -> None:
    data = fx.encoded(Image.new("RGB", (32, 32), (10, 120, 200)), "PNG", icc_profile=b"nonsense")
    result = thumbs(data)
    assert close_to(centre(opened(result)), (10, 120, 200), 6)
    assert result.notes and "ICC" in result.notes[0]


def test_a_profile_for_the_wrong_colour_space_is_ignored() -> None:
    data = fx.encoded(Image.new("L", (32, 32), 80), "PNG", icc_profile=fx.cmyk_profile())
    result = thumbs(data)
    assert close_to(centre(opened(result)), (80, 80, 80), 3)
    assert result.notes


# -- bit depth and modes ----------------------------------------------------------------
def test_16_bit_grey_png_is_scaled_not_clipped() -> None:
    data = fx.png_bytes(16, 16, bit_depth=16, colour_type=0, pixel=lambda x, y: (0x8000,))
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    assert close_to(centre(opened(thumbs(data))), (128, 128, 128), 2)


def test_16_bit_rgb_png_keeps_its_colour() -> None:
    data = fx.png_bytes(
        16, 16, bit_depth=16, colour_type=2, pixel=lambda x, y: (0x4000, 0x8000, 0xFFFF)
    )
    assert close_to(centre(opened(thumbs(data))), (64, 128, 255), 3)


def test_16_bit_rgba_png_keeps_its_alpha() -> None:
    data = fx.png_bytes(
        16, 16, bit_depth=16, colour_type=6, pixel=lambda x, y: (0xFFFF, 0, 0, 0x8000)
    )
    result = thumbs(data)
    assert result.format is WEBP
    assert close_to(centre(opened(result)), (255, 0, 0, 128), 4)


def test_bilevel_and_32_bit_images_are_thumbnailed() -> None:
    bilevel = Image.new("1", (32, 32), 1)
    assert close_to(centre(opened(thumbs(fx.encoded(bilevel, "PNG")))), (255, 255, 255), 1)
    wide = Image.new("I", (32, 32), 40000)
    assert close_to(centre(opened(thumbs(fx.encoded(wide, "TIFF")))), (156, 156, 156), 2)


# -- transparency ---------------------------------------------------------------------
def test_translucent_rgba_becomes_webp_with_its_alpha() -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 255, 0))
    image.paste((255, 0, 0, 255), (16, 16, 48, 48))
    result = thumbs(fx.encoded(image, "PNG"), (32, 64))
    assert result.format is WEBP
    assert all(t.format is WEBP for t in result.thumbnails)
    out = opened(result, 1)
    assert out.mode == "RGBA"
    assert out.getpixel((2, 2))[3] == 0  # type: ignore[index]
    assert close_to(centre(out), (255, 0, 0, 255), 6)
    assert out.info["icc_profile"] == srgb_icc()


def test_an_alpha_channel_that_is_opaque_everywhere_gives_jpeg() -> None:
    image = Image.new("RGBA", (64, 64), (20, 160, 90, 255))
    result = thumbs(fx.encoded(image, "PNG"))
    assert result.format is JPEG
    assert opened(result).mode == "RGB"


def test_palette_with_a_transparent_entry_keeps_it() -> None:
    palette = Image.new("P", (64, 64), 1)
    palette.putpalette([0, 0, 0, 250, 200, 0] + [0] * 762)
    palette.paste(0, (0, 0, 32, 64))
    result = thumbs(fx.encoded(palette, "PNG", transparency=0))
    out = opened(result)
    assert result.format is WEBP
    assert out.getpixel((4, 32))[3] == 0  # type: ignore[index]
    assert close_to(out.getpixel((60, 32)), (250, 200, 0, 255), 6)


def test_grey_with_alpha_keeps_its_alpha() -> None:
    image = Image.new("LA", (32, 32), (200, 100))
    result = thumbs(fx.encoded(image, "PNG"))
    assert result.format is WEBP
    assert close_to(centre(opened(result)), (200, 200, 200, 100), 4)


# -- formats --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"])
def test_common_formats_give_a_thumbnail(fmt: str) -> None:
    result = thumbs(fx.encoded(fx.quadrants(), fmt), (100,))
    assert result.source_format == fmt
    assert opened(result).size == (100, 50)


def test_progressive_jpeg_is_thumbnailed() -> None:
    data = fx.encoded(fx.quadrants(800, 400), "JPEG", progressive=True)
    assert Image.open(io.BytesIO(data)).info.get("progressive")
    assert opened(thumbs(data, (200,))).size == (200, 100)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_give_their_first_frame(fmt: str) -> None:
    data = fx.animated(fmt, [(220, 30, 30), (30, 200, 30), (30, 30, 220)])
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    assert close_to(centre(opened(thumbs(data, (32,)))), (220, 30, 30), 12)


def test_mpo_gives_its_first_image() -> None:
    first, second = Image.new("RGB", (64, 48), (200, 40, 40)), Image.new("RGB", (64, 48), "blue")
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    result = thumbs(buffer.getvalue(), (32,))
    assert result.source_format == "MPO"
    assert close_to(centre(opened(result)), (200, 40, 40), 10)


def test_heic_is_thumbnailed_with_pillow_heif() -> None:
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif (the lambda extra)")
    buffer = io.BytesIO()
    pillow_heif.from_pillow(fx.quadrants(400, 200)).save(buffer, quality=90)
    result = thumbs(buffer.getvalue(), (100,))
    assert result.source_format == "HEIF"
    image = opened(result)
    assert image.size == (100, 50)
    assert close_to(image.getpixel((25, 12)), fx.QUADRANT_COLOURS["top_left"], 20)


def test_camera_raw_without_a_preview_is_decoded_upright(tmp_path: Path) -> None:
    from darkroom.imaging.fixtures import write_dng

    raw = write_dng(tmp_path / "IMG_0007.dng", width=600, height=400, orientation=6)
    result = thumbs(raw, (128,), name=raw.name)
    assert result.source_format == "RAW"
    assert (result.source_width, result.source_height) == (600, 400)
    # Orientation 6: the camera was turned, so the picture is a portrait.
    assert opened(result).size == (85, 128)


RED = (220, 20, 20)


def test_camera_raw_with_a_large_enough_preview_is_thumbnailed_from_the_preview(
    tmp_path: Path,
) -> None:
    # The sensor holds write_dng's many-coloured scene; the preview is solid red.
    raw = fx.dng_with_preview(
        tmp_path / "IMG_0008.dng", Image.new("RGB", (600, 400), RED), width=600, height=400
    )
    result = thumbs(raw, (128,), name=raw.name)
    assert result.source_format == "RAW"
    assert (result.source_width, result.source_height) == (600, 400)
    image = opened(result)
    assert image.size == (128, 85)
    low, high = zip(*image.getextrema(), strict=True)
    assert close_to(low, RED) and close_to(high, RED), image.getextrema()


def test_a_preview_too_small_for_the_thumbnail_is_passed_over_for_the_sensor_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    developed = spy_on_raw_develop(monkeypatch)
    # 160 px is well short of the 256 px asked for (PREVIEW_SLACK lets 10% go).
    raw = fx.dng_with_preview(
        tmp_path / "IMG_0009.dng", Image.new("RGB", (160, 107), RED), width=600, height=400
    )
    image = opened(thumbs(raw, (256,), name=raw.name))
    assert developed == [True]
    assert image.size == (256, 171)
    assert not close_to(centre(image), RED, 60)


def spy_on_raw_develop(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The half_size of every sensor-data development, as make_thumbnails asks for it."""
    calls: list[bool] = []
    real = raw_preview._develop_raw

    def develop(raw: object, *, half_size: bool) -> Image.Image:
        calls.append(half_size)
        return real(raw, half_size=half_size)

    monkeypatch.setattr(raw_preview, "_develop_raw", develop)
    return calls


def test_a_raw_without_a_preview_is_developed_at_half_size_when_that_is_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from darkroom.imaging.fixtures import write_dng

    developed = spy_on_raw_develop(monkeypatch)
    raw = write_dng(tmp_path / "IMG_0010.dng", width=600, height=400)
    # Half the sensor (300 px) covers a 256 px thumbnail.
    assert opened(thumbs(raw, (256,), name=raw.name)).size == (256, 171)
    assert developed == [True]
    # It does not cover 500 px: a half-size decode would give at most 300.
    assert opened(thumbs(raw, (500, 64), name=raw.name)).size == (500, 333)
    assert developed == [True, False]


def test_large_images_are_reduced_in_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    resized: list[tuple[tuple[int, int], tuple[int, int], float | None]] = []
    reduced: list[object] = []
    real_resize, real_reduce = Image.Image.resize, Image.Image.reduce

    def resize(self: Image.Image, size: tuple[int, int], *args: Any, **kwargs: Any) -> Any:
        resized.append((self.size, tuple(size), kwargs.get("reducing_gap")))
        return real_resize(self, size, *args, **kwargs)

    def reduce(self: Image.Image, factor: Any, *args: Any, **kwargs: Any) -> Any:
        reduced.append(factor)
        return real_reduce(self, factor, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", resize)
    monkeypatch.setattr(Image.Image, "reduce", reduce)
    data = fx.encoded(fx.quadrants(4000, 3000), "PNG", compress_level=1)
    thumbs(data, (1024, 256))
    # PNG is decoded whole, then box-reduced by a whole factor before Lanczos; each smaller
    # size is made from the previous one, with the wider gap.
    assert resized[0] == ((4000, 3000), (1024, 768), FIRST_REDUCING_GAP)
    assert reduced and reduced[0] in (3, (3, 3)), reduced
    assert resized[1] == ((1024, 768), (256, 192), REDUCING_GAP)


def test_a_large_jpeg_is_decoded_at_reduced_scale_before_resizing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resized: list[tuple[int, int]] = []
    real_resize = Image.Image.resize

    def resize(self: Image.Image, size: tuple[int, int], *args: Any, **kwargs: Any) -> Any:
        resized.append(self.size)
        return real_resize(self, size, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", resize)
    data = fx.encoded(fx.quadrants(4000, 3000), "JPEG", quality=80)
    assert opened(thumbs(data, (256,))).size == (256, 192)
    # libjpeg's DCT scaling at 1/8, the smallest still at least 256 px: 500x375.
    assert resized == [(500, 375)]


def test_a_jpeg_named_like_a_raw_is_still_thumbnailed() -> None:
    data = fx.encoded(fx.quadrants(), "JPEG")
    assert thumbs(data, name="IMG_0001.NEF").source_format == "JPEG"


def test_a_raw_with_no_picture_in_it_fails(tmp_path: Path) -> None:
    from darkroom.imaging.fixtures import write_corrupt_raw

    blank = write_corrupt_raw(tmp_path / "BLANK.dng", "blank")
    assert failure(blank, name=blank.name).code is Reason.DECODE_FAILED
    truncated = write_corrupt_raw(tmp_path / "CUT.dng", "truncated")
    assert failure(truncated, name=truncated.name).code in (Reason.TRUNCATED, Reason.DECODE_FAILED)


# -- bad input --------------------------------------------------------------------------
def test_a_zero_byte_file_is_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert failure(tmp_path / "empty.jpg").code is Reason.EMPTY_FILE
    assert failure(b"").code is Reason.EMPTY_FILE


def test_text_with_an_image_extension_is_not_an_image() -> None:
    error = failure(b"Dear studio, here are the photos you asked for.\n" * 20, name="photo.jpg")
    assert error.code is Reason.NOT_AN_IMAGE


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_truncated_file_is_truncated(fmt: str) -> None:
    data = fx.encoded(fx.quadrants(800, 600), fmt)
    assert failure(data[: len(data) // 2]).code is Reason.TRUNCATED


def test_a_png_header_declaring_huge_dimensions_is_refused_before_decoding() -> None:
    error = failure(fx.bomb_png(100_000, 100_000), max_pixels=100_000_000)
    assert error.code is Reason.TOO_MANY_PIXELS
    assert "10,000,000,000 pixels" in str(error)


def test_the_pixel_limit_is_configurable() -> None:
    data = fx.encoded(fx.quadrants(400, 300), "PNG")
    assert failure(data, max_pixels=100_000).code is Reason.TOO_MANY_PIXELS
    assert thumbs(data, max_pixels=120_000).thumbnails


def test_a_huge_but_honest_jpeg_is_thumbnailed_at_reduced_scale() -> None:
    # 12 MP against a 1 MP limit: decoding at 1/8 scale holds 0.19 MP.
    big = Image.new("RGB", (4000, 3000), (70, 130, 180))
    data = fx.encoded(big, "JPEG", quality=80)
    result = thumbs(data, (256,), max_pixels=1_000_000)
    assert (result.source_width, result.source_height) == (4000, 3000)
    assert opened(result).size == (256, 192)
    # A size needing a larger decode of the same file is over the limit.
    assert failure(data, sizes=(2048,), max_pixels=1_000_000).code is Reason.TOO_MANY_PIXELS


def test_a_progressive_jpeg_counts_its_full_size_against_the_limit() -> None:
    data = fx.encoded(Image.new("RGB", (2000, 1500), "white"), "JPEG", progressive=True)
    assert failure(data, sizes=(256,), max_pixels=1_000_000).code is Reason.TOO_MANY_PIXELS


def test_a_known_but_unsupported_format_says_which() -> None:
    error = failure(fx.encoded(fx.quadrants(), "PCX"))
    assert error.code is Reason.UNSUPPORTED_FORMAT
    assert "PCX" in str(error)
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>'
    assert failure(svg).code is Reason.UNSUPPORTED_FORMAT


def test_corrupt_data_is_decode_failed_or_truncated() -> None:
    data = bytearray(fx.encoded(fx.quadrants(400, 300), "PNG"))
    data[60:200] = bytes(140)  # inside the first IDAT: bad zlib data and a bad CRC
    assert failure(bytes(data)).code in (Reason.DECODE_FAILED, Reason.TRUNCATED)


def test_errors_survive_pickling_with_their_code() -> None:
    error = pickle.loads(pickle.dumps(ThumbnailError(Reason.TRUNCATED, "cut short")))
    assert (error.code, error.message) == (Reason.TRUNCATED, "cut short")


def test_pillows_own_bomb_limit_is_left_as_it_was() -> None:
    before = Image.MAX_IMAGE_PIXELS
    failure(fx.bomb_png())
    thumbs(fx.encoded(fx.quadrants(), "PNG"))
    assert before == Image.MAX_IMAGE_PIXELS


# -- determinism --------------------------------------------------------------------------
def test_the_same_bytes_give_the_same_thumbnails_in_another_process(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    image = fx.quadrants(640, 480).convert("RGBA")
    image.putalpha(200)
    source.write_bytes(fx.encoded(image, "PNG"))
    here = [t.data for t in thumbs(source, (64, 256)).thumbnails]
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from darkroom.imaging.thumbnailer import make_thumbnails\n"
        "r = make_thumbnails(Path(sys.argv[1]), (64, 256), max_pixels=10**8)\n"
        "sys.stdout.buffer.write(b''.join(t.data for t in r.thumbnails))\n"
    )
    there = subprocess.run(
        [sys.executable, "-c", code, str(source)], capture_output=True, check=True, timeout=60
    ).stdout
    assert there == b"".join(here)


def test_libraws_words_are_text_in_a_reason_not_python_bytes(tmp_path: Path) -> None:
    from darkroom.imaging.fixtures import write_corrupt_raw

    truncated = write_corrupt_raw(tmp_path / "CUT.dng", "truncated")
    reason = str(failure(truncated, name=truncated.name))
    assert "b'" not in reason and 'b"' not in reason, reason
