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

import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from darkroom.imaging import usable_cores
from darkroom.imaging.develop.decode import check_developed, decode, shoulder, to_image
from darkroom.imaging.develop.denoise import reduce_noise
from darkroom.imaging.develop.lens import correct, find_profile
from darkroom.imaging.develop.render import render_all
from darkroom.imaging.develop_result import DevelopError, DevelopResult, RenderedFile
from darkroom.imaging.metadata import Metadata, read_metadata
from darkroom.recipes import DEFAULT_RECIPE, Recipe

__all__ = ["DevelopError", "DevelopResult", "RenderedFile", "develop_file", "shoulder"]


def develop_file(
    src: Path,
    out_dir: Path,
    recipe: Recipe = DEFAULT_RECIPE,
    *,
    threads: int | None = None,
) -> DevelopResult:
    """Develop `src` into out_dir/<rendition>/<stem>.<ext> for every rendition of `recipe`.

    `threads`: how many threads may share one resize (default: one per core); a pool that
    develops a file per core passes 1.
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

    decoded = decode(src, recipe)
    metadata = read_metadata(src, decoded.libraw, keep_gps=recipe.metadata.keep_gps)
    decode_done = time.perf_counter()
    try:
        check_developed(decoded.pixels8, name)
        height, width = decoded.pixels8.shape[:2]
        pixels, noise_note = reduce_noise(decoded.pixels8, recipe.noise_reduction)
        if noise_note:
            decoded.notes["noise_reduction"] = noise_note
        if recipe.lens == "auto":
            pixels, decoded.notes["lens"] = _correct_lens(pixels, metadata)
        image = to_image(pixels)
        del pixels
        # Pillow holds its own copy from here on; a 24 MP frame is 72 MB we need not keep.
        decoded.pixels8 = _EMPTY
        try:
            renditions = render_all(
                image,
                decoded.pixels16,
                src,
                Path(out_dir),
                recipe,
                metadata,
                threads or usable_cores(),
            )
        finally:
            image.close()
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
    )


def _correct_lens(pixels: NDArray[np.uint8], metadata: Metadata) -> tuple[NDArray[np.uint8], str]:
    profile = find_profile(metadata)
    if isinstance(profile, str):
        return pixels, profile
    corrected, done = correct(pixels, profile)
    if not done:
        return pixels, f"not corrected: lensfun has no calibration for {profile.name}"
    return corrected, f"{' and '.join(done)} corrected for {profile.name}"


_EMPTY: NDArray[np.uint8] = np.zeros((0, 0, 3), dtype=np.uint8)
