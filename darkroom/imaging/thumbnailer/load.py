"""Opening a source and loading it with Pillow, within the pixel limit."""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from PIL import Image

from darkroom.formats import PILLOW_FORMATS
from darkroom.imaging.thumbnailer.model import (
    ORIENTATION_TAG,
    TRANSPOSE,
    Decoded,
    Reason,
    Source,
    ThumbnailError,
    fit,
)


@contextlib.contextmanager
def opened(source: Source) -> Iterator[IO[bytes]]:
    """A seekable binary file over any source, checked for emptiness."""
    with contextlib.ExitStack() as stack:
        fp: IO[bytes]
        if isinstance(source, bytes | bytearray):
            fp = io.BytesIO(source)
        elif isinstance(source, Path):
            try:
                fp = stack.enter_context(source.open("rb"))
            except OSError as exc:
                raise ThumbnailError(
                    Reason.DECODE_FAILED, f"cannot read file ({exc.strerror or exc})"
                ) from exc
        else:
            fp = source
        # Read from the start whatever the caller did with the stream before.
        size = fp.seek(0, io.SEEK_END)
        fp.seek(0)
        if size <= 0:
            raise ThumbnailError(Reason.EMPTY_FILE, "empty file (0 bytes)")
        yield fp


_pillow_limit_lock = threading.RLock()


@contextlib.contextmanager
def pillow_pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Pillow's global bomb guard set to our limit (None: off) while a file is decoded.

    Pillow checks declared sizes as it opens a file and as some plugins allocate (a GIF's
    disposal canvas, TIFF tiles), raising past twice Image.MAX_IMAGE_PIXELS. For every
    format but JPEG it is set to refuse exactly what our own limit refuses, so nothing is
    allocated first. For JPEG it is off: opening one allocates nothing, and draft() may
    yet decode a huge, honest JPEG at 1/8 scale within the limit (checked in load).
    The global is restored afterwards; the lock keeps concurrent threads from restoring
    it early. Pillow's warnings (corrupt EXIF and the like) are noise for a thumbnailer.
    """
    with _pillow_limit_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None if max_pixels is None else (max_pixels + 1) // 2
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def pillow_formats() -> tuple[str, ...]:
    return (*PILLOW_FORMATS, "HEIF") if "HEIF" in Image.OPEN else PILLOW_FORMATS


def load(image: Image.Image, long_edge: int, max_pixels: int) -> Decoded:
    source_size = image.size
    source_format = image.format or "unknown"
    width, height = source_size
    box: tuple[float, float, float, float] = (0, 0, width, height)
    held = width * height
    if source_format in ("JPEG", "MPO"):
        progressive = bool(image.info.get("progressive") or image.info.get("progression"))
        target = fit(width, height, long_edge)
        drafted = image.draft(image.mode, target)
        if drafted is not None:
            box = drafted[1]
        if not progressive:
            held = image.size[0] * image.size[1]
    if held > max_pixels:
        raise ThumbnailError(
            Reason.TOO_MANY_PIXELS,
            f"{source_format} of {width}x{height} needs {held:,} pixels decoded, over the "
            f"limit of {max_pixels:,} (possible decompression bomb)",
        )
    try:
        image.load()
    except Exception as exc:
        raise pillow_failure(exc, max_pixels) from exc
    icc = image.info.get("icc_profile") or None
    orientation = _orientation(image)
    return Decoded(image, source_format, source_size, box, orientation, icc, [])


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:
        # Corrupt EXIF must not cost the thumbnail; the pixels are fine.
        return 1
    return value if isinstance(value, int) and value in TRANSPOSE else 1


def pillow_failure(exc: BaseException, max_pixels: int) -> ThumbnailError:
    if isinstance(exc, ThumbnailError):
        return exc
    message = str(exc) or type(exc).__name__
    lowered = message.lower()
    if isinstance(exc, Image.DecompressionBombError):
        # Pillow's words: "Image size (N pixels) exceeds limit of M pixels, ..."
        declared = message.split(" pixels)", 1)[0].rsplit("(", 1)[-1]
        if declared.isdigit():
            declared = f"{int(declared):,}"
        return ThumbnailError(
            Reason.TOO_MANY_PIXELS,
            f"declares {declared} pixels, over the limit of {max_pixels:,} "
            "(possible decompression bomb)",
        )
    if isinstance(exc, EOFError) or "truncated" in lowered or "premature end" in lowered:
        return ThumbnailError(Reason.TRUNCATED, f"truncated image data ({message})")
    if isinstance(exc, MemoryError):
        return ThumbnailError(Reason.DECODE_FAILED, "not enough memory to decode")
    return ThumbnailError(Reason.DECODE_FAILED, f"cannot decode ({message})")
