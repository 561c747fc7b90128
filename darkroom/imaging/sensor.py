"""Whether a camera RAW's sensor data holds a picture at all, asked before LibRaw develops it.

LibRaw decodes a file whose pixel data was stripped without complaint: to all zeros, or
(auto-brightened) to a garbage pattern. The sensor values themselves tell: real sensor
data always has signal above black and noise. The worker and the thumbnailer both ask.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import rawpy

# Raw signal above black (99th percentile) below this share of the sensor's range is no
# picture: a stripped file decodes to zeros, a lens-cap frame to read noise.
MIN_RAW_SIGNAL = 1 / 1000
# Sampling every 7th row and column reaches every CFA site (7 is odd) at 1/49 of the cost.
SAMPLE_STEP = 7


def sensor_is_blank(raw: Any) -> bool:
    """True when the unpacked sensor data of `raw` (a rawpy.RawPy) has no picture in it.

    A 2-D plane (a colour filter array, or a monochrome sensor) is sampled as it is; a 3-D
    one (several values per pixel: Foveon, linear DNG) by its colour channels only, since
    LibRaw pads three colours to four with a constant plane. A layout that exposes no raw
    plane gives False: there is nothing to judge by. LibRaw's own errors propagate.
    """
    try:
        data = raw.raw_image_visible
    except rawpy.LibRawError:
        raise
    except Exception:
        return False
    sample = data[::SAMPLE_STEP, ::SAMPLE_STEP]
    if sample.ndim == 3:
        sample = sample[..., : raw.num_colors]
    if sample.size == 0:
        return True
    low, high = np.percentile(sample, [1, 99])
    black = float(min(raw.black_level_per_channel))
    signal_range = max(float(raw.white_level) - black, 1.0)
    floor = max(1.0, signal_range * MIN_RAW_SIGNAL)
    # Nothing above black, or one flat value everywhere.
    return bool(high - black < floor or high - low < floor)
