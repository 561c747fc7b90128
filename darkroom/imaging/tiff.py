"""Just enough TIFF: read typed tags from a RAW's IFDs, write a TIFF with sub-IFDs.

Most RAW formats (DNG, NEF, CR2, ARW, PEF, ORF, RW2, ...) are TIFF-shaped, so the EXIF a
studio cares about (camera, lens, exposure, artist, copyright, GPS) is read from their
first IFD and its EXIF and GPS IFDs directly; rawpy exposes only part of it. The writer
makes the synthetic DNG fixtures (pidng cannot write EXIF or GPS IFDs) and the 16-bit TIFF
renditions (Pillow cannot write 16-bit RGB).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, BinaryIO

# The magic numbers of TIFF-shaped RAWs: 42 (TIFF, DNG, NEF, CR2, ARW, ...), 0x55 (Panasonic
# RW2), "RO"/"SR" (Olympus ORF).
TIFF_MAGICS = frozenset({42, 0x55, 0x4F52, 0x5352})
EXIF_IFD, GPS_IFD = 0x8769, 0x8825

BYTE, ASCII, SHORT, LONG, RATIONAL = 1, 2, 3, 4, 5
SBYTE, UNDEFINED, SSHORT, SLONG, SRATIONAL = 6, 7, 8, 9, 10
_SIZES = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, SBYTE: 1, UNDEFINED: 1}
_SIZES |= {SSHORT: 2, SLONG: 4, SRATIONAL: 8}
_INTS = {BYTE: "B", SHORT: "H", LONG: "I", SBYTE: "b", SSHORT: "h", SLONG: "i"}
# A corrupt count must not make a reader allocate megabytes.
MAX_ENTRIES = 512
MAX_VALUE_BYTES = 4096

Value = str | bytes | tuple[int, ...] | tuple[Fraction, ...]


@dataclass(frozen=True)
class Tag:
    """A tag as read: its TIFF type and its value (text, bytes, ints or fractions)."""

    kind: int
    value: Value


@dataclass
class RawTags:
    """The tags of a file's first IFD and of its EXIF and GPS IFDs."""

    ifd0: dict[int, Tag] = field(default_factory=dict)
    exif: dict[int, Tag] = field(default_factory=dict)
    gps: dict[int, Tag] = field(default_factory=dict)


def read_tags(fh: BinaryIO) -> RawTags:
    """Every small tag of IFD0, the EXIF IFD and the GPS IFD; empty when not a TIFF."""
    tags = RawTags()
    head = fh.read(8)
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return tags
    order = "<" if head[:2] == b"II" else ">"
    magic, ifd0 = struct.unpack(order + "HI", head[2:8])
    if magic not in TIFF_MAGICS:
        return tags
    tags.ifd0 = _read_ifd(fh, order, ifd0)
    for pointer, target in ((EXIF_IFD, "exif"), (GPS_IFD, "gps")):
        entry = tags.ifd0.pop(pointer, None)
        if entry is not None and isinstance(entry.value, tuple) and entry.value:
            offset = int(entry.value[0])
            if offset > 8:
                setattr(tags, target, _read_ifd(fh, order, offset))
    return tags


def _read_ifd(fh: BinaryIO, order: str, offset: int) -> dict[int, Tag]:
    fh.seek(offset)
    head = fh.read(2)
    if len(head) < 2:
        # Points past the end: a truncated file still gives what the earlier IFDs held.
        return {}
    (count,) = struct.unpack(order + "H", head)
    entries = fh.read(12 * min(count, MAX_ENTRIES))
    found: dict[int, Tag] = {}
    for i in range(0, len(entries) - 11, 12):
        tag, kind, n, inline = struct.unpack(order + "HHI4s", entries[i : i + 12])
        size = _SIZES.get(kind)
        if size is None or n == 0 or n * size > MAX_VALUE_BYTES:
            # Image data, maker notes and unknown types: never needed, never read.
            continue
        if n * size <= 4:
            data = inline[: n * size]
        else:
            here = fh.tell()
            fh.seek(struct.unpack(order + "I", inline)[0])
            data = fh.read(n * size)
            fh.seek(here)
            if len(data) < n * size:
                continue
        value = _decode(order, kind, n, data)
        if value is not None:
            found[tag] = Tag(kind, value)
    return found


def _decode(order: str, kind: int, n: int, data: bytes) -> Value | None:
    if kind == ASCII:
        return data.split(b"\0", 1)[0].decode("latin-1")
    if kind == UNDEFINED:
        return bytes(data)
    if kind in (RATIONAL, SRATIONAL):
        code = "I" if kind == RATIONAL else "i"
        pairs = struct.unpack(f"{order}{2 * n}{code}", data)
        if any(den == 0 for den in pairs[1::2]):
            return None
        return tuple(Fraction(num, den) for num, den in zip(pairs[::2], pairs[1::2], strict=True))
    return tuple(struct.unpack(f"{order}{n}{_INTS[kind]}", data))


