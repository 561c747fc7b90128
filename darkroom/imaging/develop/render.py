"""Rendering: every rendition resized from the one decoded image, encoded and written atomically."""

from __future__ import annotations

import contextlib
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from darkroom.imaging import icc, tiff, watermark
from darkroom.imaging.atomic import Writer, save_atomic
from darkroom.imaging.develop_result import DevelopError, RenderedFile
from darkroom.imaging.metadata import Metadata, exif_bytes, exif_ifd
from darkroom.recipes import Recipe, Rendition


def target_size(width: int, height: int, rendition: Rendition) -> tuple[int, int]:
    long_edge = max(width, height)
    wanted = long_edge if rendition.long_edge == "full" else rendition.long_edge
    if wanted >= long_edge:
        # Never upscale: a rendition larger than the image is the image.
        return width, height
    scale = wanted / long_edge
    if width >= height:
        return wanted, max(1, round(height * scale))
    return max(1, round(width * scale)), wanted


_pool_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def _threads(count: int) -> ThreadPoolExecutor:
    with _pool_lock:
        if count not in _pools:
            _pools[count] = ThreadPoolExecutor(count, thread_name_prefix="resize")
        return _pools[count]


# Bands shorter than this cost more in coordination than they save.
MIN_BAND_ROWS = 128


