"""What a file is, from its first bytes and its name, before anything decodes it."""

from __future__ import annotations

import functools
from typing import IO, NoReturn

from PIL import Image

from darkroom.formats import is_raw
from darkroom.imaging.thumbnailer.load import pillow_failure, pillow_pixel_limit
from darkroom.imaging.thumbnailer.model import Reason, ThumbnailError

# ISO BMFF brands of HEIF still images (AVIF is Pillow's own).
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})


def is_heif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


@functools.cache
def register_heif() -> bool:
    """pillow-heif registers HEIF with Pillow; imported only when a HEIF file shows up."""
    try:
        import pillow_heif
    except ImportError:
        return False
    # Pillow's draft-free decode of the primary image, EXIF orientation already applied.
    pillow_heif.register_heif_opener(thumbnails=False)
    return True


def looks_raw(head: bytes, name: str) -> bool:
    """A camera RAW by its extension (the format table) or by its signature."""
    if is_raw(name):
        return True
    return (
        head.startswith(b"FUJIFILMCCD-RAW")  # RAF
        or head[6:14] == b"HEAPCCDR"  # CRW
        or head[:4] in (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")  # ORF, RW2
        or (head[4:8] == b"ftyp" and head[8:12] == b"crx ")  # CR3
    )


def refuse_unidentified(fp: IO[bytes], head: bytes, max_pixels: int) -> NoReturn:
    """The stable failure for a file Pillow could not identify: what it is, if known."""
    if is_heif(head):
        raise ThumbnailError(
            Reason.UNSUPPORTED_FORMAT,
            "HEIF/HEIC image, but HEIF support (the pillow-heif package) is not installed",
        )
    other = _other_image_format(fp, head, max_pixels)
    if other:
        raise ThumbnailError(Reason.UNSUPPORTED_FORMAT, f"{other} images are not supported")
    # Not handed to LibRaw on a hunch: it recognises some headerless RAW formats by file
    # size alone, and would turn any file of that size into a garbage "photo".
    raise ThumbnailError(
        Reason.NOT_AN_IMAGE, "not an image (no known image format matches its content)"
    )


def _other_image_format(fp: IO[bytes], head: bytes, max_pixels: int) -> str | None:
    """The name of an image format recognised but not thumbnailed, if that is what this is."""
    text = head.lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in fp.read(4096)):
        return "SVG"
    if head.startswith(b"\xff\x0a") or head[4:12] == b"JXL \r\n\x87\n":
        return "JPEG XL"
    fp.seek(0)
    # Every Pillow plugin may identify it; opening reads the header only (never
    # load(): the EPS plugin would run Ghostscript). Pillow's guard stays on at our
    # limit, since some plugins allocate as they open.
    try:
        with pillow_pixel_limit(max_pixels), Image.open(fp) as other:
            return other.format or "unknown"
    except Image.DecompressionBombError as exc:
        raise pillow_failure(exc, max_pixels) from exc
    except Exception:
        return None
