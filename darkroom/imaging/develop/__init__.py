"""Develop one camera RAW file into every rendition of a recipe.

The RAW is decoded once by LibRaw (through rawpy) and every rendition is resized from that
one image. Before decoding, a sparse sample of the sensor data is metered: it says whether
the frame holds a picture at all, gives the auto white balance, and places the exposure
(middle grey for the frame's average brightness, highlights kept below clipping). LibRaw
is then told exactly what to do (white balance multipliers, linear gain, output colour
space and transfer curve), so the fast path costs no pass over the image beyond LibRaw's
own. When no rendition needs more than half the sensor, LibRaw's half-size decode (no
demosaicing) is used.

A file that cannot be developed raises DevelopError with a stable code, and leaves no
output behind: a bad file fails that file, never the job.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import numpy as np
import rawpy
from numpy.typing import NDArray
from PIL import Image

from darkroom.imaging import usable_cores
from darkroom.imaging.develop import crop
from darkroom.imaging.develop.decode import check_developed, decode, shoulder, to_rgb
from darkroom.imaging.develop.denoise import reduce_noise
from darkroom.imaging.develop.lens import correct, find_profile
from darkroom.imaging.develop.render import render_all, resize, target_size
from darkroom.imaging.develop_result import DevelopError, DevelopResult, RenderedFile
from darkroom.imaging.metadata import Metadata, read_metadata
from darkroom.imaging.watermark import WatermarkError, load_mark
from darkroom.recipes import DEFAULT_RECIPE, MULTIPLIER_RANGE, Recipe, parse_recipe
from darkroom.sidecars import Sidecar
from darkroom.software import IMAGING, installed

__all__ = ["DevelopError", "DevelopResult", "RenderedFile", "develop_file", "shoulder"]


def develop_file(
    src: Path,
    out_dir: Path,
    recipe: Recipe = DEFAULT_RECIPE,
    *,
    threads: int | None = None,
    sidecar: Sidecar | None = None,
    watermark: Path | None = None,
) -> DevelopResult:
    """Develop `src` into out_dir/<rendition>/<stem>.<ext> for every rendition of `recipe`.

    `threads`: how many threads may share one file's resizing, finishing and encoding
    (default: one per core); a pool that develops a file per core passes 1. `sidecar`:
    the photographer's own settings for this file (exposure, white balance, crop,
    orientation), over the recipe's. `watermark`: the PNG of the studio asset the
    recipe's watermark names.
    """
    src = Path(src)
    name = src.name
    started = time.perf_counter()
    try:
        size = src.stat().st_size
    except OSError as exc:
        raise DevelopError("decode_failed", name, f"cannot read file ({exc.strerror})") from exc
    if size == 0:
        raise DevelopError("empty_file", name, "empty file (0 bytes)")

    # Before the decode: a job whose mark cannot be read fails each file at once.
    mark = _watermark(recipe, watermark, name)
    if sidecar is not None:
        recipe = with_sidecar(recipe, sidecar)
    decoded = decode(src, recipe, orientation=sidecar.orientation if sidecar else None)
    metadata = read_metadata(src, decoded.libraw, keep_gps=recipe.metadata.keep_gps)
    decode_done = time.perf_counter()
    budget = threads or usable_cores()
    try:
        check_developed(decoded.pixels8, name)
        _opencv_threads(budget)
        pixels, noise_note = reduce_noise(decoded.pixels8, recipe.noise_reduction)
        if noise_note:
            masters = (
                " (16-bit renditions are not denoised)" if decoded.pixels16 is not None else ""
            )
            decoded.notes["noise_reduction"] = noise_note + masters
        height, width = pixels.shape[:2]
        if recipe.lens == "auto":
            # At the largest rendition's size when that is smaller and nothing is cut
            # from the frame after: the same corrections on half the pixels or fewer.
            cropped = sidecar is not None and sidecar.crop is not None
            at = None if cropped or decoded.pixels16 is not None else _largest(pixels, recipe)
            pixels, decoded.pixels16, decoded.notes["lens"] = _correct_lens(
                pixels, decoded.pixels16, metadata, at
            )
        if sidecar is not None:
            pixels = _sidecar_crop(pixels, sidecar, decoded.flip)
            if decoded.pixels16 is not None:
                decoded.pixels16 = _sidecar_crop(decoded.pixels16, sidecar, decoded.flip)
            decoded.notes["sidecar"] = _sidecar_note(sidecar)
            height, width = pixels.shape[:2]
        # Not the decoded frame too, where a finishing step made another: 72 MB at 24 MP.
        decoded.pixels8 = _EMPTY
        renditions = render_all(
            to_rgb(pixels),
            decoded.pixels16,
            src,
            Path(out_dir),
            recipe,
            metadata,
            budget,
            mark,
        )
        if recipe.watermark is not None:
            spec = recipe.watermark
            decoded.notes["watermark"] = (
                f"{spec.asset} at {spec.position} on {', '.join(spec.renditions)}"
            )
    finally:
        decoded.pixels16 = None
    return DevelopResult(
        source=name,
        width=width,
        height=height,
        half_size=decoded.half_size,
        renditions=renditions,
        decode_seconds=decode_done - started,
        render_seconds=time.perf_counter() - decode_done,
        exposure_gain=decoded.gain,
        white_balance=decoded.white_balance,
        notes=decoded.notes,
        software=software(),
    )


@functools.cache
def software() -> dict[str, str]:
    """What developed the file, for the run's manifest: darkroom's own version and the
    decoder's and encoder's (LibRaw is built into rawpy, so both are named)."""
    versions = installed()
    return {
        "darkroom": versions["darkroom"],
        "libraw": ".".join(str(part) for part in rawpy.libraw_version),
        **{dist: versions[dist] for dist in IMAGING},
    }


def _watermark(recipe: Recipe, path: Path | None, name: str) -> Image.Image | None:
    if recipe.watermark is None:
        return None
    asset = recipe.watermark.asset
    if path is None:
        raise DevelopError(
            "watermark_unavailable", name, f"the watermark asset {asset!r} was not provided"
        )
    try:
        return load_mark(path, recipe.colour_space)
    except (WatermarkError, OSError) as exc:
        raise DevelopError(
            "watermark_unreadable", name, f"the watermark asset {asset!r} is unusable: {exc}"
        ) from exc


def _opencv_threads(count: int) -> None:
    """OpenCV's own threads (resizing, noise reduction, lens, sharpening) within this process's
    budget: a pool that develops a file per core must not have each use every core."""
    import cv2  # after the decoder: see develop_processes

    cv2.setNumThreads(count)


def with_sidecar(recipe: Recipe, sidecar: Sidecar) -> Recipe:
    """The recipe with the sidecar's exposure and white balance in place of its own."""
    document = recipe.model_dump(mode="json")
    if sidecar.exposure_ev is not None:
        document["exposure"] = {**document["exposure"], "compensation_ev": sidecar.exposure_ev}
    if sidecar.temperature is not None:
        document["white_balance"] = {
            "mode": "fixed",
            "temperature": sidecar.temperature,
            "tint": sidecar.tint or 0.0,
        }
    elif sidecar.multipliers is not None:
        low, high = MULTIPLIER_RANGE
        clamped = [min(high, max(low, v)) for v in sidecar.multipliers]
        document["white_balance"] = {"mode": "fixed", "multipliers": clamped}
    elif sidecar.white_balance == "as shot":
        document["white_balance"] = {"mode": "camera"}
    return parse_recipe(document)


