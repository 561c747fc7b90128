"""Reduce, colour-convert, orient and encode: every size of one decoded image."""

from __future__ import annotations

import io

from PIL import Image

from darkroom.imaging.thumbnailer.colour import srgb_icc, to_srgb, working_mode
from darkroom.imaging.thumbnailer.model import (
    JPEG,
    TRANSPOSE,
    WEBP,
    Decoded,
    OutputFormat,
    Reason,
    Thumbnail,
    ThumbnailError,
    ThumbnailSet,
    fit,
)

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


def render(decoded: Decoded, sizes: tuple[int, ...]) -> ThumbnailSet:
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


def _render_sizes(decoded: Decoded, sizes: tuple[int, ...]) -> tuple[Thumbnail, ...]:
    working = working_mode(decoded.image)
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
    target = fit(right - left, bottom - top, max(sizes))
    reduced = _resize(working, target, decoded.box, FIRST_REDUCING_GAP)
    if reduced is not working:
        # The full-size decode is the bulk of the memory; nothing needs it any more.
        working.close()
        decoded.image.close()
    colour = to_srgb(reduced, decoded.icc, decoded.notes)
    upright = _transpose(colour, decoded.orientation)
    out_format, final = _choose_format(upright)

    made: dict[int, Thumbnail] = {}
    current = final
    for size in sorted(sizes, reverse=True):
        current = _resize(current, fit(*final.size, size), None, REDUCING_GAP)
        made[size] = Thumbnail(
            size=size,
            width=current.width,
            height=current.height,
            format=out_format,
            data=_encode(current, out_format),
        )
    return tuple(made[size] for size in sizes)


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
    method = TRANSPOSE.get(orientation)
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
