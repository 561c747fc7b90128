"""Colour: any mode and embedded profile to 8-bit sRGB, and the profile thumbnails carry."""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageCms

# LittleCMS optimises a transform by precomputing a device link over a grid: tens of ms
# for a LUT-based (CMYK, some RGB) profile, then a fraction of a microsecond per pixel.
# Unoptimised it starts at once but costs several times more per pixel; below this many
# pixels that is the faster way (measured crossover ~110-150k pixels).
SMALL_TRANSFORM_PIXELS = 120_000

_PROFILE_SPACE = {"RGB": "RGB ", "RGBA": "RGB ", "CMYK": "CMYK", "L": "GRAY", "LA": "GRAY"}
# Profiles that are the standard sRGB (most camera JPEGs carry one): converting through
# them changes nothing, so it is skipped. Matched by name, and only these names: others
# called "sRGB-something" exist with a linear curve.
_SRGB_NAMES = ("sRGB IEC61966-2", "sRGB built-in", "sRGB2014", "sRGB v4 ICC")


def working_mode(image: Image.Image) -> Image.Image:
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


def to_srgb(image: Image.Image, icc: bytes | None, notes: list[str]) -> Image.Image:
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
