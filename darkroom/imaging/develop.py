"""Develop one camera RAW file into every rendition of a recipe.

The RAW is decoded once (LibRaw through rawpy: camera white balance, sRGB, 8 bits, the
camera's orientation applied) and every rendition is resized from that one image with
Pillow. A file that cannot be developed raises DevelopError with a stable code, and leaves
no output behind: a bad file fails that file, never the job.
"""

from __future__ import annotations

import contextlib
import functools
import os
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import rawpy
from numpy.typing import NDArray
from PIL import Image, ImageCms

from darkroom.recipes import DEFAULT_RECIPE, Recipe, Rendition

BLANK_REASON = "no image data (sensor data is empty or stripped)"
# Raw signal above black (99th percentile) below this share of the sensor's range is no
# picture: a stripped file decodes to zeros, a lens-cap frame to read noise.
MIN_RAW_SIGNAL = 1 / 1000
# A developed frame with fewer than this share of pixels above DARK_LEVEL is black.
MIN_LIT_SHARE = 1 / 1000
DARK_LEVEL = 8
# Sampling every 7th row and column reaches every CFA site (7 is odd) at 1/49 of the cost.
SAMPLE_STEP = 7
MAX_EXIF_TEXT = 64


class DevelopError(Exception):
    """A file that cannot be developed; `code` is stable, the message is for people."""

    def __init__(self, code: str, file: str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.code = code
        self.file = file
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (worker pools) with its fields intact.
        return (type(self), (self.code, self.file, self.reason))


@dataclass(frozen=True)
class RenderedFile:
    rendition: str
    path: Path
    width: int
    height: int
    content_type: str
    size_bytes: int


@dataclass(frozen=True)
class DevelopResult:
    source: str
    # Size of the decoded, upright image every rendition was made from (half the sensor
    # on the half_size fast path).
    width: int
    height: int
    half_size: bool
    renditions: tuple[RenderedFile, ...]
    decode_seconds: float
    render_seconds: float


def develop_file(src: Path, out_dir: Path, recipe: Recipe = DEFAULT_RECIPE) -> DevelopResult:
    """Develop `src` into out_dir/<rendition>/<stem>.<ext> for every rendition of `recipe`."""
    src = Path(src)
    name = src.name
    started = time.perf_counter()
    try:
        size = src.stat().st_size
    except OSError as exc:
        raise DevelopError("decode_failed", name, f"cannot read file ({exc.strerror})") from exc
    if size == 0:
        raise DevelopError("empty_file", name, "empty file (0 bytes)")

    rgb, half_size, taken = _decode(src, recipe)
    metadata = _read_metadata(src, taken)
    decoded = time.perf_counter()
    try:
        _check_developed(rgb, name)
        height, width = rgb.shape[:2]
        image = _to_image(rgb)
    finally:
        # Pillow holds its own copy from here on; a 24 MP frame is 72 MB we need not keep.
        del rgb
    try:
        renditions = _render_all(image, src, Path(out_dir), recipe, metadata)
    finally:
        image.close()
    return DevelopResult(
        source=name,
        width=width,
        height=height,
        half_size=half_size,
        renditions=renditions,
        decode_seconds=decoded - started,
        render_seconds=time.perf_counter() - decoded,
    )


# -- decoding ---------------------------------------------------------------------------
def _libraw_message(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else type(exc).__name__
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return str(detail)


@contextlib.contextmanager
def _libraw_errors(name: str) -> Iterator[None]:
    """LibRaw's failures as DevelopErrors with stable codes and LibRaw's own words."""
    try:
        yield
    except DevelopError:
        raise
    except rawpy.LibRawFileUnsupportedError as exc:
        raise DevelopError(
            "unsupported_format",
            name,
            f"unsupported format or not a RAW file (LibRaw: {_libraw_message(exc)})",
        ) from exc
    except rawpy.LibRawIOError as exc:
        raise DevelopError(
            "truncated",
            name,
            f"truncated or unreadable RAW data (LibRaw: {_libraw_message(exc)})",
        ) from exc
    except rawpy.LibRawError as exc:
        raise DevelopError(
            "decode_failed", name, f"cannot decode RAW data (LibRaw: {_libraw_message(exc)})"
        ) from exc
    except MemoryError as exc:
        raise DevelopError("decode_failed", name, "not enough memory to decode") from exc
    except OSError as exc:
        raise DevelopError("decode_failed", name, f"cannot read file ({exc})") from exc
    except Exception as exc:
        # Whatever else a hostile file provokes in the decoder fails that file, not the job.
        raise DevelopError(
            "decode_failed", name, f"cannot decode ({type(exc).__name__}: {exc})"
        ) from exc


def _wants_half_size(recipe: Recipe, sensor_long_edge: int) -> bool:
    # Half-size skips demosaicing (each 2x2 Bayer block becomes one pixel): 3-4x faster and
    # exact enough when no rendition needs more than half the sensor.
    return all(
        r.long_edge != "full" and r.long_edge * 2 <= sensor_long_edge for r in recipe.renditions
    )


def _decode(src: Path, recipe: Recipe) -> tuple[NDArray[np.uint8], bool, str | None]:
    """The upright 8-bit sRGB image, whether it is half-size, and the capture time."""
    name = src.name
    with _libraw_errors(name), rawpy.imread(str(src)) as raw:
        raw.unpack()
        _check_raw_signal(raw, name)
        taken = _capture_time(raw)
        sizes = raw.sizes
        half_size = _wants_half_size(recipe, max(sizes.width, sizes.height))
        rgb = raw.postprocess(
            use_camera_wb=True,
            half_size=half_size,
            output_color=rawpy.ColorSpace.sRGB,
            output_bps=8,
            # The sRGB transfer curve, to match the sRGB ICC profile the JPEGs carry
            # (LibRaw's default is BT.709's).
            gamma=(2.4, 12.92),
        )
    # Leaving the `with` frees LibRaw's own buffers (raw data and the working image) now.
    return rgb, half_size, taken


def _capture_time(raw: rawpy.RawPy) -> str | None:
    try:
        when = raw.other.timestamp
    except (ValueError, OverflowError, OSError):
        return None
    # LibRaw reports 0 (the epoch) when the file carries no date.
    return when.strftime("%Y:%m:%d %H:%M:%S") if when.year > 1970 else None


def _check_raw_signal(raw: rawpy.RawPy, name: str) -> None:
    """Fail a RAW whose sensor data holds no picture, before LibRaw brightens it into noise.

    LibRaw decodes a file whose pixel data was stripped without complaint: to all zeros,
    or (auto-brightened) to a garbage pattern. The sensor values themselves tell.
    """
    try:
        data = raw.raw_image_visible
    except rawpy.LibRawError:
        raise
    except Exception:
        # Some layouts expose no raw plane to rawpy; the developed-frame check remains.
        return
    sample = data[::SAMPLE_STEP, ::SAMPLE_STEP]
    if sample.ndim == 3:
        sample = sample[..., : raw.num_colors]
    if sample.size == 0:
        raise DevelopError("blank_frame", name, BLANK_REASON)
    low, high = np.percentile(sample, [1, 99])
    del data, sample
    black = float(min(raw.black_level_per_channel))
    signal_range = max(float(raw.white_level) - black, 1.0)
    floor = max(1.0, signal_range * MIN_RAW_SIGNAL)
    # Nothing above black, or one flat value everywhere: real sensor data always has noise.
    if high - black < floor or high - low < floor:
        raise DevelopError("blank_frame", name, BLANK_REASON)


def _check_developed(rgb: NDArray[np.uint8], name: str) -> None:
    sample = rgb[::3, ::3]
    if sample.size == 0 or np.count_nonzero(sample > DARK_LEVEL) < MIN_LIT_SHARE * sample.size:
        raise DevelopError("blank_frame", name, BLANK_REASON)


def _to_image(rgb: NDArray[np.uint8]) -> Image.Image:
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        return Image.fromarray(rgb, "RGB")
    # Monochrome sensors: JPEG with an sRGB profile must be RGB.
    return Image.fromarray(np.ascontiguousarray(rgb.reshape(rgb.shape[:2])), "L").convert("RGB")


# -- metadata ---------------------------------------------------------------------------
# The magic numbers of TIFF-shaped RAWs: 42 (TIFF, DNG, NEF, CR2, ARW, ...), 0x55 (Panasonic
# RW2), "RO"/"SR" (Olympus ORF).
_TIFF_MAGICS = {42, 0x55, 0x4F52, 0x5352}
_ASCII = 2
_MAKE, _MODEL, _ORIENTATION, _DATE_TIME = 0x010F, 0x0110, 0x0112, 0x0132
_EXIF_IFD, _TAKEN, _UNIQUE_MODEL = 0x8769, 0x9003, 0xC614


@dataclass(frozen=True)
class _Metadata:
    make: str | None = None
    model: str | None = None
    taken: str | None = None  # EXIF "YYYY:MM:DD HH:MM:SS"


def _read_metadata(src: Path, taken: str | None) -> _Metadata:
    """Make, Model and DateTimeOriginal, for the renditions' EXIF.

    rawpy exposes the capture time (`taken`, LibRaw's reading, used when the file has no
    TIFF date) but not the camera's make and model; most RAW formats
    (DNG, NEF, CR2, ARW, PEF, ORF, RW2) are TIFF-shaped, so those are read from the first
    IFD and its EXIF IFD directly. Anything else in the RAW's EXIF (GPS above all) is
    deliberately never copied.
    """
    tags: dict[int, str] = {}
    with contextlib.suppress(OSError, ValueError, struct.error), src.open("rb") as fh:
        tags = _tiff_text_tags(fh, wanted=(_MAKE, _MODEL, _UNIQUE_MODEL, _TAKEN, _DATE_TIME))
    return _Metadata(
        make=tags.get(_MAKE),
        # DNGs from cinema cameras may name the camera only in UniqueCameraModel.
        model=tags.get(_MODEL) or tags.get(_UNIQUE_MODEL),
        # The file's own text is exact (LibRaw's goes through the local time zone and back);
        # DateTime, often the time of last edit, only when nothing better is known.
        taken=tags.get(_TAKEN) or taken or tags.get(_DATE_TIME),
    )


def _tiff_text_tags(fh: BinaryIO, wanted: tuple[int, ...]) -> dict[int, str]:
    head = fh.read(8)
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return {}
    order = "<" if head[:2] == b"II" else ">"
    magic, ifd0 = struct.unpack(order + "HI", head[2:8])
    if magic not in _TIFF_MAGICS:
        return {}
    found: dict[int, str] = {}
    exif_ifd = _read_ifd(fh, order, ifd0, wanted, found)
    if exif_ifd:
        _read_ifd(fh, order, exif_ifd, wanted, found)
    return found


def _read_ifd(
    fh: BinaryIO, order: str, offset: int, wanted: tuple[int, ...], found: dict[int, str]
) -> int:
    """Collect the wanted ASCII tags of one IFD into `found`; return its EXIF IFD offset."""
    fh.seek(offset)
    head = fh.read(2)
    if len(head) < 2:
        # Points past the end: a truncated file still gives what the earlier IFDs held.
        return 0
    (count,) = struct.unpack(order + "H", head)
    # A corrupt count must not make us read megabytes of "entries".
    entries = fh.read(12 * min(count, 512))
    exif_ifd = 0
    for i in range(0, len(entries) - 11, 12):
        tag, kind, n, value = struct.unpack(order + "HHI4s", entries[i : i + 12])
        if tag == _EXIF_IFD:
            (exif_ifd,) = struct.unpack(order + "I", value)
        elif tag in wanted and kind == _ASCII and tag not in found and n:
            if n <= 4:
                text = value[:n]
            else:
                here = fh.tell()
                fh.seek(struct.unpack(order + "I", value)[0])
                text = fh.read(min(n, MAX_EXIF_TEXT * 2))
                fh.seek(here)
            cleaned = _clean_text(text)
            if cleaned:
                found[tag] = cleaned
    return exif_ifd


def _clean_text(raw: bytes) -> str | None:
    text = raw.split(b"\0", 1)[0].decode("ascii", "ignore")
    text = "".join(ch for ch in text if ch.isprintable()).strip()
    return text[:MAX_EXIF_TEXT] or None


def _exif_bytes(metadata: _Metadata) -> bytes:
    exif = Image.Exif()
    # The pixels are already upright; a viewer must not rotate them again.
    exif[_ORIENTATION] = 1
    if metadata.make:
        exif[_MAKE] = metadata.make
    if metadata.model:
        exif[_MODEL] = metadata.model
    if metadata.taken:
        exif.get_ifd(_EXIF_IFD)[_TAKEN] = metadata.taken
    return exif.tobytes()


@functools.cache
def _srgb_icc() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


# -- rendering --------------------------------------------------------------------------
def _target_size(width: int, height: int, rendition: Rendition) -> tuple[int, int]:
    long_edge = max(width, height)
    wanted = long_edge if rendition.long_edge == "full" else rendition.long_edge
    if wanted >= long_edge:
        # Never upscale: a rendition larger than the image is the image.
        return width, height
    scale = wanted / long_edge
    if width >= height:
        return wanted, max(1, round(height * scale))
    return max(1, round(width * scale)), wanted


def _resize(source: Image.Image, size: tuple[int, int]) -> Image.Image:
    if source.size == size:
        return source
    # reducing_gap: a fast integer box-reduce first, then Lanczos over the last factor of 3
    # or more; Pillow documents that as indistinguishable from one full Lanczos pass.
    return source.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _render_all(
    image: Image.Image, src: Path, out_dir: Path, recipe: Recipe, metadata: _Metadata
) -> tuple[RenderedFile, ...]:
    name = src.name
    exif = _exif_bytes(metadata)
    icc = _srgb_icc()
    # Largest first, so each smaller rendition is resized from the previous, smaller image.
    order = sorted(
        recipe.renditions,
        key=lambda r: max(_target_size(image.width, image.height, r)),
        reverse=True,
    )
    written: dict[str, RenderedFile] = {}
    source = image
    try:
        for rendition in order:
            dest = out_dir / rendition.name / f"{src.stem}.{rendition.extension}"
            try:
                resized = _resize(source, _target_size(image.width, image.height, rendition))
                size_bytes = _save_atomic(resized, dest, rendition, exif, icc)
            except Exception as exc:
                # Disk full, permissions, out of memory: the file fails, the job goes on.
                raise DevelopError(
                    "write_failed", name, f"cannot write the {rendition.name} rendition ({exc})"
                ) from exc
            written[rendition.name] = RenderedFile(
                rendition=rendition.name,
                path=dest,
                width=resized.width,
                height=resized.height,
                content_type=rendition.content_type,
                size_bytes=size_bytes,
            )
            if source is not image and source is not resized:
                source.close()
            source = resized
    except BaseException:
        for done in written.values():
            done.path.unlink(missing_ok=True)
        raise
    finally:
        if source is not image:
            source.close()
    return tuple(written[r.name] for r in recipe.renditions)


def _save_atomic(
    image: Image.Image, dest: Path, rendition: Rendition, exif: bytes, icc: bytes
) -> int:
    """Write `image` so that `dest` is either absent or complete, never half-written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(
                fh,
                "JPEG",
                quality=rendition.quality,
                optimize=False,
                progressive=True,
                icc_profile=icc,
                exif=exif,
            )
        size = tmp.stat().st_size
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size
