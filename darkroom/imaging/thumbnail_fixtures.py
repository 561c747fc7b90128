"""Images made in code for the thumbnail tests and the demo.

Pillow can write most of what the thumbnailer must read, but not everything: it cannot
make a CMYK or non-sRGB ICC profile, a 16-bit RGB PNG, or a PNG that lies about its size.
Those are written byte by byte here, following the ICC v2 and PNG specifications. A camera
RAW with an embedded JPEG preview is the synthetic DNG of darkroom.imaging.fixtures with a
preview added in a SubIFD, as DNG 1.4 lays previews out.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

# D50, the ICC profile connection space's white (s15Fixed16 in the profile).
_D50 = (0.9642, 1.0, 0.8249)
# sRGB's colorants adapted to D50, as in the sRGB IEC61966-2.1 profile.
_SRGB_RED = (0.4361, 0.2225, 0.0139)
_SRGB_GREEN = (0.3851, 0.7169, 0.0971)
_SRGB_BLUE = (0.1431, 0.0606, 0.7141)

# An upright reference: each quadrant its own colour, so any rotation or flip shows.
QUADRANT_COLOURS = {
    "top_left": (220, 30, 30),
    "top_right": (30, 200, 30),
    "bottom_left": (30, 30, 220),
    "bottom_right": (240, 240, 240),
}
# What to store so that applying EXIF orientation N gives the upright image back.
_STORE_FOR_ORIENTATION: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


# -- ICC profiles ----------------------------------------------------------------------
def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: Sequence[float]) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return (
        b"desc\0\0\0\0"
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)  # no Unicode description
        + struct.pack(">HB", 0, 0)  # no ScriptCode description
        + bytes(67)
    )


def _text_tag(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


def _gamma_tag(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))


def _profile(
    device_class: bytes, colour_space: bytes, pcs: bytes, tags: dict[bytes, bytes]
) -> bytes:
    table = struct.pack(">I", len(tags))
    body = b""
    offset = 128 + 4 + 12 * len(tags)
    for signature, data in tags.items():
        padded = data + bytes(-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += padded
    size = 128 + len(table) + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"  # preferred CMM
        + bytes.fromhex("02100000")  # version 2.1
        + device_class
        + colour_space
        + pcs
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(4 + 4 + 4 + 4 + 8 + 4)  # platform, flags, maker, model, attributes, intent
        + b"".join(_s15(v) for v in _D50)
        + bytes(4 + 16 + 28)  # creator, profile ID, reserved
    )
    assert len(header) == 128
    return header + table + body


def rgb_profile(
    description: str,
    red: Sequence[float] = _SRGB_RED,
    green: Sequence[float] = _SRGB_GREEN,
    blue: Sequence[float] = _SRGB_BLUE,
    gamma: float = 2.2,
) -> bytes:
    """A matrix/TRC RGB display profile with the given colorants (XYZ, D50)."""
    curve = _gamma_tag(gamma)
    return _profile(
        b"mntr",
        b"RGB ",
        b"XYZ ",
        {
            b"desc": _desc_tag(description),
            b"cprt": _text_tag("No copyright, made for tests"),
            b"wtpt": _xyz_tag(_D50),
            b"rXYZ": _xyz_tag(red),
            b"gXYZ": _xyz_tag(green),
            b"bXYZ": _xyz_tag(blue),
            b"rTRC": curve,
            b"gTRC": curve,
            b"bTRC": curve,
        },
    )


def swapped_rgb_profile() -> bytes:
    """An RGB profile whose red is sRGB's green and whose green is sRGB's red.

    A pure red pixel tagged with it is green on screen: nothing but a real ICC conversion
    can turn (255, 0, 0) into (0, 255, 0).
    """
    return rgb_profile("darkroom test: red and green swapped", red=_SRGB_GREEN, green=_SRGB_RED)


def cmyk_profile(
    paper_lab: tuple[float, float, float] = (95.0, 0.0, 2.0),
    description: str = "darkroom test CMYK, dull inks",
) -> bytes:
    """A CMYK output profile (lut16 A2B0, CMYK -> Lab) with dull, press-like inks.

    Full cyan prints a muted teal and full black a dark grey near L*=12, far from the
    (0, 255, 255) and (0, 0, 0) of a naive conversion, so a thumbnail shows whether the
    profile was used. (Paper white stays white: relative colorimetric maps it to white.)
    """

    def lab(c: int, m: int, y: int, k: int) -> tuple[float, float, float]:
        lightness, a, b = paper_lab
        lightness -= 30 * c + 35 * m + 10 * y
        a += -35 * c + 60 * m - 5 * y
        b += -45 * c - 10 * m + 60 * y
        lightness = lightness * (1 - k) + 12 * k
        a *= 1 - 0.8 * k
        b *= 1 - 0.8 * k
        return max(0.0, lightness), a, b

    def encode(value: tuple[float, float, float]) -> bytes:
        lightness, a, b = value
        # lut16 (ICC v2) Lab: L* 0-100 -> 0-0xFF00, a*/b* -128-127.996 -> 0-0xFFFF.
        return struct.pack(
            ">3H",
            min(0xFFFF, round(lightness / 100 * 0xFF00)),
            min(0xFFFF, max(0, round((a + 128) * 256))),
            min(0xFFFF, max(0, round((b + 128) * 256))),
        )

    grid = 2
    identity = b"".join(_s15(1.0 if row == col else 0.0) for row in range(3) for col in range(3))
    linear = struct.pack(">2H", 0, 0xFFFF)
    clut = b"".join(
        encode(lab(c, m, y, k)) for c in (0, 1) for m in (0, 1) for y in (0, 1) for k in (0, 1)
    )
    lut = (
        b"mft2\0\0\0\0"
        + struct.pack(">BBBB", 4, 3, grid, 0)
        + identity
        + struct.pack(">HH", 2, 2)
        + linear * 4
        + clut
        + linear * 3
    )
    return _profile(
        b"prtr",
        b"CMYK",
        b"Lab ",
        {
            b"desc": _desc_tag(description),
            b"cprt": _text_tag("No copyright, made for tests"),
            b"wtpt": _xyz_tag(_D50),
            b"A2B0": lut,
        },
    )


# -- PNG written by hand ---------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(
    width: int,
    height: int,
    *,
    bit_depth: int,
    colour_type: int,
    pixel: Callable[[int, int], Sequence[int]],
) -> bytes:
    """A PNG of any bit depth and colour type (e.g. 16-bit RGB, which Pillow cannot write)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    fmt = ">" + ("H" if bit_depth == 16 else "B") * channels
    rows = b"".join(
        b"\0" + b"".join(struct.pack(fmt, *pixel(x, y)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header declaring `width` x `height` with a few bytes of data behind it.

    Zlib shrinks a blank row a thousandfold, so a real bomb of this size is a few MB;
    the header alone is what a decoder must refuse.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(width + 1)))
        + _chunk(b"IEND", b"")
    )


