"""What the thumbnailer takes and gives: sizes in, thumbnails or a stable failure out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from PIL import Image

ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that makes the pixels upright (1 needs none).
TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class Reason(StrEnum):
    """Stable failure codes: metrics dimensions, log fields and CLI output use them."""

    EMPTY_FILE = "empty_file"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    TRUNCATED = "truncated"
    TOO_MANY_PIXELS = "too_many_pixels"
    DECODE_FAILED = "decode_failed"


class ThumbnailError(Exception):
    """A file that cannot be thumbnailed; permanent: the same bytes always fail the same way."""

    def __init__(self, code: Reason, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message))


@dataclass(frozen=True)
class OutputFormat:
    name: str  # Pillow's format name
    extension: str
    content_type: str


JPEG = OutputFormat("JPEG", "jpg", "image/jpeg")
WEBP = OutputFormat("WEBP", "webp", "image/webp")
# Every extension a thumbnail can have: deleting a source's thumbnails must try each,
# since the function never lists (reads) the output bucket.
OUTPUT_FORMATS = (JPEG, WEBP)


@dataclass(frozen=True)
class Thumbnail:
    size: int  # the requested long edge (the key's name), not necessarily the pixels
    width: int
    height: int
    format: OutputFormat
    data: bytes


@dataclass(frozen=True)
class ThumbnailSet:
    source_format: str  # e.g. "JPEG", "PNG", "HEIF", "RAW"
    source_width: int  # as stored, before orientation
    source_height: int
    thumbnails: tuple[Thumbnail, ...]  # in the order the sizes were asked for
    # Things a person may want to know that did not stop the thumbnail (ignored profile).
    notes: tuple[str, ...] = ()

    @property
    def source_megapixels(self) -> float:
        return self.source_width * self.source_height / 1e6

    @property
    def format(self) -> OutputFormat:
        return self.thumbnails[0].format


Source = bytes | bytearray | Path | IO[bytes]


@dataclass
class Decoded:
    image: Image.Image  # loaded, first frame, possibly at reduced scale
    source_format: str
    source_size: tuple[int, int]
    # The part of `image` that is the whole source (draft() pads to whole DCT blocks).
    box: tuple[float, float, float, float]
    orientation: int  # EXIF orientation still to apply
    icc: bytes | None
    notes: list[str]


def validate_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """Distinct positive sizes, in the order given; fails at start-up rather than per image."""
    if not sizes:
        raise ValueError("at least one thumbnail size is needed")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"thumbnail sizes must be positive integers, got {size!r}")
    return tuple(dict.fromkeys(sizes))


def fit(width: float, height: float, long_edge: int) -> tuple[int, int]:
    """The size of (width, height) with its long edge at most `long_edge`; never larger."""
    longest = max(width, height)
    if longest <= long_edge:
        return max(1, round(width)), max(1, round(height))
    scale = long_edge / longest
    if width >= height:
        return long_edge, max(1, round(height * scale))
    return max(1, round(width * scale)), long_edge
