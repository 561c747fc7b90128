"""Noise reduction on the developed frame, at its own resolution, before any resize.

LibRaw's wavelet denoising (`noise_thr`) crashes the process in the rawpy build we ship
(a segmentation fault on every file, rawpy 0.28 / LibRaw 0.22), so noise is reduced here
with OpenCV: luminance through an edge-preserving bilateral filter, colour noise (the
blotches high-ISO frames show in shadows) with a blur of the chroma planes, which the eye
does not resolve. Strength follows the noise the frame actually has: it is measured
(Immerkær's estimator on the luminance), so a frame at ISO 6400 is treated harder than
one at ISO 100 without a table per camera.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

# Per strength: luminance range (times the measured noise sigma) the bilateral filter
# averages over, its spatial sigma (pixels), and the chroma blur's sigma (pixels).
STRENGTHS: dict[str, tuple[float, float, float]] = {
    "low": (1.5, 1.0, 1.0),
    "medium": (2.5, 1.5, 2.0),
    "high": (4.0, 2.0, 3.0),
}
# Below this measured sigma (8-bit levels) there is nothing worth smoothing.
MIN_SIGMA = 0.5

_LAPLACIAN_DIFF = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def noise_sigma(luma: NDArray[np.uint8]) -> float:
    """Immerkær (1996): the standard deviation of white noise in an image, from the mean
    absolute response to a kernel that cancels smooth gradients and edges' first order."""
    import cv2  # on first use: see develop_processes

    rows, cols = luma.shape
    if rows < 3 or cols < 3:
        return 0.0
    response = cv2.filter2D(luma.astype(np.float32), -1, _LAPLACIAN_DIFF)[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2) * np.abs(response).mean() / 6)


def reduce_noise(pixels: NDArray[np.uint8], level: str) -> tuple[NDArray[np.uint8], str | None]:
    """`pixels` (rows, columns, RGB) with noise reduced, and what was done, in words;
    unchanged with None when `level` is off."""
    import cv2  # on first use: see develop_processes

    if level not in STRENGTHS:
        return pixels, None
    luma_range, space_sigma, chroma_sigma = STRENGTHS[level]
    ycc = np.asarray(cv2.cvtColor(pixels, cv2.COLOR_RGB2YCrCb), dtype=np.uint8)
    sigma = noise_sigma(ycc[..., 0])
    if sigma < MIN_SIGMA:
        return pixels, f"{level}: measured noise {sigma:.2f} levels, nothing to reduce"
    luma = cv2.bilateralFilter(
        np.ascontiguousarray(ycc[..., 0]), 0, luma_range * sigma, space_sigma
    )
    chroma = cv2.GaussianBlur(ycc[..., 1:], (0, 0), chroma_sigma)
    ycc[..., 0] = luma
    ycc[..., 1:] = chroma
    del luma, chroma
    out = np.asarray(cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB), dtype=np.uint8)
    return (
        out,
        f"{level}: measured noise {sigma:.2f} levels (8-bit), bilateral luminance and chroma blur",
    )
