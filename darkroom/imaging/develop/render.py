"""Rendering: every rendition resized from the one decoded image, encoded and written atomically."""

from __future__ import annotations

import contextlib
import math
import threading
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

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


# Lanczos' lobes: a = 3, as Pillow's LANCZOS.
LANCZOS_LOBES = 3
# A reduction by this factor or more first averages whole blocks of pixels (as Pillow's
# reducing_gap), down to no less than this many times the target: the antialiasing filter
# then works on a small image, and blocks that small average out nothing it would keep.
REDUCING_GAP = 2.0


def resize(pixels: NDArray[Any], size: tuple[int, int]) -> NDArray[Any]:
    """`pixels` (rows, columns, channels; 8 or 16 bits) reduced to `size` (width, height)
    with Lanczos' antialiasing, at a quarter of the cost of Pillow's Lanczos.

    The frame is low-passed with the Lanczos kernel stretched to the reduction (what
    Pillow weighs its taps by), then sampled with bicubic interpolation, which is exact
    enough on a signal the filter left little above the output's Nyquist in: within half
    a level of Pillow's Lanczos on a photograph (52 dB), and no more aliasing on a zone
    plate. OpenCV's resizes alone either alias (bilinear, bicubic, its Lanczos: fixed
    taps) or blur (area: a box filter). OpenCV's own threads share the work.
    """
    import cv2  # on first use: see develop_processes

    rows, cols = pixels.shape[:2]
    width, height = size
    if (cols, rows) == (width, height):
        return pixels
    factor = int(min(cols / width, rows / height) / REDUCING_GAP)
    if factor < 2:
        low = _low_pass(pixels, cols / width, rows / height)
        out = cv2.resize(low, size, interpolation=cv2.INTER_CUBIC)
    else:
        # Whole blocks only, OpenCV's fast path; a last partial block is the edge's own
        # pixels again (the border mode below).
        blocks = pixels[: rows - rows % factor, : cols - cols % factor]
        small = cv2.resize(blocks, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
        # Block pixels per output pixel, over the frame's whole extent, partial block
        # included: cv2.resize would stretch the whole blocks over it instead.
        sx, sy = cols / factor / width, rows / factor / height
        centres = np.array([[sx, 0.0, (sx - 1) / 2], [0.0, sy, (sy - 1) / 2]])
        out = cv2.warpAffine(
            _low_pass(small, sx, sy),
            centres,
            size,
            flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return np.asarray(out).reshape(height, width, *pixels.shape[2:])


def _low_pass(pixels: NDArray[Any], sx: float, sy: float) -> NDArray[Any]:
    """Lanczos' antialiasing filter for a reduction by `sx` across and `sy` down."""
    import cv2  # on first use: see develop_processes

    # Replicated edges: nearest Pillow's taps, which stop at the edge and are renormalised.
    return np.asarray(
        cv2.sepFilter2D(
            pixels, -1, _lanczos_taps(sx), _lanczos_taps(sy), borderType=cv2.BORDER_REPLICATE
        )
    )


def _lanczos_taps(scale: float) -> NDArray[np.float32]:
    """The Lanczos kernel stretched by `scale` (one tap, itself, when nothing is reduced)."""
    scale = max(1.0, scale)
    reach = math.ceil(LANCZOS_LOBES * scale)
    x = np.arange(-reach, reach + 1, dtype=np.float64) / scale
    taps = np.where(np.abs(x) < LANCZOS_LOBES, np.sinc(x) * np.sinc(x / LANCZOS_LOBES), 0.0)
    return np.asarray(taps / taps.sum(), dtype=np.float32)


def sharpen(pixels: NDArray[np.uint8], rendition: Rendition) -> NDArray[np.uint8]:
    """Output sharpening, as Lightroom's export applies it after the resize.

    An unsharp mask whose radius follows the output's size: "screen" sharpens for a
    display (about 0.85 px at 2048 px, less on a thumbnail, more on a 4K output); "print"
    sizes the radius for prints made from the file at 300 ppi, and is stronger. OpenCV's
    blur, not Pillow's filter: 40 times faster on a 2048 px rendition.
    """
    import cv2  # on first use: see develop_processes

    if rendition.sharpen == "none":
        return pixels
    long_edge = max(pixels.shape[:2])
    if rendition.sharpen == "screen":
        sigma = min(1.2, max(0.5, 0.35 + long_edge / 4096))
        amount = 0.9
    else:
        sigma = min(2.5, max(0.8, long_edge / 3000))
        amount = 1.2
    blurred = cv2.GaussianBlur(pixels, (0, 0), sigma)
    # Saturating arithmetic: overshoots clip at 0 and 255 instead of wrapping.
    return np.asarray(cv2.addWeighted(pixels, 1 + amount, blurred, -amount, 0), dtype=np.uint8)


def render_all(
    pixels: NDArray[np.uint8],
    pixels16: NDArray[np.uint16] | None,
    src: Path,
    out_dir: Path,
    recipe: Recipe,
    metadata: Metadata,
    threads: int,
    mark: Image.Image | None = None,
) -> tuple[RenderedFile, ...]:
    """Every rendition of `recipe` from the developed frame `pixels` (rows, columns, RGB)
    and, for 16-bit renditions, `pixels16`; `threads`: how many may encode at once.
    `mark`: the recipe's watermark, already read, for the renditions it names."""
    name = src.name
    rows, cols = pixels.shape[:2]
    profile = icc.profile(recipe.colour_space)
    exif = exif_bytes(metadata)
    # Largest first, so each smaller rendition is resized from the previous, smaller image.
    order = sorted(
        recipe.renditions,
        key=lambda r: max(target_size(cols, rows, r)),
        reverse=True,
    )
    written: dict[str, RenderedFile] = {}
    # Encoding one rendition overlaps resizing the next (both drop the GIL).
    saves: list[tuple[Rendition, Path, int, int, Future[int]]] = []
    pool = _threads(threads) if threads > 1 else None
    source = pixels
    try:
        for rendition in order:
            dest = out_dir / rendition.name / f"{src.stem}.{rendition.extension}"
            size = target_size(cols, rows, rendition)
            width, height = size
            try:
                if rendition.bits == 16 and pixels16 is not None:
                    writer = _tiff_writer(resize(pixels16, size), profile, metadata)
                else:
                    resized = resize(source, size)
                    # The next, smaller rendition is resized from this one as it is,
                    # unsharpened and unmarked.
                    finished = sharpen(resized, rendition)
                    if mark is not None and recipe.watermark and recipe.watermarked(rendition.name):
                        with Image.fromarray(finished) as frame:
                            marked = watermark.apply(frame, mark, recipe.watermark)
                        finished = np.asarray(marked)
                    writer = _pillow_writer(finished, rendition, profile, exif)
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
    pixels: NDArray[np.uint8], rendition: Rendition, icc_profile: bytes, exif: bytes
) -> Writer:
    def write(fh: BinaryIO) -> None:
        # Pillow's copy of the pixels made here, on the encoding thread, and dropped with it.
        with Image.fromarray(pixels, "RGB") as image:
            if rendition.format == "webp":
                image.save(
                    fh, "WEBP", quality=rendition.quality, icc_profile=icc_profile, exif=exif
                )
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
