"""What of a RAW's EXIF reaches the renditions, and how it is written into them.

Kept: capture date, camera, lens, exposure settings, artist and copyright. GPS only when
the recipe asks. Never: serial numbers, maker notes, thumbnails, or anything not listed
here. The pixels are developed upright, so Orientation is always 1.

TIFF-shaped RAWs are read directly (IFD0 and its EXIF and GPS IFDs). What those lack is
filled from LibRaw's reading (through rawpy) for the exposure settings, which it decodes
from maker notes for every format it reads, and from exiv2's reading for the camera's and
lens' names, artist, copyright and date, which rawpy does not pass on (CRW, CR3, RAF and
the other formats that are not TIFF-shaped).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from darkroom.imaging import tiff
from darkroom.imaging.tiff import ASCII, LONG, RATIONAL, SHORT, SRATIONAL, UNDEFINED, Entry, Tag

MAKE, MODEL, ORIENTATION, DATE_TIME, ARTIST, COPYRIGHT = (
    0x010F,
    0x0110,
    0x0112,
    0x0132,
    0x013B,
    0x8298,
)
UNIQUE_CAMERA_MODEL, DNG_LENS_INFO = 0xC614, 0xC630
EXPOSURE_TIME, F_NUMBER, ISO, EXIF_VERSION = 0x829A, 0x829D, 0x8827, 0x9000
DATE_TIME_ORIGINAL, DATE_TIME_DIGITIZED = 0x9003, 0x9004
FOCAL_LENGTH, LENS_SPECIFICATION, LENS_MAKE, LENS_MODEL = 0x920A, 0xA432, 0xA433, 0xA434
MAX_TEXT = 256

_TEXT = frozenset({ASCII})
_NUMBER = frozenset({SHORT, LONG})
_RATIO = frozenset({RATIONAL})
_SRATIO = frozenset({SRATIONAL})
# Tag -> the TIFF types we accept for it; anything else a camera wrote there is dropped.
IFD0_KEPT: dict[int, frozenset[int]] = {MAKE: _TEXT, MODEL: _TEXT, ARTIST: _TEXT, COPYRIGHT: _TEXT}
EXIF_KEPT: dict[int, frozenset[int]] = {
    EXPOSURE_TIME: _RATIO,
    F_NUMBER: _RATIO,
    0x8822: _NUMBER,  # ExposureProgram
    ISO: _NUMBER,
    0x8830: _NUMBER,  # SensitivityType
    0x8832: _NUMBER,  # RecommendedExposureIndex
    DATE_TIME_ORIGINAL: _TEXT,
    DATE_TIME_DIGITIZED: _TEXT,
    0x9010: _TEXT,  # OffsetTime
    0x9011: _TEXT,  # OffsetTimeOriginal
    0x9012: _TEXT,  # OffsetTimeDigitized
    0x9201: _SRATIO,  # ShutterSpeedValue
    0x9202: _RATIO,  # ApertureValue
    0x9204: _SRATIO,  # ExposureBiasValue
    0x9205: _RATIO,  # MaxApertureValue
    0x9207: _NUMBER,  # MeteringMode
    0x9208: _NUMBER,  # LightSource
    0x9209: _NUMBER,  # Flash
    FOCAL_LENGTH: _RATIO,
    0x9291: _TEXT,  # SubSecTimeOriginal
    0xA402: _NUMBER,  # ExposureMode
    0xA403: _NUMBER,  # WhiteBalance
    0xA405: _NUMBER,  # FocalLengthIn35mmFilm
    0xA406: _NUMBER,  # SceneCaptureType
    0xA430: _TEXT,  # CameraOwnerName
    LENS_SPECIFICATION: _RATIO,
    LENS_MAKE: _TEXT,
    LENS_MODEL: _TEXT,
}
GPS_TAGS = range(0x00, 0x20)


@dataclass(frozen=True)
class Metadata:
    """The EXIF the renditions carry, as entries ready to write."""

    ifd0: tuple[Entry, ...] = ()
    exif: tuple[Entry, ...] = ()
    gps: tuple[Entry, ...] = ()

    def value(self, tag: int) -> Any:
        for entry in (*self.ifd0, *self.exif, *self.gps):
            if entry.tag == tag:
                return entry.value
        return None


def _clean(tag: Tag) -> Tag | None:
    if tag.kind != ASCII:
        return tag
    assert isinstance(tag.value, str)
    text = "".join(ch for ch in tag.value if ch.isprintable()).strip()[:MAX_TEXT]
    return Tag(ASCII, text) if text else None


def _pick(sources: list[Mapping[int, Tag]], kept: Mapping[int, frozenset[int]]) -> dict[int, Tag]:
    found: dict[int, Tag] = {}
    for source in sources:
        for number, accepted in kept.items():
            tag = source.get(number)
            if number in found or tag is None or tag.kind not in accepted:
                continue
            cleaned = _clean(tag)
            if cleaned is not None:
                found[number] = cleaned
    return found


def read_metadata(src: Path, libraw: Mapping[str, Any], *, keep_gps: bool) -> Metadata:
    """The metadata of `src` to carry into its renditions.

    `libraw` is what rawpy read (keys: taken, iso, shutter, aperture, focal_length, artist,
    lens_make, lens_model); it fills what the file's own TIFF tags do not have.
    """
    raw = tiff.RawTags()
    with contextlib.suppress(OSError, ValueError, struct.error), src.open("rb") as fh:
        raw = tiff.read_tags(fh)
    ifd0 = _pick([raw.ifd0], IFD0_KEPT)
    # TIFF/EP and DNG allow EXIF tags in IFD0 itself; the EXIF IFD wins when both have one.
    exif = _pick([raw.exif, raw.ifd0], EXIF_KEPT)
    if MODEL not in ifd0 and UNIQUE_CAMERA_MODEL in raw.ifd0:
        # DNGs from cinema cameras may name the camera only in UniqueCameraModel.
        model = _clean(raw.ifd0[UNIQUE_CAMERA_MODEL])
        if model is not None and model.kind == ASCII:
            ifd0[MODEL] = model
    lens_info = raw.ifd0.get(DNG_LENS_INFO)
    if LENS_SPECIFICATION not in exif and lens_info and lens_info.kind == RATIONAL:
        exif[LENS_SPECIFICATION] = lens_info
    if DATE_TIME_ORIGINAL not in exif:
        # DateTime, often the time of last edit, only when nothing better is known.
        taken = libraw.get("taken") or _text(raw.ifd0.get(DATE_TIME))
        if taken:
            exif[DATE_TIME_ORIGINAL] = Tag(ASCII, taken)
    _fill_from_libraw(ifd0, exif, libraw)
    # A second reader only where it can add: a file our TIFF reader could not read, or
    # one that names no camera (a TIFF-shaped file without a lens tag has none for
    # exiv2 either, and every file would pay a second parse for nothing).
    if not raw.ifd0 or any(tag not in ifd0 for tag in (MAKE, MODEL)):
        _fill_from_exiv2(ifd0, exif, src)
    gps = {}
    if keep_gps:
        gps = {n: t for n, t in raw.gps.items() if n in GPS_TAGS and _clean(t) is not None}
    return Metadata(
        ifd0=tuple(tiff.entries_from(ifd0)),
        exif=tuple(tiff.entries_from(exif)),
        gps=tuple(tiff.entries_from(gps)),
    )


def _text(tag: Tag | None) -> str | None:
    if tag is None or tag.kind != ASCII or not isinstance(tag.value, str):
        return None
    return tag.value.strip() or None


# The marked values of a camera's dials (1/3 stops). A value read as an APEX number is
# off by up to a percent; within NOMINAL_TOLERANCE of a mark it is that mark.
_SHUTTER_MARKS = tuple(
    [Fraction(1, d) for d in (8000, 6400, 5000, 4000, 3200, 2500, 2000, 1600, 1250, 1000)]
    + [Fraction(1, d) for d in (800, 640, 500, 400, 320, 250, 200, 160, 125, 100, 80, 60)]
    + [Fraction(1, d) for d in (50, 40, 30, 25, 20, 15, 13, 10, 8, 6, 5, 4, 3)]
    + [Fraction(n, 10) for n in (4, 5, 6, 8, 10, 13, 16, 20, 25, 32, 40, 50, 60, 80, 100)]
    + [Fraction(n) for n in (13, 15, 20, 25, 30)]
)
_APERTURE_MARKS = tuple(
    Fraction(n, 10)
    for n in (10, 11, 12, 14, 16, 18, 20, 22, 25, 28, 32, 35, 40, 45, 50, 56, 63, 71, 80)
) + tuple(Fraction(n) for n in (9, 10, 11, 13, 14, 16, 18, 20, 22, 25, 29, 32))
NOMINAL_TOLERANCE = 0.03


def _nominal(value: float, marks: tuple[Fraction, ...]) -> Fraction | None:
    closest = min(marks, key=lambda mark: abs(float(mark) - value))
    return closest if abs(float(closest) / value - 1) <= NOMINAL_TOLERANCE else None


def exposure_fraction(seconds: float) -> Fraction:
    """An exposure time as a camera states it: 1/200, 5 (not 4.967...)."""
    if (mark := _nominal(seconds, _SHUTTER_MARKS)) is not None:
        return mark
    if seconds < 1 and abs(1 / seconds - round(1 / seconds)) < 0.05:
        return Fraction(1, round(1 / seconds))
    return Fraction(seconds).limit_denominator(10_000)


def aperture_fraction(f_number: float) -> Fraction:
    """An f-number as the lens is marked: 5.6 (not 5.656...)."""
    mark = _nominal(f_number, _APERTURE_MARKS)
    return mark if mark is not None else Fraction(f_number).limit_denominator(10)


def focal_fraction(millimetres: float) -> Fraction:
    return Fraction(millimetres).limit_denominator(10)


def _fill_from_libraw(
    ifd0: dict[int, Tag], exif: dict[int, Tag], libraw: Mapping[str, Any]
) -> None:
    def number(key: str) -> float:
        try:
            value = float(libraw.get(key) or 0.0)
        except (TypeError, ValueError):
            return 0.0
        return value if value > 0 and value < 1e6 else 0.0

    if ARTIST not in ifd0 and (artist := _clean(Tag(ASCII, str(libraw.get("artist") or "")))):
        ifd0[ARTIST] = artist
    if ISO not in exif and (iso := number("iso")):
        exif[ISO] = Tag(SHORT, (min(round(iso), 65535),))
    for key, tag_number, to_fraction in (
        ("shutter", EXPOSURE_TIME, exposure_fraction),
        ("aperture", F_NUMBER, aperture_fraction),
        ("focal_length", FOCAL_LENGTH, focal_fraction),
    ):
        if tag_number not in exif and (value := number(key)):
            exif[tag_number] = Tag(RATIONAL, (to_fraction(value),))
    for key, tag_number in (("lens_make", LENS_MAKE), ("lens_model", LENS_MODEL)):
        if tag_number not in exif and (text := _clean(Tag(ASCII, str(libraw.get(key) or "")))):
            exif[tag_number] = text


# exiv2's keys for what rawpy does not pass on -> (IFD, tag).
_EXIV2_TEXT: tuple[tuple[str, bool, int], ...] = (
    ("Exif.Image.Make", True, MAKE),
    ("Exif.PanasonicRaw.Make", True, MAKE),
    ("Exif.Image.Model", True, MODEL),
    ("Exif.PanasonicRaw.Model", True, MODEL),
    ("Exif.Image.Artist", True, ARTIST),
    ("Exif.Image.Copyright", True, COPYRIGHT),
    ("Exif.Photo.LensMake", False, LENS_MAKE),
    ("Exif.Photo.LensModel", False, LENS_MODEL),
    ("Exif.Photo.DateTimeOriginal", False, DATE_TIME_ORIGINAL),
)


def _fill_from_exiv2(ifd0: dict[int, Tag], exif: dict[int, Tag], src: Path) -> None:
    """Names and dates from exiv2, which reads the formats our TIFF reader cannot."""
    try:
        import pyexiv2  # a native library: loaded only where RAWs are developed

        pyexiv2.set_log_level(4)  # its warnings about maker notes are not ours to print
        with pyexiv2.Image(str(src)) as image:
            found = image.read_exif()
    except Exception:
        return  # a file exiv2 cannot read keeps what the other readers found
    for key, in_ifd0, tag_number in _EXIV2_TEXT:
        target = ifd0 if in_ifd0 else exif
        value = found.get(key)
        if tag_number in target or not isinstance(value, str):
            continue
        if (text := _clean(Tag(ASCII, value))) is not None:
            target[tag_number] = text


def exif_ifd(metadata: Metadata, *, main: tiff.Ifd | None = None) -> tiff.Ifd:
    """`metadata` as a TIFF IFD (the main IFD given, or a fresh one) with its sub-IFDs."""
    ifd = main if main is not None else tiff.Ifd()
    ifd.entries.extend(metadata.ifd0)
    ifd.add(ORIENTATION, SHORT, [1])
    sub = tiff.Ifd(entries=[Entry(EXIF_VERSION, UNDEFINED, b"0232"), *metadata.exif])
    ifd.children[tiff.EXIF_IFD] = sub
    if metadata.gps:
        ifd.children[tiff.GPS_IFD] = tiff.Ifd(entries=list(metadata.gps))
    return ifd


def exif_bytes(metadata: Metadata) -> bytes:
    """An APP1/EXIF payload for JPEG and WebP (Pillow strips the header for WebP)."""
    return b"Exif\0\0" + tiff.write_tiff(exif_ifd(metadata))
