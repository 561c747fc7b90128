"""Every real-world sample gives a correct thumbnail or the error its MANIFEST row predicts.

The manifest's last column is what stock Pillow made of each file. A "yes" row must give
thumbnails of the right upright size that match a slow, straightforward reference
(full decode, EXIF transpose, ICC conversion, one Lanczos resize). A "no" row must fail
with the stable code matching Pillow's complaint. One deliberate difference: the HEIC row
says stock Pillow cannot open it; with pillow-heif (a runtime dependency, the `lambda`
extra) it must give a thumbnail, and without it fail as unsupported_format.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat

from darkroom.imaging.thumbnailer import (
    JPEG,
    WEBP,
    Reason,
    ThumbnailError,
    ThumbnailSet,
    make_thumbnails,
    srgb_icc,
)
from darkroom.settings import ThumbnailSettings

pytestmark = pytest.mark.samples

SIZES = (256, 1024)
MAX_PIXELS: int = ThumbnailSettings.model_fields["max_image_pixels"].default
# Mean absolute difference per channel (0-255) between a thumbnail and the reference.
# Pixel by pixel: JPEG at quality 85 and a different (faster) reduction path stay inside
# it, a missed rotation or a squashed aspect ratio are several times over.
MAX_MEAN_DIFFERENCE = 8.0
# Both shrunk to 16 px wide, where JPEG noise averages out and a colour error does not:
# skipping an Adobe RGB or a Gray Gamma 2.2 profile already exceeds it.
MAX_COLOUR_DIFFERENCE = 1.2
_OPENED = re.compile(r"\((?P<format>\w+) (?P<mode>[\w;]+) (?P<w>\d+)x(?P<h>\d+)")
_ORIENTATION = re.compile(r"Orientation=(\d)")


@dataclass(frozen=True)
class Row:
    path: Path
    size_bytes: int
    format: str
    what: str
    verdict: str

    @property
    def ok(self) -> bool:
        return self.verdict.startswith("yes")


def _rows(samples_dir: Path, folder: str) -> list[Row]:
    with (samples_dir / "MANIFEST.tsv").open(newline="", encoding="utf-8") as fh:
        return [
            Row(
                path=samples_dir / row["file"],
                size_bytes=int(row["size_bytes"]),
                format=row["format"],
                what=row["what_it_tests/camera"],
                verdict=row["decodes_ok"],
            )
            for row in csv.DictReader(fh, delimiter="\t")
            if row["file"].startswith(folder + "/")
        ]


@pytest.fixture(scope="module")
def image_rows(samples_dir: Path) -> list[Row]:
    rows = _rows(samples_dir, "images")
    assert rows, "MANIFEST.tsv lists no images/ rows"
    return rows


def _heif_available() -> bool:
    try:
        import pillow_heif  # noqa: F401
    except ImportError:
        return False
    return True


def expected_failure(row: Row) -> Reason | None:
    """The code a "no" row must fail with, or None when a thumbnail is expected."""
    if row.ok:
        return None
    verdict = row.verdict
    if row.format == "HEIC" and "pillow-heif" in row.what:
        return None if _heif_available() else Reason.UNSUPPORTED_FORMAT
    if "DecompressionBombError" in verdict:
        return Reason.TOO_MANY_PIXELS
    if "UnidentifiedImageError" in verdict:
        return Reason.EMPTY_FILE if row.size_bytes == 0 else Reason.NOT_AN_IMAGE
    if "truncated" in verdict.lower():
        return Reason.TRUNCATED
    raise AssertionError(f"{row.path.name}: no expectation for manifest verdict {verdict!r}")


def upright_size(row: Row) -> tuple[int, int] | None:
    opened = _OPENED.search(row.verdict)
    if opened is None:
        return None
    width, height = int(opened["w"]), int(opened["h"])
    orientation = _ORIENTATION.search(row.verdict)
    if orientation and int(orientation[1]) >= 5:
        return height, width
    return width, height


def fit(size: tuple[int, int], long_edge: int) -> tuple[int, int]:
    width, height = size
    if max(size) <= long_edge:
        return size
    scale = long_edge / max(size)
    if width >= height:
        return long_edge, max(1, round(height * scale))
    return max(1, round(width * scale)), long_edge


def reference(path: Path, size: tuple[int, int]) -> Image.Image:
    """The thumbnail done the obvious way, in RGB (only for opaque photo modes).

    A JPEG is decoded at no less than twice the size (Pillow's own thumbnail() margin),
    so big samples stay quick without borrowing the thumbnailer's exact-scale decode.
    """
    with Image.open(path) as source:
        source.draft(source.mode, (2 * max(size), 2 * max(size)))
        source.load()
        icc = source.info.get("icc_profile")
        image: Image.Image = ImageOps.exif_transpose(source)
    image = image.resize(size, Image.Resampling.LANCZOS)
    if icc:
        converted = ImageCms.profileToProfile(
            image,
            ImageCms.ImageCmsProfile(io.BytesIO(icc)),
            ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            outputMode="RGB",
            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
        )
        assert converted is not None
        image = converted
    return image.convert("RGB")


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return max(ImageStat.Stat(ImageChops.difference(a, b)).mean)


def colour_difference(a: Image.Image, b: Image.Image) -> float:
    size = (16, max(1, round(16 * a.height / a.width)))
    return mean_difference(
        a.resize(size, Image.Resampling.BOX), b.resize(size, Image.Resampling.BOX)
    )


Outcome = ThumbnailSet | ThumbnailError


@pytest.fixture(scope="module")
def outcomes(image_rows: list[Row]) -> dict[str, Outcome]:
    """Each sample thumbnailed once, shared by the tests below."""
    made: dict[str, Outcome] = {}
    for row in image_rows:
        try:
            made[row.path.name] = make_thumbnails(
                row.path, SIZES, max_pixels=MAX_PIXELS, name=row.path.name
            )
        except ThumbnailError as error:
            made[row.path.name] = error
    return made


def test_every_sample_image_gives_a_correct_thumbnail_or_its_predicted_error(
    image_rows: list[Row], outcomes: dict[str, Outcome]
) -> None:
    problems: list[str] = []
    for row in image_rows:
        name = row.path.name
        expected = expected_failure(row)
        result = outcomes[name]
        if isinstance(result, ThumbnailError):
            if result.code is not expected:
                problems.append(f"{name}: failed {result.code} ({result}), expected {expected}")
            continue
        if expected is not None:
            problems.append(f"{name}: gave a thumbnail, expected {expected}")
            continue
        if row.format == "HEIC" and result.source_format != "HEIF":
            problems.append(f"{name}: decoded as {result.source_format}")
        problems.extend(_check(row, result.thumbnails, result.format))
    assert not problems, "\n".join(problems)


def _check(row: Row, thumbnails: tuple, out_format: object) -> list[str]:
    name = row.path.name
    problems = []
    upright = upright_size(row)
    for thumbnail in thumbnails:
        image = Image.open(io.BytesIO(thumbnail.data))
        image.load()
        if image.info.get("icc_profile") != srgb_icc():
            problems.append(f"{name}: {thumbnail.size} lacks the sRGB profile")
        if image.format != thumbnail.format.name:
            problems.append(f"{name}: {thumbnail.size} is {image.format}")
        if image.mode != ("RGBA" if out_format is WEBP else "RGB"):
            problems.append(f"{name}: {thumbnail.size} has mode {image.mode}")
        if upright is not None and image.size != fit(upright, thumbnail.size):
            problems.append(
                f"{name}: {thumbnail.size} is {image.size}, expected {fit(upright, thumbnail.size)}"
            )
        if upright is None and max(image.size) != min(thumbnail.size, max(image.size)):
            problems.append(f"{name}: {thumbnail.size} has long edge {max(image.size)}")
    opened = _OPENED.search(row.verdict)
    if opened and opened["mode"] in ("RGB", "L", "CMYK") and out_format is JPEG:
        largest = Image.open(io.BytesIO(thumbnails[-1].data)).convert("RGB")
        expected = reference(row.path, largest.size)
        difference = mean_difference(largest, expected)
        if difference > MAX_MEAN_DIFFERENCE:
            problems.append(f"{name}: differs from the reference by {difference:.1f} on average")
        colour = colour_difference(largest, expected)
        if colour > MAX_COLOUR_DIFFERENCE:
            problems.append(f"{name}: colour differs from the reference by {colour:.2f}")
    return problems


def test_transparency_decides_the_format(outcomes: dict[str, Outcome]) -> None:
    translucent = ["pillow_p_trns_single.png", "sharp_5_webp_a.webp", "sharp_bggn4a16.png"]
    # Declared RGBA, but every pixel is opaque: JPEG is the smaller, right answer.
    opaque = ["sharp_embedgravitybird.png", "photoprism_elephants.jpg"]
    for name, wanted in [(n, WEBP) for n in translucent] + [(n, JPEG) for n in opaque]:
        result = outcomes.get(name)
        if result is None:
            continue  # that sample is gone from the set
        assert isinstance(result, ThumbnailSet), f"{name}: {result}"
        assert result.format is wanted, name


# -- camera RAW samples ------------------------------------------------------------------
def test_raw_samples_give_a_thumbnail_or_a_clean_error(samples_dir: Path) -> None:
    """RAW rows describe the RAW developer's view, so the thumbnailer's expectations differ.

    A decodable RAW must give a thumbnail (from its preview or its sensor data); a file
    whose sensor data was stripped must fail as decode_failed rather than give a black or
    garbage picture. A truncated RAW fails cleanly unless its embedded preview survived
    the cut, which is then a correct picture of the shot and is used.
    """
    rows = _rows(samples_dir, "raw")
    if not rows:
        pytest.skip("no raw/ rows in the manifest")
    problems = []
    for row in rows:
        name = row.path.name
        try:
            result = make_thumbnails(row.path, SIZES, max_pixels=MAX_PIXELS, name=name)
        except ThumbnailError as error:
            if row.ok and "ODD" not in row.what:
                problems.append(f"{name}: {error.code} ({error}), expected a thumbnail")
            elif "ODD" in row.what and error.code is not Reason.DECODE_FAILED:
                problems.append(f"{name}: {error.code}, expected decode_failed (no picture)")
            continue
        if "ODD" in row.what:
            problems.append(f"{name}: a picture-less RAW gave a thumbnail")
        elif not row.ok and "truncated" not in name:
            problems.append(f"{name}: gave a thumbnail, expected an error ({row.verdict})")
        assert result.source_format == "RAW"
    assert not problems, "\n".join(problems)
