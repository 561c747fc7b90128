"""Watermarks: the studio's PNG laid over a rendition, after its resize and sharpening.

The mark is read once per process (it is the same for every file of a job), checked as
strictly as any upload: a PNG, within a size limit, decodable, in any of PNG's modes (a
palette with transparency, grey with alpha, 16-bit, an ICC profile), and brought to RGBA
in the rendition's colour space. It is then resized for each rendition with its alpha
premultiplied (Pillow's RGBA resize does so: no dark fringe around soft edges) and blended
with the opacity applied to its own alpha, as a "normal" layer in Lightroom or Photoshop.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

from PIL import Image, ImageCms, UnidentifiedImageError

from darkroom.imaging import icc
from darkroom.imaging.thumbnailer.colour import to_srgb, working_mode
from darkroom.imaging.thumbnailer.load import pillow_pixel_limit
from darkroom.keys import MAX_ASSET_BYTES, MAX_ASSET_EDGE
from darkroom.recipes import Watermark


class WatermarkError(ValueError):
    """An asset that cannot be a watermark; the message says why."""


def check_asset(data: bytes) -> Image.Image:
    """The asset's pixels as 8-bit RGBA sRGB, or WatermarkError naming what is wrong."""
    if not data:
        raise WatermarkError("the file is empty")
    if len(data) > MAX_ASSET_BYTES:
        raise WatermarkError(
            f"the file is {len(data)} bytes; a watermark may be at most {MAX_ASSET_BYTES}"
        )
    with pillow_pixel_limit(MAX_ASSET_EDGE * MAX_ASSET_EDGE):
        try:
            try:
                image = Image.open(io.BytesIO(data))
            except UnidentifiedImageError:
                raise WatermarkError("a watermark must be a PNG; this is not an image") from None
            kind = image.format
            if kind != "PNG":
                found = f"a {kind} image" if kind else "not an image"
                raise WatermarkError(f"a watermark must be a PNG; this is {found}")
            if max(image.size) > MAX_ASSET_EDGE:
                raise WatermarkError(
                    f"the PNG is {image.width}x{image.height}; at most {MAX_ASSET_EDGE} px a side"
                )
            image.load()
        except WatermarkError:
            raise
        except (Image.DecompressionBombError, MemoryError) as exc:
            raise WatermarkError(f"the PNG declares too many pixels ({exc})") from exc
        except Exception as exc:
            # Truncated, a bad CRC, not an image at all: Pillow says which.
            raise WatermarkError(f"the PNG cannot be read ({exc})") from exc
    profile = image.info.get("icc_profile")
    notes: list[str] = []
    rgba = to_srgb(working_mode(image), profile, notes)
    return rgba if rgba.mode == "RGBA" else rgba.convert("RGBA")


@functools.lru_cache(maxsize=4)
def _mark(path: Path, stamp: tuple[int, int], colour_space: str) -> Image.Image:
    """The asset in `colour_space`, read once per process (`stamp`: size and mtime, so a
    replaced file is read again)."""
    mark = check_asset(path.read_bytes())
    if colour_space == icc.SRGB.key:
        return mark
    # The renditions are in a wider space: the mark's colours keep their look there.
    alpha = mark.getchannel("A")
    target = ImageCms.ImageCmsProfile(io.BytesIO(icc.profile(colour_space)))
    converted = ImageCms.profileToProfile(
        mark.convert("RGB"), ImageCms.createProfile("sRGB"), target, outputMode="RGB"
    )
    assert converted is not None
    converted.putalpha(alpha)
    return converted


def load_mark(path: Path, colour_space: str = "srgb") -> Image.Image:
    stat = path.stat()
    return _mark(path, (stat.st_size, stat.st_mtime_ns), colour_space)


def placement(
    size: tuple[int, int], mark: tuple[int, int], spec: Watermark
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where the mark goes on an image of `size`: its (width, height) and top-left corner.

    `spec.size` of the image's width, kept within the height: the margins apply on every
    side, so a tall mark on a wide frame is scaled down rather than cropped."""
    width, height = size
    margin = round(spec.margin * min(width, height))
    room_w, room_h = max(1, width - 2 * margin), max(1, height - 2 * margin)
    scale = min(spec.size * width / mark[0], room_w / mark[0], room_h / mark[1])
    w, h = max(1, round(mark[0] * scale)), max(1, round(mark[1] * scale))
    vertical, _, horizontal = spec.position.rpartition("-")
    if spec.position in ("left", "right"):
        vertical, horizontal = "", spec.position
    elif spec.position in ("top", "bottom"):
        vertical, horizontal = spec.position, ""
    x = {"left": margin, "right": width - margin - w}.get(horizontal, (width - w) // 2)
    y = {"top": margin, "bottom": height - margin - h}.get(vertical, (height - h) // 2)
    return (w, h), (x, y)


def apply(image: Image.Image, mark: Image.Image, spec: Watermark) -> Image.Image:
    """`image` (8-bit RGB) with the mark blended in; the image is not changed in place."""
    (w, h), corner = placement(image.size, mark.size, spec)
    scaled = mark.resize((w, h), Image.Resampling.LANCZOS)
    alpha = scaled.getchannel("A").point(lambda a: round(a * spec.opacity))
    out = image.copy()
    out.paste(scaled.convert("RGB"), corner, alpha)
    return out
