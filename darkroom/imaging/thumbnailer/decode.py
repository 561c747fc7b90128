"""From a file's bytes to a loaded image: camera RAW, Pillow, or a stable refusal."""

from __future__ import annotations

from typing import IO

from PIL import Image, UnidentifiedImageError

from darkroom.imaging.thumbnailer.load import (
    load,
    pillow_failure,
    pillow_formats,
    pillow_pixel_limit,
)
from darkroom.imaging.thumbnailer.model import Decoded, Reason, ThumbnailError
from darkroom.imaging.thumbnailer.raw_preview import decode_raw
from darkroom.imaging.thumbnailer.sniff import (
    is_heif,
    looks_raw,
    refuse_unidentified,
    register_heif,
)

_DNG_VERSION_TAG = 50706


def decode(fp: IO[bytes], name: str, long_edge: int, max_pixels: int) -> Decoded:
    head = fp.read(64)
    fp.seek(0)
    if looks_raw(head, name):
        try:
            return decode_raw(fp, long_edge, max_pixels)
        except ThumbnailError as error:
            # A JPEG or PNG saved under a RAW extension is still that image; anything
            # TIFF-shaped is not retried, or Pillow would show a RAW's mosaic as a photo.
            if error.code is not Reason.UNSUPPORTED_FORMAT or head[:2] in (b"II", b"MM"):
                raise
            fp.seek(0)
    if is_heif(head):
        register_heif()
    jpeg = head.startswith(b"\xff\xd8\xff")
    with pillow_pixel_limit(None if jpeg else max_pixels):
        try:
            image = Image.open(fp, formats=("JPEG",) if jpeg else pillow_formats())
        except UnidentifiedImageError:
            image = None
        except Exception as exc:
            raise pillow_failure(exc, max_pixels) from exc
        if image is None:
            refuse_unidentified(fp, head, max_pixels)
        try:
            if image.format == "TIFF" and _DNG_VERSION_TAG in getattr(image, "tag_v2", {}):
                # A DNG opened as TIFF shows its small preview IFD or raw mosaic data.
                image.close()
                fp.seek(0)
                return decode_raw(fp, long_edge, max_pixels)
            return load(image, long_edge, max_pixels)
        except BaseException:
            image.close()
            raise