# -- camera RAW with an embedded preview ---------------------------------------------------
_NEW_SUBFILE_TYPE, _SUB_IFDS = 254, 330


def dng_with_preview(path: Path, preview: Image.Image, **dng: object) -> Path:
    """A synthetic DNG (fixtures.write_dng(path, **dng)) carrying `preview` as a JPEG.

    The sensor data is write_dng's seeded scene; the preview is whatever is given, so a
    test can tell which of the two a thumbnail was made from. Laid out as DNG 1.4 puts
    previews: IFD0 is the raw image (NewSubFileType 0) and a SubIFD (tag 330) holds the
    preview (NewSubFileType 1, JPEG-compressed YCbCr), which LibRaw reports as the thumb.
    """
    from darkroom.imaging import fixtures, tiff

    fixtures.write_dng(path, **dng)  # type: ignore[arg-type]
    data = path.read_bytes()
    with path.open("rb") as fh:
        tags = tiff.read_tags(fh)
    offsets = tags.ifd0[tiff.STRIP_OFFSETS].value
    counts = tags.ifd0[tiff.STRIP_BYTE_COUNTS].value
    assert isinstance(offsets, tuple) and isinstance(counts, tuple)  # write_dng: one strip
    start, end = int(offsets[0]), int(offsets[0]) + int(counts[0])
    kept = set(tags.ifd0) - {tiff.STRIP_OFFSETS, tiff.STRIP_BYTE_COUNTS}
    main = tiff.Ifd(tiff.entries_from(tags.ifd0, kept), strip=data[start:end])
    for pointer, child in ((tiff.EXIF_IFD, tags.exif), (tiff.GPS_IFD, tags.gps)):
        if child:
            main.children[pointer] = tiff.Ifd(tiff.entries_from(child))
    rgb = preview.convert("RGB")
    jpeg = tiff.Ifd(strip=encoded(rgb, "JPEG", quality=90))
    jpeg.add(_NEW_SUBFILE_TYPE, tiff.LONG, [1])  # a reduced-resolution copy
    jpeg.add(256, tiff.LONG, [rgb.width]).add(257, tiff.LONG, [rgb.height])
    jpeg.add(258, tiff.SHORT, [8, 8, 8]).add(259, tiff.SHORT, [7])  # JPEG
    jpeg.add(262, tiff.SHORT, [6]).add(277, tiff.SHORT, [3])  # YCbCr, 3 samples
    jpeg.add(278, tiff.LONG, [rgb.height])
    main.children[_SUB_IFDS] = jpeg
    path.write_bytes(tiff.write_tiff(main))
    return path


