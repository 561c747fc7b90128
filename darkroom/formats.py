"""Which files darkroom takes, by extension: camera RAW formats and ordinary images.

One table for every door a file comes through: the API accepts a job's file only with a
RAW extension, the thumbnailer hands a file with one to LibRaw (it also knows RAW files by
their content), and the `develop` and `thumbnail` commands pick these files out of a
folder.

RAW_EXTENSIONS are the camera RAW formats LibRaw (through rawpy) decodes, whatever the
camera's age or market: the worker and the thumbnailer decode with the same LibRaw, so a
format one of them can read the other can too, and refusing one at the API would only
turn away files that would develop. That includes ARRIRAW (.ari), Casio (.bay), Kodak
DCS (.dcs) and DC25 (.k25) and the Panasonic/Leica .raw. A file whose content is not what
its extension says fails alone when it is decoded (unsupported_format), as a mislabelled
.dng always has. Ordinary images are never a job's file: the worker develops RAW only.

IMAGE_FORMATS are the ordinary image formats the thumbnailer decodes, by Pillow's format
name (HEIF through pillow-heif), with the extensions each goes by. The thumbnailer
trusts content over the extension for these, so the extensions only choose files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

# Camera RAW extensions, with whose cameras write them.
RAW_FORMATS: dict[str, str] = {
    ".3fr": "Hasselblad",
    ".ari": "ARRI (ARRIRAW)",
    ".arw": "Sony",
    ".bay": "Casio",
    ".cr2": "Canon",
    ".cr3": "Canon",
    ".crw": "Canon",
    ".dcr": "Kodak",
    ".dcs": "Kodak (DCS backs)",
    ".dng": "Adobe DNG (Leica, Pentax, Ricoh, phones, converters)",
    ".erf": "Epson",
    ".fff": "Hasselblad (Imacon)",
    ".gpr": "GoPro",
    ".iiq": "Phase One",
    ".k25": "Kodak (DC25)",
    ".kdc": "Kodak",
    ".mef": "Mamiya",
    ".mos": "Leaf",
    ".mrw": "Minolta",
    ".nef": "Nikon",
    ".nrw": "Nikon",
    ".orf": "Olympus, OM System",
    ".pef": "Pentax",
    ".raf": "Fujifilm",
    ".raw": "Panasonic, Leica",
    ".rw2": "Panasonic",
    ".rwl": "Leica",
    ".sr2": "Sony",
    ".srf": "Sony",
    ".srw": "Samsung",
    ".x3f": "Sigma",
}
RAW_EXTENSIONS: frozenset[str] = frozenset(RAW_FORMATS)

IMAGE_FORMATS: dict[str, tuple[str, ...]] = {
    # MPO (multi-picture JPEG) opens through Pillow's JPEG plugin.
    "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif", ".mpo"),
    "PNG": (".png", ".apng"),
    "GIF": (".gif",),
    "WEBP": (".webp",),
    "TIFF": (".tif", ".tiff"),
    "BMP": (".bmp",),
    "DIB": (".dib",),
    "AVIF": (".avif",),
    "HEIF": (".heic", ".heif", ".hif"),
}
# The formats Pillow decodes by itself; HEIF needs the pillow-heif plugin registered.
PILLOW_FORMATS: tuple[str, ...] = tuple(name for name in IMAGE_FORMATS if name != "HEIF")
IMAGE_EXTENSIONS: frozenset[str] = frozenset(e for exts in IMAGE_FORMATS.values() for e in exts)


def extension(name: str) -> str:
    """The lower-case extension of a file name or object key, with its dot ('' if none)."""
    return PurePosixPath(name).suffix.lower()


def is_raw(name: str) -> bool:
    """Whether `name` has a camera RAW extension."""
    return extension(name) in RAW_EXTENSIONS


def is_image(name: str) -> bool:
    """Whether `name` has the extension of anything the thumbnailer takes (RAW included)."""
    suffix = extension(name)
    return suffix in IMAGE_EXTENSIONS or suffix in RAW_EXTENSIONS


def not_raw_reason(name: str) -> str | None:
    """Why `name` is not taken as a camera RAW file, or None when its extension is one."""
    suffix = extension(name)
    if suffix in RAW_EXTENSIONS:
        return None
    accepted = ", ".join(sorted(e[1:] for e in RAW_EXTENSIONS))
    return f"extension {suffix or '(none)'!r} is not a camera RAW format (accepted: {accepted})"


def files_in(paths: Iterable[Path], accept: Callable[[str], bool] = is_image) -> list[Path]:
    """Files as given; a folder stands for the non-hidden files directly in it that
    `accept` (is_raw or is_image) takes, in name order."""
    chosen: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = (p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            chosen.extend(sorted(p for p in found if accept(p.name)))
        else:
            chosen.append(path)
    return chosen
