"""Thumbnails of any real-world image: bytes or a file in, small sRGB JPEG/WebP files out.

Pure: no AWS, no logging, no environment. The Lambda (darkroom.thumbnails), the
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

import contextlib
import functools
import io
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageCms, UnidentifiedImageError

from darkroom.formats import PILLOW_FORMATS, is_raw

JPEG_QUALITY = 85
WEBP_QUALITY = 85
# libwebp's effort (0-6): 2 costs about half of the default 4 for 1-3% larger files.
WEBP_METHOD = 2
# Reducing in steps: a box reduction by a whole factor, then Lanczos over what is left.
# From the decoded image, Lanczos gets less than 2x (the split libjpeg's DCT scaling makes
# for a JPEG anyway): megapixels through a wide Lanczos kernel would cost more than the
# decode. Each smaller size is made from an image of at most 1-2 MP, so it can afford
# Pillow's "indistinguishable from one Lanczos pass" gap of 2.
FIRST_REDUCING_GAP = 1.0
REDUCING_GAP = 2.0
# A RAW's embedded preview is used when its long edge reaches this share of what the
# thumbnail needs (previews are often a few pixels short of the sensor).
PREVIEW_SLACK = 0.9

# LittleCMS optimises a transform by precomputing a device link over a grid: tens of ms
# for a LUT-based (CMYK, some RGB) profile, then a fraction of a microsecond per pixel.
# Unoptimised it starts at once but costs several times more per pixel; below this many
# pixels that is the faster way (measured crossover ~110-150k pixels).
SMALL_TRANSFORM_PIXELS = 120_000
# ISO BMFF brands of HEIF still images (AVIF is Pillow's own).
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_DNG_VERSION_TAG = 50706
_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# LibRaw's `flip` (after its own rotation convention) as an EXIF orientation.
_LIBRAW_FLIP_TO_EXIF = {3: 3, 5: 8, 6: 6}


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


def validate_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """Distinct positive sizes, in the order given; fails at start-up rather than per image."""
    if not sizes:
        raise ValueError("at least one thumbnail size is needed")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"thumbnail sizes must be positive integers, got {size!r}")
    return tuple(dict.fromkeys(sizes))


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
    with _opened(source) as fp:
        decoded = _decode(fp, name, max(wanted), max_pixels)
    try:
        return _render(decoded, wanted)
    finally:
        decoded.image.close()


# -- input ---------------------------------------------------------------------------
@contextlib.contextmanager
def _opened(source: Source) -> Iterator[IO[bytes]]:
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
def _pillow_pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Pillow's global bomb guard set to our limit (None: off) while a file is decoded.

    Pillow checks declared sizes as it opens a file and as some plugins allocate (a GIF's
    disposal canvas, TIFF tiles), raising past twice Image.MAX_IMAGE_PIXELS. For every
    format but JPEG it is set to refuse exactly what our own limit refuses, so nothing is
    allocated first. For JPEG it is off: opening one allocates nothing, and draft() may
    yet decode a huge, honest JPEG at 1/8 scale within the limit (checked in _load).
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


# -- decoding ------------------------------------------------------------------------
@dataclass
class _Decoded:
    image: Image.Image  # loaded, first frame, possibly at reduced scale
    source_format: str
    source_size: tuple[int, int]
    # The part of `image` that is the whole source (draft() pads to whole DCT blocks).
    box: tuple[float, float, float, float]
    orientation: int  # EXIF orientation still to apply
    icc: bytes | None
    notes: list[str]


def _decode(fp: IO[bytes], name: str, long_edge: int, max_pixels: int) -> _Decoded:
    head = fp.read(64)
    fp.seek(0)
    if _is_raw(head, name):
        try:
            return _decode_raw(fp, long_edge, max_pixels)
        except ThumbnailError as error:
            # A JPEG or PNG saved under a RAW extension is still that image; anything
            # TIFF-shaped is not retried, or Pillow would show a RAW's mosaic as a photo.
            if error.code is not Reason.UNSUPPORTED_FORMAT or head[:2] in (b"II", b"MM"):
                raise
            fp.seek(0)
    if _is_heif(head):
        _register_heif()
    jpeg = head.startswith(b"\xff\xd8\xff")
    with _pillow_pixel_limit(None if jpeg else max_pixels):
        try:
            image = Image.open(fp, formats=("JPEG",) if jpeg else _pillow_formats())
        except UnidentifiedImageError:
            image = None
        except Exception as exc:
            raise _pillow_failure(exc, max_pixels) from exc
        if image is None:
            return _decode_unidentified(fp, head, max_pixels)
        try:
            if image.format == "TIFF" and _DNG_VERSION_TAG in getattr(image, "tag_v2", {}):
                # A DNG opened as TIFF shows its small preview IFD or raw mosaic data.
                image.close()
                fp.seek(0)
                return _decode_raw(fp, long_edge, max_pixels)
            return _load(image, long_edge, max_pixels)
        except BaseException:
            image.close()
            raise


def _pillow_formats() -> tuple[str, ...]:
    return (*PILLOW_FORMATS, "HEIF") if "HEIF" in Image.OPEN else PILLOW_FORMATS


def _load(image: Image.Image, long_edge: int, max_pixels: int) -> _Decoded:
    source_size = image.size
    source_format = image.format or "unknown"
    width, height = source_size
    box: tuple[float, float, float, float] = (0, 0, width, height)
    held = width * height
    if source_format in ("JPEG", "MPO"):
        progressive = bool(image.info.get("progressive") or image.info.get("progression"))
        target = _fit(width, height, long_edge)
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
        raise _pillow_failure(exc, max_pixels) from exc
    icc = image.info.get("icc_profile") or None
    orientation = _orientation(image)
    return _Decoded(image, source_format, source_size, box, orientation, icc, [])


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:
        # Corrupt EXIF must not cost the thumbnail; the pixels are fine.
        return 1
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _pillow_failure(exc: BaseException, max_pixels: int) -> ThumbnailError:
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


def _fit(width: float, height: float, long_edge: int) -> tuple[int, int]:
    """The size of (width, height) with its long edge at most `long_edge`; never larger."""
    longest = max(width, height)
    if longest <= long_edge:
        return max(1, round(width)), max(1, round(height))
    scale = long_edge / longest
    if width >= height:
        return long_edge, max(1, round(height * scale))
    return max(1, round(width * scale)), long_edge


# -- what Pillow cannot open -----------------------------------------------------------
def _is_heif(head: bytes) -> bool:
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


@functools.cache
def _register_heif() -> bool:
    """pillow-heif registers HEIF with Pillow; imported only when a HEIF file shows up."""
    try:
        import pillow_heif
    except ImportError:
        return False
    # Pillow's draft-free decode of the primary image, EXIF orientation already applied.
    pillow_heif.register_heif_opener(thumbnails=False)
    return True


def _is_raw(head: bytes, name: str) -> bool:
    if is_raw(name):
        return True
    return (
        head.startswith(b"FUJIFILMCCD-RAW")  # RAF
        or head[6:14] == b"HEAPCCDR"  # CRW
        or head[:4] in (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00")  # ORF, RW2
        or (head[4:8] == b"ftyp" and head[8:12] == b"crx ")  # CR3
    )


def _decode_unidentified(fp: IO[bytes], head: bytes, max_pixels: int) -> _Decoded:
    if _is_heif(head):
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
        with _pillow_pixel_limit(max_pixels), Image.open(fp) as other:
            return other.format or "unknown"
    except Image.DecompressionBombError as exc:
        raise _pillow_failure(exc, max_pixels) from exc
    except Exception:
        return None


# -- camera RAW ------------------------------------------------------------------------
def _decode_raw(fp: IO[bytes], long_edge: int, max_pixels: int) -> _Decoded:
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
            Reason.UNSUPPORTED_FORMAT, f"unsupported RAW variant or not a RAW file ({exc})"
        ) from exc
    except (rawpy.LibRawIOError, EOFError) as exc:
        raise ThumbnailError(Reason.TRUNCATED, f"truncated RAW data ({exc})") from exc
    except MemoryError as exc:
        raise ThumbnailError(Reason.DECODE_FAILED, "not enough memory to decode") from exc
    except Exception as exc:
        raise ThumbnailError(Reason.DECODE_FAILED, f"cannot decode RAW data ({exc})") from exc
    return _Decoded(image, "RAW", (width, height), (0, 0, *image.size), 1, None, [])


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


def _from_preview(preview: Image.Image | bytes, long_edge: int, max_pixels: int) -> _Decoded:
    if isinstance(preview, Image.Image):
        return _Decoded(preview, "RAW", preview.size, (0, 0, *preview.size), 1, None, [])
    image = Image.open(io.BytesIO(preview), formats=("JPEG",))
    try:
        return _load(image, long_edge, max_pixels)
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


# -- rendering ---------------------------------------------------------------------------
def _render(decoded: _Decoded, sizes: tuple[int, ...]) -> ThumbnailSet:
    try:
        thumbnails = _render_sizes(decoded, sizes)
    except ThumbnailError:
        raise
    except MemoryError as exc:
        raise ThumbnailError(Reason.DECODE_FAILED, "not enough memory to resize") from exc
    except Exception as exc:
        raise ThumbnailError(Reason.DECODE_FAILED, f"cannot process image ({exc})") from exc
    return ThumbnailSet(
        source_format=decoded.source_format,
        source_width=decoded.source_size[0],
        source_height=decoded.source_size[1],
        thumbnails=thumbnails,
        notes=tuple(decoded.notes),
    )


def _render_sizes(decoded: _Decoded, sizes: tuple[int, ...]) -> tuple[Thumbnail, ...]:
    working = _working_mode(decoded.image)
    if working is not decoded.image:
        # A converted copy (e.g. RGB with a tRNS colour as RGBA): holding the decoded
        # original too would add its size to the peak, which at the pixel limit is more
        # than the Lambda has.
        decoded.image.close()
    # Resize before colour conversion and rotation: both are cheaper on fewer pixels (the
    # long edge is the same either side of a rotation). The box, not source_size, has the
    # decoded picture's shape: a RAW may have been developed upright already, or be
    # represented by its preview.
    left, top, right, bottom = decoded.box
    target = _fit(right - left, bottom - top, max(sizes))
    reduced = _resize(working, target, decoded.box, FIRST_REDUCING_GAP)
    if reduced is not working:
        # The full-size decode is the bulk of the memory; nothing needs it any more.
        working.close()
        decoded.image.close()
    colour = _to_srgb(reduced, decoded.icc, decoded.notes)
    upright = _transpose(colour, decoded.orientation)
    out_format, final = _choose_format(upright)

    made: dict[int, Thumbnail] = {}
    current = final
    for size in sorted(sizes, reverse=True):
        current = _resize(current, _fit(*final.size, size), None, REDUCING_GAP)
        made[size] = Thumbnail(
            size=size,
            width=current.width,
            height=current.height,
            format=out_format,
            data=_encode(current, out_format),
        )
    return tuple(made[size] for size in sizes)


def _working_mode(image: Image.Image) -> Image.Image:
    """The image in a mode Pillow resizes well and ICC profiles describe.

    RGB, RGBA, L, LA or CMYK; transparency carried by a palette or a tRNS colour becomes
    an alpha channel; 16-bit and 32-bit grey is scaled (not clipped) to 8 bits.
    """
    mode = image.mode
    transparent = "transparency" in image.info
    if mode in ("RGB", "L", "CMYK", "RGBA", "LA"):
        if transparent and mode in ("RGB", "L"):
            return image.convert(mode + "A" if mode == "L" else "RGBA")
        return image
    if mode == "P":
        return image.convert("RGBA" if transparent else "RGB")
    if mode in ("PA", "RGBa", "RGBX"):
        return image.convert("RGBA" if mode != "RGBX" else "RGB")
    if mode in ("La",):
        return image.convert("LA")
    if mode == "1":
        return image.convert("L")
    if mode == "I;16":
        # Scaled in its own mode (Pillow's point() supports I;16, not I;16B or I;16L), so
        # no 32-bit copy of the whole image is made: half the peak at the pixel limit.
        return image.point(lambda value: value / 257 + 0.5).convert("L")
    if mode.startswith("I;16") or mode == "I":
        wide = image.convert("I") if mode != "I" else image
        top = wide.getextrema()[1]
        # 16-bit data (I;16, and "I" from 16-bit files) spans 0-65535; divide, don't clip.
        if mode.startswith("I;16") or (isinstance(top, int | float) and top > 255):
            wide = wide.point(lambda value: value / 257 + 0.5)
        return wide.convert("L")
    if mode == "F":
        top = image.getextrema()[1]
        if isinstance(top, int | float) and top <= 1.0:
            image = image.point(lambda value: value * 255 + 0.5)
        return image.convert("L")
    if mode == "LAB":
        lab = ImageCms.createProfile("LAB")
        return ImageCms.profileToProfile(image, lab, _srgb_profile(), outputMode="RGB") or image
    return image.convert("RGBA" if "A" in mode else "RGB")


def _resize(
    image: Image.Image,
    size: tuple[int, int],
    box: tuple[float, float, float, float] | None,
    gap: float,
) -> Image.Image:
    if image.size == size and (box is None or box == (0, 0, *image.size)):
        return image
    return image.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=gap)


def _transpose(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def _choose_format(image: Image.Image) -> tuple[OutputFormat, Image.Image]:
    if image.mode == "RGBA":
        low, _ = image.getchannel("A").getextrema()
        if isinstance(low, int) and low < 255:
            return WEBP, image
        return JPEG, image.convert("RGB")
    return JPEG, image


def _encode(image: Image.Image, out: OutputFormat) -> bytes:
    buffer = io.BytesIO()
    if out is WEBP:
        image.save(
            buffer,
            "WEBP",
            quality=WEBP_QUALITY,
            method=WEBP_METHOD,
            alpha_quality=100,
            icc_profile=srgb_icc(),
        )
    else:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, icc_profile=srgb_icc())
    return buffer.getvalue()


# -- colour ------------------------------------------------------------------------------
_PROFILE_SPACE = {"RGB": "RGB ", "RGBA": "RGB ", "CMYK": "CMYK", "L": "GRAY", "LA": "GRAY"}
# Profiles that are the standard sRGB (most camera JPEGs carry one): converting through
# them changes nothing, so it is skipped. Matched by name, and only these names: others
# called "sRGB-something" exist with a linear curve.
_SRGB_NAMES = ("sRGB IEC61966-2", "sRGB built-in", "sRGB2014", "sRGB v4 ICC")


def _to_srgb(image: Image.Image, icc: bytes | None, notes: list[str]) -> Image.Image:
    """8-bit sRGB (RGB or RGBA) through the embedded profile; alpha is carried unchanged."""
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
    colour = image.convert(image.mode[:-1]) if alpha is not None else image
    transform: ImageCms.ImageCmsTransform | bool | None = None
    if icc:
        try:
            optimise = colour.width * colour.height > SMALL_TRANSFORM_PIXELS
            transform = _transform_from(icc, colour.mode, optimise)
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            notes.append(f"ignored an unreadable embedded ICC profile ({exc})")
        if transform is False:
            notes.append(f"ignored an embedded ICC profile that does not describe {colour.mode}")
    if isinstance(transform, ImageCms.ImageCmsTransform):
        converted = transform.apply(colour)
    else:
        converted = colour if colour.mode == "RGB" else colour.convert("RGB")
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


@functools.lru_cache(maxsize=16)
def _transform_from(
    icc: bytes, mode: str, optimise: bool = True
) -> ImageCms.ImageCmsTransform | bool:
    """A cached transform to sRGB; True when the profile already is sRGB, False if unfit."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    space = profile.profile.xcolor_space
    if space != _PROFILE_SPACE.get(mode):
        return False
    description = ImageCms.getProfileDescription(profile).strip()
    if space == "RGB " and (description == "sRGB" or description.startswith(_SRGB_NAMES)):
        return True
    return ImageCms.buildTransform(
        profile,
        _srgb_profile(),
        mode,
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION
        | (ImageCms.Flags.NONE if optimise else ImageCms.Flags.NOOPTIMIZE),
    )


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def srgb_icc() -> bytes:
    """The sRGB profile every thumbnail embeds, byte-identical in every process.

    LittleCMS stamps a profile with the time it was created; a fixed date keeps the
    thumbnails of the same source identical across Lambda cold starts.
    """
    data = bytearray(_srgb_profile().tobytes())
    # Header bytes 24-35: creation date and time, six big-endian uint16.
    data[24:36] = bytes.fromhex("07d0 0001 0001 0000 0000 0000".replace(" ", ""))
    # The profile ID (bytes 84-99) is an MD5 over the header including the date; LittleCMS
    # leaves it zero ("not computed"), which stays valid.
    if any(data[84:100]):
        data[84:100] = bytes(16)
    return bytes(data)