def _sidecar_crop(pixels: NDArray[Any], sidecar: Sidecar, flip: int) -> NDArray[Any]:
    if sidecar.crop is None:
        return pixels
    box = crop.upright_fraction(
        sidecar.crop.left, sidecar.crop.top, sidecar.crop.right, sidecar.crop.bottom, flip
    )
    return crop.cut(pixels, box, sidecar.crop.angle)


def _sidecar_note(sidecar: Sidecar) -> str:
    applied = sidecar.applied()
    note = f"{sidecar.source}: " + (", ".join(applied) if applied else "nothing to apply")
    if sidecar.ignored:
        note += f"; not applied: {', '.join(sidecar.ignored[:6])}"
    return note


def _largest(pixels: NDArray[np.uint8], recipe: Recipe) -> tuple[int, int] | None:
    """The largest rendition's size, when it is smaller than the frame; else None."""
    rows, cols = pixels.shape[:2]
    size = max((target_size(cols, rows, r) for r in recipe.renditions), key=lambda s: s[0] * s[1])
    return None if size == (cols, rows) else size


def _correct_lens(
    pixels: NDArray[np.uint8],
    pixels16: NDArray[np.uint16] | None,
    metadata: Metadata,
    at: tuple[int, int] | None,
) -> tuple[NDArray[np.uint8], NDArray[np.uint16] | None, str]:
    """Both the 8-bit frame and, for 16-bit renditions, the 16-bit one, corrected alike;
    `at`: the size to correct at (the frame resized to it first, as rendering would)."""
    profile = find_profile(metadata)
    if isinstance(profile, str):
        return pixels, pixels16, profile
    if at is not None:
        pixels = resize(to_rgb(pixels), at)
    corrected, done = correct(pixels, profile)
    if not done:
        return pixels, pixels16, f"not corrected: lensfun has no calibration for {profile.name}"
    if pixels16 is not None:
        pixels16, _ = correct(pixels16, profile)
    return corrected, pixels16, f"{' and '.join(done)} corrected for {profile.name}"


_EMPTY: NDArray[np.uint8] = np.zeros((0, 0, 3), dtype=np.uint8)