# -- Pillow-made images ----------------------------------------------------------------
def quadrants(width: int = 400, height: int = 200) -> Image.Image:
    """The upright reference image (see QUADRANT_COLOURS)."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    half_w, half_h = width // 2, height // 2
    draw.rectangle((0, 0, half_w - 1, half_h - 1), fill=QUADRANT_COLOURS["top_left"])
    draw.rectangle((half_w, 0, width - 1, half_h - 1), fill=QUADRANT_COLOURS["top_right"])
    draw.rectangle((0, half_h, half_w - 1, height - 1), fill=QUADRANT_COLOURS["bottom_left"])
    draw.rectangle((half_w, half_h, width - 1, height - 1), fill=QUADRANT_COLOURS["bottom_right"])
    return image


def oriented_jpeg(upright: Image.Image, orientation: int, **save: object) -> bytes:
    """A JPEG that shows `upright` once its EXIF orientation is applied."""
    transpose = _STORE_FOR_ORIENTATION[orientation]
    stored = upright if transpose is None else upright.transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=exif.tobytes(), **save)
    return buffer.getvalue()


def encoded(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def animated(fmt: str, colours: Sequence[tuple[int, int, int]], size: int = 64) -> bytes:
    """An animation whose frames are solid `colours`, in order (GIF or WEBP)."""
    frames = [Image.new("RGB", (size, size), colour) for colour in colours]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True
    )
    return buffer.getvalue()


# -- the demo --------------------------------------------------------------------------
def _label(image: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(image)
    draw.text((12, 10), text, fill=(255, 255, 255))


def demo_images(dest_dir: Path) -> list[Path]:
    """A few images that each need something done right, with names that need URL-decoding.

    - a portrait JPEG stored sideways with EXIF orientation 6 (must come out upright),
    - a PNG logo with transparency (must come out as WebP with its alpha),
    - a CMYK JPEG with an ICC profile (its inks as the profile prints them: muted, not the
      saturated primaries of a naive conversion),
    - an animated GIF (first frame: red).
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    portrait = Image.new("RGB", (600, 900), (40, 90, 160))
    draw = ImageDraw.Draw(portrait)
    draw.polygon([(300, 80), (140, 320), (460, 320)], fill=(250, 200, 40))
    draw.rectangle((250, 320, 350, 820), fill=(250, 200, 40))
    _label(portrait, "this way up (EXIF orientation 6)")
    path = dest_dir / "portrait rotated.jpg"
    path.write_bytes(oriented_jpeg(portrait, 6))
    paths.append(path)

    logo = Image.new("RGBA", (800, 800), (0, 0, 0, 0))
    draw = ImageDraw.Draw(logo)
    draw.ellipse((100, 100, 700, 700), fill=(200, 30, 60, 255))
    draw.ellipse((250, 250, 550, 550), fill=(255, 255, 255, 128))
    path = dest_dir / "logo+alpha.png"
    path.write_bytes(encoded(logo, "PNG"))
    paths.append(path)

    cmyk = Image.new("CMYK", (1200, 800), (0, 0, 0, 0))
    draw = ImageDraw.Draw(cmyk)
    for i, ink in enumerate(((255, 0, 0, 0), (0, 255, 0, 0), (0, 0, 255, 0), (0, 0, 0, 255))):
        draw.rectangle((100 + i * 260, 200, 300 + i * 260, 600), fill=ink)
    path = dest_dir / "affiche été cmyk.jpg"
    path.write_bytes(encoded(cmyk, "JPEG", quality=92, icc_profile=cmyk_profile()))
    paths.append(path)

    path = dest_dir / "animated.gif"
    path.write_bytes(animated("GIF", [(220, 30, 30), (30, 200, 30), (30, 30, 220)], size=320))
    paths.append(path)
    return paths
