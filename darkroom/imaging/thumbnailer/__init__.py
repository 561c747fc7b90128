"""Thumbnails of any real-world image: bytes or a file in, small sRGB JPEG/WebP files out.

Pure: no AWS, no logging, no environment. The thumbnail function (darkroom.thumbnail_service), the
`darkroom thumbnail` command and the benchmark all call `make_thumbnails`.

What comes out
--------------
- One thumbnail per requested size, the size being the long edge in pixels. Images are
  never enlarged: a source smaller than a size is kept at its own size.
- Upright: the EXIF orientation (1-8) is applied to the pixels and not written back.
- 8-bit sRGB with the sRGB ICC profile embedded. An embedded profile (RGB, CMYK or grey)
  is converted from with relative colorimetric intent and black point compensation; an
  image without one is taken to be sRGB (CMYK without one: Pillow's naive conversion).
  Grey images come out as RGB, so every thumbnail can carry the same profile.
- 16-bit sources are reduced to 8 bits by scaling (65535 -> 255), never by clipping.
- No other metadata: EXIF (GPS included), XMP and comments are dropped.
- The alpha rule: an image with any pixel that is not fully opaque (an alpha channel,
  a palette or colour with a transparent entry) gives WebP thumbnails (lossy colour,
  lossless alpha); everything else, including images with an alpha channel that is opaque
  everywhere, gives JPEG. The choice is made once per image, on the largest thumbnail, so
  every size of one image has the same format.
- Animations (GIF, WebP, APNG) and multi-image files (MPO, multi-page TIFF, HEIC
  collections) give their first frame or primary image.
- Camera RAW files give their embedded preview when it is large enough, else a half-size
  decode (a full one when half the sensor is smaller than the largest size).
- Deterministic: the same bytes in give the same bytes out, in any process.

Speed and memory
----------------
JPEG (and MPO) are decoded at reduced scale by libjpeg's DCT scaling (1/2, 1/4, 1/8) to
the smallest scale still at least the largest size; other formats are decoded whole. The
rest is reduced in steps: an integer box reduction, then Lanczos over the last factor of
at most REDUCING_GAP; colour conversion and rotation run on the reduced image, and each
smaller size is made from the previous one.

Bad input
---------
Every failure raises ThumbnailError with a stable `code` (the Reason values) and a
message for people. The pixel limit (`max_pixels`) counts the pixels that decoding must
hold: the reduced-scale size for a baseline JPEG, so a huge but honest JPEG is still
thumbnailed; the full declared size for everything else, including progressive JPEGs,
whose decoder keeps every coefficient of the full image; the sensor size for RAW files.
"""

from __future__ import annotations

from collections.abc import Sequence

from darkroom.imaging.thumbnailer.colour import srgb_icc
from darkroom.imaging.thumbnailer.decode import decode
from darkroom.imaging.thumbnailer.load import opened
from darkroom.imaging.thumbnailer.model import (
    JPEG,
    OUTPUT_FORMATS,
    WEBP,
    OutputFormat,
    Reason,
    Source,
    Thumbnail,
    ThumbnailError,
    ThumbnailSet,
    validate_sizes,
)
from darkroom.imaging.thumbnailer.resize import render

__all__ = [
    "JPEG",
    "OUTPUT_FORMATS",
    "WEBP",
    "OutputFormat",
    "Reason",
    "Source",
    "Thumbnail",
    "ThumbnailError",
    "ThumbnailSet",
    "make_thumbnails",
    "srgb_icc",
    "validate_sizes",
]


def make_thumbnails(
    source: Source, sizes: Sequence[int], *, max_pixels: int, name: str = ""
) -> ThumbnailSet:
    """Thumbnails of `source` at every size (long edge, px); raises ThumbnailError.

    `name` (a file name or object key) is used only to recognise camera RAW files by
    extension; content is trusted over it otherwise.
    """
    wanted = validate_sizes(sizes)
    if max_pixels < 1:
        raise ValueError("max_pixels must be positive")
    with opened(source) as fp:
        decoded = decode(fp, name, max(wanted), max_pixels)
    try:
        return render(decoded, wanted)
    finally:
        decoded.image.close()
