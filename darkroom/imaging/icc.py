"""ICC v2 display profiles for the output colour spaces, built from their definitions.

Nothing is downloaded or shipped: each profile is computed from the colour space's
published primaries, white point and transfer curve (sRGB: IEC 61966-2-1; Display P3:
SMPTE EG 432-1 primaries with the sRGB curve; Adobe RGB (1998): Adobe's specification,
gamma 563/256), adapted to the ICC's D50 connection space with the Bradford transform.
Version 2 matrix/TRC profiles are what every browser and viewer reads.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# ICC's profile connection space white (D50), as the specification rounds it.
PCS_WHITE = np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array(
    [
        [0.8951, 0.2664, -0.1614],
        [-0.7502, 1.7135, 0.0367],
        [0.0389, -0.0685, 1.0296],
    ]
)
D65_XY = (0.3127, 0.3290)
# A fixed creation date: the same definition always gives byte-identical profiles.
_CREATED = (2024, 1, 1, 0, 0, 0)
_SRGB_TABLE_SIZE = 1024


@dataclass(frozen=True)
class ColourSpace:
    key: str
    description: str
    # (x, y) chromaticities of red, green, blue.
    primaries: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    white: tuple[float, float]
    # None: the sRGB piecewise curve; a number: a pure power law.
    gamma: float | None

    def encode(self, linear: NDArray[np.floating]) -> NDArray[np.float64]:
        """Linear light in [0, 1] -> the space's non-linear code values in [0, 1]."""
        v = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
        if self.gamma is not None:
            return np.asarray(v ** (1.0 / self.gamma))
        return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)

    def decode(self, code: NDArray[np.floating]) -> NDArray[np.float64]:
        """Code values in [0, 1] -> linear light."""
        v = np.clip(np.asarray(code, dtype=np.float64), 0.0, 1.0)
        if self.gamma is not None:
            return np.asarray(v**self.gamma)
        return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)

    @property
    def to_xyz(self) -> NDArray[np.float64]:
        """Linear RGB -> CIE XYZ under the space's own white (Y of white = 1)."""
        return rgb_to_xyz_matrix(self.primaries, self.white)


SRGB = ColourSpace(
    "srgb", "sRGB IEC61966-2.1", ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)), D65_XY, None
)
DISPLAY_P3 = ColourSpace(
    "display-p3", "Display P3", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), D65_XY, None
)
ADOBE_RGB = ColourSpace(
    "adobe-rgb",
    "Adobe RGB (1998)",
    ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)),
    D65_XY,
    563 / 256,
)
SPACES = {space.key: space for space in (SRGB, DISPLAY_P3, ADOBE_RGB)}


def _xyz(xy: tuple[float, float]) -> NDArray[np.float64]:
    x, y = xy
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz_matrix(
    primaries: tuple[tuple[float, float], ...], white: tuple[float, float]
) -> NDArray[np.float64]:
    columns = np.stack([_xyz(p) for p in primaries], axis=1)
    scale = np.linalg.solve(columns, _xyz(white))
    return np.asarray(columns * scale)


def bradford(source_white: NDArray[np.float64], target_white: NDArray[np.float64]) -> NDArray:
    cone = BRADFORD @ target_white / (BRADFORD @ source_white)
    return np.asarray(np.linalg.inv(BRADFORD) @ np.diag(cone) @ BRADFORD)


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz: NDArray[np.float64]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(v) for v in xyz)


def _text_description(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    # ASCII part, then empty Unicode and ScriptCode parts (v2 textDescriptionType).
    return (
        b"desc"
        + bytes(4)
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + struct.pack(">II", 0, 0)
        + struct.pack(">HB", 0, 0)
        + bytes(67)
    )


def _curve(space: ColourSpace) -> bytes:
    if space.gamma is not None:
        # One entry: a pure power law, as u8Fixed8.
        return b"curv" + bytes(4) + struct.pack(">IH", 1, round(space.gamma * 256))
    codes = np.linspace(0.0, 1.0, _SRGB_TABLE_SIZE)
    table = np.round(space.decode(codes) * 65535).astype(">u2")
    return b"curv" + bytes(4) + struct.pack(">I", _SRGB_TABLE_SIZE) + table.tobytes()


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


@functools.cache
def profile(key: str) -> bytes:
    """The ICC profile of an output colour space ("srgb", "display-p3", "adobe-rgb")."""
    space = SPACES[key]
    white = _xyz(space.white)
    adapt = bradford(white, PCS_WHITE)
    colorants = adapt @ space.to_xyz
    curve = _curve(space)
    tags: list[tuple[bytes, bytes]] = [
        (b"desc", _text_description(space.description)),
        (b"cprt", b"text" + bytes(4) + b"No copyright, use freely\0"),
        (b"wtpt", _xyz_tag(PCS_WHITE)),
        (b"chad", b"sf32" + bytes(4) + b"".join(_s15(v) for v in adapt.flat)),
        (b"rXYZ", _xyz_tag(colorants[:, 0])),
        (b"gXYZ", _xyz_tag(colorants[:, 1])),
        (b"bXYZ", _xyz_tag(colorants[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    directory = struct.pack(">I", len(tags))
    body = b""
    placed: dict[bytes, int] = {}
    for signature, data in tags:
        # The three curves are one block of data, pointed to three times.
        if data not in placed:
            placed[data] = offset + len(body)
            body += _pad(data)
        directory += signature + struct.pack(">II", placed[data], len(data))
    size = 128 + table_size + len(body)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])  # version 2.1
        + b"mntrRGB XYZ "
        + struct.pack(">6H", *_CREATED)
        + b"acsp"
        + b"APPL"
        + bytes(4 + 4 + 4 + 8)  # flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # perceptual
        + b"".join(_s15(v) for v in PCS_WHITE)
        + b"dkrm"  # creator
    )
    header += bytes(128 - len(header))
    return header + directory + body