def resize(source: Image.Image, size: tuple[int, int], threads: int = 1) -> Image.Image:
    """Lanczos resize, split into horizontal bands across threads (Pillow drops the GIL).

    Each band names its source rows with `box`, and Pillow takes the filter's support from
    outside the box, so the bands join without a seam: the same pixels as one call.
    """
    if source.size == size:
        return source
    width, height = size
    ratio = source.height / height
    if ratio >= 2.0:
        # A large reduction: an integer box-reduce first, Lanczos over the last factor of 2
        # or more (Pillow's reducing_gap), is already cheap.
        return source.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    bands = min(threads, height // MIN_BAND_ROWS)
    if bands <= 1:
        return source.resize(size, Image.Resampling.LANCZOS)
    edges = [height * i // bands for i in range(bands + 1)]

    def band(i: int) -> Image.Image:
        top, bottom = edges[i], edges[i + 1]
        box = (0.0, top * ratio, float(source.width), bottom * ratio)
        return source.resize((width, bottom - top), Image.Resampling.LANCZOS, box=box)

    parts = list(_threads(threads).map(band, range(bands)))
    out = Image.new(source.mode, size)
    for top, part in zip(edges, parts, strict=False):
        out.paste(part, (0, top))
        part.close()
    return out


def sharpen(image: Image.Image, rendition: Rendition) -> Image.Image:
    """Output sharpening, as Lightroom's export applies it after the resize.

    An unsharp mask whose radius follows the output's size: "screen" sharpens for a
    display (about 0.85 px at 2048 px, less on a thumbnail, more on a 4K output); "print"
    sizes the radius for prints made from the file at 300 ppi, and is stronger. OpenCV's
    blur, not Pillow's filter: 40 times faster on a 2048 px rendition.
    """
    import cv2  # on first use: see develop_processes

    if rendition.sharpen == "none":
        return image
    long_edge = max(image.size)
    if rendition.sharpen == "screen":
        sigma = min(1.2, max(0.5, 0.35 + long_edge / 4096))
        amount = 0.9
    else:
        sigma = min(2.5, max(0.8, long_edge / 3000))
        amount = 1.2
    pixels = np.asarray(image)
    blurred = cv2.GaussianBlur(pixels, (0, 0), sigma)
    # Saturating arithmetic: overshoots clip at 0 and 255 instead of wrapping.
    return Image.fromarray(cv2.addWeighted(pixels, 1 + amount, blurred, -amount, 0), image.mode)


def render_all(
    image: Image.Image,
    pixels16: NDArray[np.uint16] | None,
    src: Path,
    out_dir: Path,
    recipe: Recipe,
    metadata: Metadata,
    threads: int,
    mark: Image.Image | None = None,
) -> tuple[RenderedFile, ...]:
    """`mark`: the recipe's watermark, already read, for the renditions it names."""
    name = src.name
    profile = icc.profile(recipe.colour_space)
    exif = exif_bytes(metadata)
    # Largest first, so each smaller rendition is resized from the previous, smaller image.
    order = sorted(
        recipe.renditions,
        key=lambda r: max(target_size(image.width, image.height, r)),
        reverse=True,
    )
    written: dict[str, RenderedFile] = {}
    # Encoding one rendition overlaps resizing the next (both drop the GIL).
    saves: list[tuple[Rendition, Path, int, int, Future[int]]] = []
    pool = _threads(threads) if threads > 1 else None
    source = image
    try:
        for rendition in order:
            dest = out_dir / rendition.name / f"{src.stem}.{rendition.extension}"
            size = target_size(image.width, image.height, rendition)
            try:
                if rendition.bits == 16 and pixels16 is not None:
                    array = _resize16(pixels16, size, threads)
                    writer = _tiff_writer(array, profile, metadata)
                    width, height = size
                else:
                    resized = resize(source, size, threads)
                    # The next, smaller rendition is resized from this one as it is,
                    # unsharpened and unmarked.
                    finished = sharpen(resized, rendition)
                    if mark is not None and recipe.watermark and recipe.watermarked(rendition.name):
                        finished = watermark.apply(finished, mark, recipe.watermark)
                    writer = _pillow_writer(finished, rendition, profile, exif)
                    width, height = resized.size
                    source = resized
            except Exception as exc:
                raise _write_failed(name, rendition, exc) from exc
            future: Future[int]
            if pool is not None:
                future = pool.submit(save_atomic, dest, writer)
            else:
                future = Future()
                try:
                    future.set_result(save_atomic(dest, writer))
                except Exception as exc:
                    future.set_exception(exc)
            saves.append((rendition, dest, width, height, future))
        failure: BaseException | None = None
        for rendition, dest, width, height, future in saves:
            try:
                size_bytes = future.result()
            except Exception as exc:
                # Disk full, permissions, out of memory: the file fails, the job goes on.
                failure = failure or _write_failed(name, rendition, exc)
                continue
            written[rendition.name] = RenderedFile(
                rendition=rendition.name,
                path=dest,
                width=width,
                height=height,
                content_type=rendition.content_type,
                size_bytes=size_bytes,
            )
        if failure is not None:
            raise failure
    except BaseException:
        for _, dest, _, _, future in saves:
            with contextlib.suppress(BaseException):
                future.result()
            with contextlib.suppress(OSError):
                dest.unlink(missing_ok=True)
        raise
    return tuple(written[r.name] for r in recipe.renditions)


def _write_failed(name: str, rendition: Rendition, exc: BaseException) -> DevelopError:
    return DevelopError(
        "write_failed", name, f"cannot write the {rendition.name} rendition ({exc})"
    )


def _pillow_writer(
    image: Image.Image, rendition: Rendition, icc_profile: bytes, exif: bytes
) -> Writer:
    def write(fh: BinaryIO) -> None:
        if rendition.format == "webp":
            image.save(fh, "WEBP", quality=rendition.quality, icc_profile=icc_profile, exif=exif)
        else:
            # Baseline, not progressive: libjpeg-turbo's progressive mode costs several
            # times the encode for a few percent of size.
            image.save(
                fh,
                "JPEG",
                quality=rendition.quality,
                optimize=False,
                progressive=False,
                icc_profile=icc_profile,
                exif=exif,
            )

    return write


def _resize16(pixels: NDArray[np.uint16], size: tuple[int, int], threads: int) -> NDArray:
    if (pixels.shape[1], pixels.shape[0]) == size:
        return pixels
    channels = []
    for c in range(pixels.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(pixels[..., c]))
        channels.append(np.asarray(resize(plane, size, threads)))
    return np.stack(channels, axis=2)


# TIFF tags of the 16-bit renditions.
_WIDTH, _LENGTH, _BITS, _COMPRESSION, _PHOTOMETRIC = 256, 257, 258, 259, 262
_SAMPLES, _ROWS_PER_STRIP, _PLANAR, _PREDICTOR, _ICC = 277, 278, 284, 317, 34675
_DEFLATE, _HORIZONTAL_DIFFERENCING = 8, 2


def _tiff_writer(pixels: NDArray[np.uint16], icc_profile: bytes, metadata: Metadata) -> Writer:
    def write(fh: BinaryIO) -> None:
        height, width = pixels.shape[:2]
        # Horizontal differencing (TIFF predictor 2) makes smooth 16-bit data compress.
        diff = pixels.astype(np.uint16, copy=True)
        diff[:, 1:] -= pixels[:, :-1]
        data = zlib.compress(diff.astype("<u2").tobytes(), 4)
        ifd = tiff.Ifd(strip=data)
        ifd.add(_WIDTH, tiff.LONG, [width]).add(_LENGTH, tiff.LONG, [height])
        ifd.add(_BITS, tiff.SHORT, [16, 16, 16]).add(_COMPRESSION, tiff.SHORT, [_DEFLATE])
        ifd.add(_PHOTOMETRIC, tiff.SHORT, [2]).add(_SAMPLES, tiff.SHORT, [3])
        ifd.add(_ROWS_PER_STRIP, tiff.LONG, [height]).add(_PLANAR, tiff.SHORT, [1])
        ifd.add(_PREDICTOR, tiff.SHORT, [_HORIZONTAL_DIFFERENCING])
        ifd.add(_ICC, tiff.UNDEFINED, icc_profile)
        fh.write(tiff.write_tiff(exif_ifd(metadata, main=ifd)))

    return write
