"""Camera RAW files: the embedded preview when it is large enough, else LibRaw's decode."""

from __future__ import annotations

import io
import os
from typing import IO, Any

from PIL import Image

from darkroom.imaging.thumbnailer.load import load
from darkroom.imaging.thumbnailer.model import Decoded, Reason, ThumbnailError

# A RAW's embedded preview is used when its long edge reaches this share of what the
# thumbnail needs (previews are often a few pixels short of the sensor).
PREVIEW_SLACK = 0.9
# LibRaw's `flip` (after its own rotation convention) as an EXIF orientation.
_LIBRAW_FLIP_TO_EXIF = {3: 3, 5: 8, 6: 6}


def _words(exc: BaseException) -> str:
    """An exception's message as text: LibRaw's come as bytes (b'Input/output error')."""
    detail = exc.args[0] if len(exc.args) == 1 else str(exc)
    if isinstance(detail, bytes):
        return detail.decode("utf-8", "replace")
    return str(detail) or type(exc).__name__


def decode_raw(fp: IO[bytes], long_edge: int, max_pixels: int) -> Decoded:
    try:
        import rawpy
    except ImportError as exc:
        raise ThumbnailError(
            Reason.UNSUPPORTED_FORMAT, "camera RAW support (rawpy) is not installed"
        ) from exc
    fp.seek(0)
    # LibRaw reads a file by path itself; a stream it must copy into memory whole.
    path = getattr(fp, "name", None)
    source = path if isinstance(path, str) and os.path.isfile(path) else fp
    try:
        with rawpy.imread(source) as raw:  # type: ignore[arg-type]
            sizes = raw.sizes
            width, height = sizes.width, sizes.height
            if width * height > max_pixels:
                raise ThumbnailError(
                    Reason.TOO_MANY_PIXELS,
                    f"RAW of {width}x{height} ({width * height:,} pixels) is over the limit "
                    f"of {max_pixels:,}",
                )
            needed = min(long_edge, max(width, height))
            preview = _raw_preview(raw, rawpy, needed)
            if preview is not None:
                decoded = _from_preview(preview, long_edge, max_pixels)
                if decoded.orientation == 1:
                    decoded.orientation = _LIBRAW_FLIP_TO_EXIF.get(sizes.flip, 1)
                decoded.source_format = "RAW"
                decoded.source_size = (width, height)
                return decoded
            image = _develop_raw(raw, half_size=max(width, height) // 2 >= long_edge)
    except ThumbnailError:
        raise
    except rawpy.LibRawFileUnsupportedError as exc:
        raise ThumbnailError(
            Reason.UNSUPPORTED_FORMAT, f"unsupported RAW variant or not a RAW file ({_words(exc)})"
        ) from exc
    except (rawpy.LibRawIOError, EOFError) as exc:
        raise ThumbnailError(Reason.TRUNCATED, f"truncated RAW data ({_words(exc)})") from exc
    except MemoryError as exc:
        raise ThumbnailError(Reason.DECODE_FAILED, "not enough memory to decode") from exc
    except Exception as exc:
        raise ThumbnailError(
            Reason.DECODE_FAILED, f"cannot decode RAW data ({_words(exc)})"
        ) from exc
    return Decoded(image, "RAW", (width, height), (0, 0, *image.size), 1, None, [])


def _raw_preview(raw: Any, rawpy: Any, needed: int) -> Image.Image | bytes | None:
    """The embedded preview (JPEG bytes or an RGB bitmap) if it is large enough."""
    try:
        thumb = raw.extract_thumb()
    except rawpy.LibRawError:
        # None, an unsupported kind, or damaged: the sensor data may still decode.
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            with Image.open(io.BytesIO(thumb.data), formats=("JPEG",)) as probe:
                size = probe.size
        except Exception:
            return None
        return bytes(thumb.data) if max(size) >= needed * PREVIEW_SLACK else None
    bitmap = thumb.data
    if (
        bitmap.ndim == 3
        and bitmap.shape[2] == 3
        and max(bitmap.shape[:2]) >= needed * PREVIEW_SLACK
    ):
        return Image.fromarray(bitmap, "RGB")
    return None


def _from_preview(preview: Image.Image | bytes, long_edge: int, max_pixels: int) -> Decoded:
    if isinstance(preview, Image.Image):
        return Decoded(preview, "RAW", preview.size, (0, 0, *preview.size), 1, None, [])
    image = Image.open(io.BytesIO(preview), formats=("JPEG",))
    try:
        return load(image, long_edge, max_pixels)
    except BaseException:
        image.close()
        raise


def _develop_raw(raw: Any, *, half_size: bool) -> Image.Image:
    import numpy as np
    import rawpy

    from darkroom.imaging.sensor import sensor_is_blank

    # Unpacking first lets LibRaw's own error (truncated, unsupported) speak for itself.
    raw.unpack()
    if sensor_is_blank(raw):
        raise ThumbnailError(
            Reason.DECODE_FAILED, "no image data in the RAW file (sensor data empty or stripped)"
        )
    rgb = raw.postprocess(
        use_camera_wb=True,
        half_size=half_size,
        output_color=rawpy.ColorSpace.sRGB,
        output_bps=8,
        # The sRGB transfer curve, to match the sRGB profile the thumbnail carries.
        gamma=(2.4, 12.92),
    )
    if rgb.ndim == 2 or rgb.shape[2] == 1:
        return Image.fromarray(np.ascontiguousarray(rgb.reshape(rgb.shape[:2])), "L")
    return Image.fromarray(rgb, "RGB")
