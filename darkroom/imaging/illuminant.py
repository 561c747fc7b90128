"""The colour of a light from its temperature and tint, as raw converters state it.

Temperature is a point on the black-body (Planckian) locus; tint moves off it at right
angles in the CIE 1960 uv plane, in Adobe's units (the DNG SDK's: one unit is 1/3000 of uv
distance; a positive tint is a greener light, which the picture answers by turning more
magenta, as Lightroom's slider does), so a Lightroom or Camera Raw setting means the
same here.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

_TINT_UNIT = 1 / 3000


def planckian_xy(kelvin: float) -> tuple[float, float]:
    """CIE 1931 chromaticity of a black body (Kim et al. 2002 cubic fit, 1667-25000 K)."""
    t = kelvin
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


def _uv(x: float, y: float) -> tuple[float, float]:
    d = -2 * x + 12 * y + 3
    return 4 * x / d, 6 * y / d


def _xy(u: float, v: float) -> tuple[float, float]:
    d = 2 * u - 8 * v + 4
    return 3 * u / d, 2 * v / d


def light_xy(kelvin: float, tint: float = 0.0) -> tuple[float, float]:
    """Chromaticity of a light of this temperature, moved off the locus by `tint`."""
    u, v = _uv(*planckian_xy(kelvin))
    if tint:
        # The locus' direction here, from a step either side of the temperature.
        u1, v1 = _uv(*planckian_xy(kelvin * 0.99))
        u2, v2 = _uv(*planckian_xy(kelvin * 1.01))
        du, dv = u2 - u1, v2 - v1
        length = float(np.hypot(du, dv))
        # The normal pointing above the locus (toward green); magenta is below it.
        nu, nv = -dv / length, du / length
        if nv < 0:
            nu, nv = -nu, -nv
        offset = tint * _TINT_UNIT
        u, v = u + offset * nu, v + offset * nv
    return _xy(u, v)


def light_xyz(kelvin: float, tint: float = 0.0) -> NDArray[np.float64]:
    """CIE XYZ of the light, Y = 1."""
    x, y = light_xy(kelvin, tint)
    return np.array([x / y, 1.0, (1.0 - x - y) / y])