# -- writing ----------------------------------------------------------------------------
EntryValue = str | bytes | Sequence[int] | Sequence[Fraction] | Sequence[float]


@dataclass(frozen=True)
class Entry:
    """A tag to write. `value`: text (ASCII), bytes (UNDEFINED/BYTE), or numbers."""

    tag: int
    kind: int
    value: EntryValue


@dataclass
class Ifd:
    entries: list[Entry] = field(default_factory=list)
    # Sub-IFDs written after this one, each pointed to by a LONG entry of that tag.
    children: dict[int, Ifd] = field(default_factory=dict)
    # Image data (strips); its offset goes in StripOffsets (273), set by the writer.
    strip: bytes | None = None

    def add(self, tag: int, kind: int, value: EntryValue) -> Ifd:
        self.entries.append(Entry(tag, kind, value))
        return self


STRIP_OFFSETS, STRIP_BYTE_COUNTS = 273, 279


def _rational(value: float | Fraction, signed: bool) -> tuple[int, int]:
    frac = Fraction(value).limit_denominator(1_000_000)
    num, den = frac.numerator, frac.denominator
    limit = 2**31 - 1 if signed else 2**32 - 1
    while abs(num) > limit or den > 2**32 - 1:
        num, den = num // 2, max(1, den // 2)
    return num, den


def _encode_value(order: str, entry: Entry) -> tuple[int, bytes]:
    kind, value = entry.kind, entry.value
    if kind == ASCII:
        assert isinstance(value, str)
        data = value.encode("latin-1", "replace") + b"\0"
        return len(data), data
    if kind in (UNDEFINED, BYTE) and isinstance(value, bytes | bytearray):
        return len(value), bytes(value)
    assert not isinstance(value, str | bytes)
    numbers: list[Any] = list(value)
    if kind in (RATIONAL, SRATIONAL):
        flat: list[int] = []
        for v in numbers:
            flat.extend(_rational(v, kind == SRATIONAL))
        code = "I" if kind == RATIONAL else "i"
        return len(numbers), struct.pack(f"{order}{len(flat)}{code}", *flat)
    return len(numbers), struct.pack(f"{order}{len(numbers)}{_INTS[kind]}", *map(int, numbers))


def write_tiff(ifd: Ifd, *, big_endian: bool = False) -> bytes:
    """A complete TIFF file of one main IFD (with its sub-IFDs and its strip)."""
    order = ">" if big_endian else "<"
    out = bytearray((b"MM" if big_endian else b"II") + struct.pack(order + "HI", 42, 8))
    _place(out, order, ifd)
    return bytes(out)


def _place(out: bytearray, order: str, ifd: Ifd) -> int:
    """Append `ifd` (then its values, children and strip) to out; return its offset."""
    entries = sorted(
        [e for e in ifd.entries if e.tag not in ifd.children]
        + [Entry(tag, LONG, [0]) for tag in ifd.children],
        key=lambda e: e.tag,
    )
    if ifd.strip is not None:
        entries = [e for e in entries if e.tag not in (STRIP_OFFSETS, STRIP_BYTE_COUNTS)]
        entries += [Entry(STRIP_OFFSETS, LONG, [0]), Entry(STRIP_BYTE_COUNTS, LONG, [0])]
        entries.sort(key=lambda e: e.tag)
    if len(out) % 2:
        out.append(0)
    start = len(out)
    table_size = 2 + 12 * len(entries) + 4
    out.extend(bytes(table_size))
    struct.pack_into(order + "H", out, start, len(entries))
    patches: dict[int, int] = {}  # tag -> position of its 4-byte value field
    for i, entry in enumerate(entries):
        count, data = _encode_value(order, entry)
        pos = start + 2 + 12 * i
        struct.pack_into(order + "HHI", out, pos, entry.tag, entry.kind, count)
        if len(data) <= 4:
            out[pos + 8 : pos + 8 + len(data)] = data
        else:
            if len(out) % 2:
                out.append(0)
            struct.pack_into(order + "I", out, pos + 8, len(out))
            out.extend(data)
        patches[entry.tag] = pos + 8
    for tag, child in ifd.children.items():
        struct.pack_into(order + "I", out, patches[tag], _place(out, order, child))
    if ifd.strip is not None:
        if len(out) % 2:
            out.append(0)
        struct.pack_into(order + "I", out, patches[STRIP_OFFSETS], len(out))
        struct.pack_into(order + "I", out, patches[STRIP_BYTE_COUNTS], len(ifd.strip))
        out.extend(ifd.strip)
    return start


def entries_from(tags: Mapping[int, Tag], only: Iterable[int] | None = None) -> list[Entry]:
    """Read tags back into entries to write, optionally only some of them."""
    wanted = set(tags) if only is None else set(only) & set(tags)
    return [Entry(t, tags[t].kind, tags[t].value) for t in sorted(wanted)]
