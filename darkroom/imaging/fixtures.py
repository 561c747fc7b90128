"""Synthetic camera RAW files (DNG) for the demo and the tests.

A scene is drawn in linear sRGB, taken into a camera's native colour space with a real
camera's DNG colour matrix, mosaiced into an RGGB Bayer pattern and stored as 14-bit data
with a black level and sensor noise: the same path light takes through a camera, so a RAW
developer has real work to do (black subtraction, white balance, demosaic, colour matrix,
orientation) and the result can be checked against the scene that went in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from darkroom.imaging import tiff

# Canon EOS 5D Mark III, D65 (Adobe DNG Converter / dcraw adobe_coeff): XYZ -> camera.
CAMERA_MATRIX = np.array(
    [
        [0.6722, -0.0635, -0.0963],
        [-0.4287, 1.2460, 0.2028],
        [-0.0908, 0.2162, 0.5668],
    ]
)
# IEC 61966-2-1: linear sRGB -> XYZ (D65).
SRGB_TO_XYZ = np.array(
    [
        [0.4124, 0.3576, 0.1805],
        [0.2126, 0.7152, 0.0722],
        [0.0193, 0.1192, 0.9505],
    ]
)
_CAMERA_FROM_SRGB = CAMERA_MATRIX @ SRGB_TO_XYZ
# What the camera records for a white lit by D65.
CAMERA_NEUTRAL = _CAMERA_FROM_SRGB.sum(axis=1)
# Each seed's scene is lit by a light of its own colour temperature, from tungsten-ish to
# overcast, so developing it right needs the as-shot white balance, not a daylight default.
LIGHT_KELVIN_RANGE = (2800.0, 7500.0)

BITS = 14
WHITE_LEVEL = (1 << BITS) - 1
BLACK_LEVEL = 512
# Scene white (linear 1.0) lands this far up the sensor's range, leaving highlight headroom.
EXPOSURE = 0.85
READ_NOISE_DN = 2.5
# Photo-electrons per DN at base ISO, order of magnitude of a full-frame sensor.
GAIN_E_PER_DN = 4.0

# ColorChecker Classic patches as 8-bit sRGB (BabelColor averages): the developed image
# is compared against these.
CHECKER_SRGB: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("dark_skin", (115, 82, 68)),
    ("light_skin", (194, 150, 130)),
    ("blue_sky", (98, 122, 157)),
    ("foliage", (87, 108, 67)),
    ("blue", (56, 61, 150)),
    ("green", (70, 148, 73)),
    ("red", (175, 54, 60)),
    ("yellow", (231, 199, 31)),
    ("white", (243, 243, 242)),
    ("neutral_65", (160, 160, 160)),
    ("neutral_35", (85, 85, 85)),
    ("cyan", (8, 133, 161)),
)
CHECKER_COLUMNS = 6


@dataclass(frozen=True)
class Patch:
    """A flat colour patch of the scene, in upright (developed) image coordinates."""

    name: str
    srgb: tuple[int, int, int]
    left: int
    top: int
    right: int
    bottom: int


def srgb_to_linear(value: NDArray[np.floating] | float) -> NDArray[np.float64]:
    v = np.asarray(value, dtype=np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def light_temperature(seed: int) -> float:
    """The colour temperature (kelvin) of the light the seed's scene is shot under."""
    return float(np.random.default_rng([seed, 3]).uniform(*LIGHT_KELVIN_RANGE))


def _planckian_xy(kelvin: float) -> tuple[float, float]:
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


def as_shot_neutral(seed: int) -> NDArray[np.float64]:
    """The camera's response to the scene's light (max 1): the DNG AsShotNeutral."""
    x, y = _planckian_xy(light_temperature(seed))
    neutral = CAMERA_MATRIX @ np.array([x / y, 1.0, (1.0 - x - y) / y])
    return np.asarray(neutral / neutral.max(), dtype=np.float64)


def upright_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """The developed (width, height) of a sensor of width x height with this Orientation."""
    return (height, width) if orientation >= 5 else (width, height)


def checker_patches(width: int, height: int, seed: int = 0) -> list[Patch]:
    """Where render_scene(width, height, seed) puts the colour checker."""
    rng = np.random.default_rng([seed, 1])
    rows = len(CHECKER_SRGB) // CHECKER_COLUMNS
    cell = max(4, min(width, height) // 12)
    gap = max(1, cell // 6)
    chart_w = CHECKER_COLUMNS * (cell + gap) + gap
    chart_h = rows * (cell + gap) + gap
    x0 = int(rng.integers(0, max(1, width - chart_w)))
    y0 = int(rng.integers(height // 2, max(height // 2 + 1, height - chart_h)))
    patches = []
    for i, (name, srgb) in enumerate(CHECKER_SRGB):
        r, c = divmod(i, CHECKER_COLUMNS)
        left = x0 + gap + c * (cell + gap)
        top = y0 + gap + r * (cell + gap)
        patches.append(Patch(name, srgb, left, top, left + cell, top + cell))
    return patches


def _paint_disc(
    scene: NDArray[np.float32],
    centre: tuple[float, float],
    radius: float,
    colour: NDArray[np.float32],
) -> None:
    height, width = scene.shape[:2]
    cx, cy = centre
    # Only the disc's bounding box: full-frame masks would dominate a 24 MP fixture's cost.
    x0, x1 = max(0, int(cx - radius)), min(width, int(cx + radius) + 1)
    y0, y1 = max(0, int(cy - radius)), min(height, int(cy + radius) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    scene[y0:y1, x0:x1][xx**2 + yy**2 <= radius**2] = colour


def render_scene(width: int, height: int, seed: int = 0) -> NDArray[np.float32]:
    """An upright outdoor-ish scene in linear sRGB (height, width, 3), values in [0, 1]."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]

    def colour(lo: float, hi: float) -> NDArray[np.float32]:
        return rng.uniform(lo, hi, 3).astype(np.float32)

    sky_top, sky_low = colour(0.08, 0.35), colour(0.25, 0.6)
    ground_near, ground_far = colour(0.04, 0.2), colour(0.1, 0.3)
    sky = sky_top + (sky_low - sky_top) * y
    ground = ground_far + (ground_near - ground_far) * y
    horizon = (
        0.55
        + 0.06 * np.sin(2 * np.pi * (rng.uniform(0.5, 2.0) * x + rng.uniform()))
        + 0.02 * np.sin(2 * np.pi * (rng.uniform(3.0, 7.0) * x + rng.uniform()))
    )
    scene = np.where(y < horizon, sky, ground)
    # Gentle lens falloff towards the corners, as a real frame has.
    scene *= 1.0 - 0.25 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)

    short = min(width, height)
    for _ in range(int(rng.integers(3, 6))):
        centre = rng.uniform(0, width), rng.uniform(0, height * 0.7)
        _paint_disc(scene, centre, rng.uniform(0.04, 0.12) * short, colour(0.05, 0.7))
    for _ in range(int(rng.integers(1, 3))):
        w, h = (rng.uniform(0.1, 0.25, 2) * (width, height)).astype(int)
        left, top = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        scene[top : top + h, left : left + w] = colour(0.05, 0.6)
    # A sun, large enough (> 1% of the frame) to be the highlight a RAW developer's
    # auto-exposure anchors on, as a real sky's brightest part would be.
    centre = rng.uniform(0.15, 0.85) * width, rng.uniform(0.1, 0.3) * height
    _paint_disc(scene, centre, 0.1 * short, np.array([1.0, 0.97, 0.9], dtype=np.float32))

    patches = checker_patches(width, height, seed)
    first, last = patches[0], patches[-1]
    gap = max(1, (first.right - first.left) // 6)
    # The chart's dark surround, as on the real card.
    scene[first.top - gap : last.bottom + gap, first.left - gap : last.right + gap] = 0.03
    for patch in patches:
        lin = srgb_to_linear(np.array(patch.srgb)).astype(np.float32)
        scene[patch.top : patch.bottom, patch.left : patch.right] = lin
    return np.clip(scene, 0.0, 1.0, out=scene)


def _to_sensor(upright: NDArray[np.float32], orientation: int) -> NDArray[np.float32]:
    """Lay an upright picture on the sensor the way a camera held that way would see it.

    TIFF Orientation says how to turn the stored rows into the upright picture; this is the
    inverse, so developing with the tag applied gives the upright picture back.
    """
    if orientation == 6:  # displayed by turning 90° clockwise, so stored turned anticlockwise
        sensor = np.rot90(upright, 1)
    elif orientation == 8:
        sensor = np.rot90(upright, -1)
    elif orientation == 3:
        sensor = upright[::-1, ::-1]
    elif orientation == 2:
        sensor = upright[:, ::-1]
    elif orientation == 4:
        sensor = upright[::-1, :]
    elif orientation == 5:
        sensor = upright.transpose(1, 0, 2)
    elif orientation == 7:
        sensor = upright[::-1, ::-1].transpose(1, 0, 2)
    else:
        return upright
    return np.ascontiguousarray(sensor)


def _mosaic(
    scene: NDArray[np.float32],
    neutral: NDArray[np.float64],
    rng: np.random.Generator,
    *,
    to_camera: NDArray[np.float64] = _CAMERA_FROM_SRGB,
    scene_white: NDArray[np.float64] | None = None,
    exposure: float = EXPOSURE,
) -> NDArray[np.uint16]:
    """Linear scene -> 14-bit RGGB Bayer data with black level and sensor noise.

    The scene is linear sRGB (or, with `to_camera` CAMERA_MATRIX, CIE XYZ) with colours as
    under D65; the light's colour (`neutral`) scales each camera channel, which is exactly
    what the developer's as-shot white balance undoes. Scene white lands at `exposure` of
    the sensor's range.
    """
    height, width = scene.shape[:2]
    camera_from_scene = (neutral / CAMERA_NEUTRAL)[:, None] * to_camera
    white_in = np.ones(3) if scene_white is None else scene_white
    white = camera_from_scene @ white_in
    scale = exposure * (WHITE_LEVEL - BLACK_LEVEL) / white.max()
    cfa = np.empty((height, width), dtype=np.float32)
    # Only the colour each photosite sees is computed: a quarter of the work of a full
    # camera-space image.
    sites = {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 2}
    for (dy, dx), channel in sites.items():
        rgb = scene[dy::2, dx::2]
        weights = (camera_from_scene[channel] * scale).astype(np.float32)
        cfa[dy::2, dx::2] = rgb @ weights
    np.maximum(cfa, 0.0, out=cfa)
    # Shot noise (Poisson, as Gaussian at these counts) plus read noise.
    sigma = np.sqrt(cfa / GAIN_E_PER_DN + READ_NOISE_DN**2)
    cfa += sigma * rng.standard_normal(cfa.shape, dtype=np.float32)
    cfa += BLACK_LEVEL
    return np.clip(cfa, 0, WHITE_LEVEL, out=cfa).astype(np.uint16)


@dataclass(frozen=True)
class Capture:
    """What a camera writes about a shot besides the picture, for the metadata tests.

    Every field is optional, as in real files; `gps` is (latitude, longitude, altitude m),
    signed degrees.
    """

    artist: str | None = None
    copyright: str | None = None
    lens_make: str | None = None
    lens_model: str | None = None
    exposure_time: Fraction | None = None
    f_number: Fraction | None = None
    iso: int | None = None
    focal_length: Fraction | None = None
    gps: tuple[float, float, float] | None = None


def _dms(degrees: float) -> list[Fraction]:
    value = abs(degrees)
    whole = int(value)
    minutes = int((value - whole) * 60)
    seconds = Fraction(round((value - whole - minutes / 60) * 3600 * 1000), 1000)
    return [Fraction(whole), Fraction(minutes), seconds]


def _gps_ifd(latitude: float, longitude: float, altitude: float) -> tiff.Ifd:
    ifd = tiff.Ifd()
    ifd.add(0x0000, tiff.BYTE, bytes([2, 3, 0, 0]))  # GPSVersionID
    ifd.add(0x0001, tiff.ASCII, "N" if latitude >= 0 else "S")
    ifd.add(0x0002, tiff.RATIONAL, _dms(latitude))
    ifd.add(0x0003, tiff.ASCII, "E" if longitude >= 0 else "W")
    ifd.add(0x0004, tiff.RATIONAL, _dms(longitude))
    ifd.add(0x0005, tiff.BYTE, bytes([0 if altitude >= 0 else 1]))
    ifd.add(0x0006, tiff.RATIONAL, [Fraction(abs(altitude)).limit_denominator(100)])
    return ifd


def _rationals(values: NDArray[np.float64] | list[float], denominator: int = 10000) -> list:
    return [Fraction(round(float(v) * denominator), denominator) for v in values]


def _encode_dng(
    cfa: NDArray[np.uint16],
    *,
    neutral: NDArray[np.float64],
    orientation: int,
    make: str,
    model: str,
    capture_time: datetime | None,
    capture: Capture | None = None,
) -> bytes:
    """An uncompressed CFA DNG (1.4) with its EXIF and, when given, GPS IFDs."""
    height, width = cfa.shape
    capture = capture or Capture()
    ifd = tiff.Ifd(strip=cfa.astype("<u2").tobytes())
    ifd.add(254, tiff.LONG, [0])  # NewSubFileType: the main image
    ifd.add(256, tiff.LONG, [width]).add(257, tiff.LONG, [height])
    # 14-bit samples in 16-bit words, as Adobe DNG Converter writes them.
    ifd.add(258, tiff.SHORT, [16]).add(259, tiff.SHORT, [1])
    ifd.add(262, tiff.SHORT, [32803])  # PhotometricInterpretation: CFA
    ifd.add(271, tiff.ASCII, make).add(272, tiff.ASCII, model)
    ifd.add(274, tiff.SHORT, [orientation])
    ifd.add(277, tiff.SHORT, [1]).add(278, tiff.LONG, [height]).add(284, tiff.SHORT, [1])
    ifd.add(33421, tiff.SHORT, [2, 2])  # CFARepeatPatternDim
    ifd.add(33422, tiff.BYTE, bytes([0, 1, 1, 2]))  # CFAPattern: RGGB
    ifd.add(50706, tiff.BYTE, bytes([1, 4, 0, 0]))  # DNGVersion
    ifd.add(50707, tiff.BYTE, bytes([1, 2, 0, 0]))  # DNGBackwardVersion
    ifd.add(50708, tiff.ASCII, f"{make} {model}")  # UniqueCameraModel
    ifd.add(50714, tiff.LONG, [BLACK_LEVEL]).add(50717, tiff.LONG, [WHITE_LEVEL])
    ifd.add(50721, tiff.SRATIONAL, _rationals(CAMERA_MATRIX.ravel()))  # ColorMatrix1
    ifd.add(50778, tiff.SHORT, [21])  # CalibrationIlluminant1: D65
    ifd.add(50728, tiff.RATIONAL, _rationals(neutral))  # AsShotNeutral
    if capture.artist:
        ifd.add(315, tiff.ASCII, capture.artist)
    if capture.copyright:
        ifd.add(33432, tiff.ASCII, capture.copyright)
    exif = tiff.Ifd()
    if capture_time is not None:
        stamp = capture_time.strftime("%Y:%m:%d %H:%M:%S")
        ifd.add(306, tiff.ASCII, stamp)  # DateTime
        exif.add(0x9003, tiff.ASCII, stamp)  # DateTimeOriginal
    if capture.exposure_time is not None:
        exif.add(0x829A, tiff.RATIONAL, [capture.exposure_time])
    if capture.f_number is not None:
        exif.add(0x829D, tiff.RATIONAL, [capture.f_number])
    if capture.iso is not None:
        exif.add(0x8827, tiff.SHORT, [capture.iso])
    if capture.focal_length is not None:
        exif.add(0x920A, tiff.RATIONAL, [capture.focal_length])
    if capture.lens_make:
        exif.add(0xA433, tiff.ASCII, capture.lens_make)
    if capture.lens_model:
        exif.add(0xA434, tiff.ASCII, capture.lens_model)
    if exif.entries:
        ifd.children[tiff.EXIF_IFD] = exif
    if capture.gps is not None:
        ifd.children[tiff.GPS_IFD] = _gps_ifd(*capture.gps)
    return tiff.write_tiff(ifd)


def _write_atomic(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def write_dng(
    path: Path,
    *,
    width: int = 1200,
    height: int = 800,
    seed: int = 0,
    orientation: int = 1,
    make: str = "Darkroom",
    model: str = "Synthetic 1",
    capture_time: datetime | None = None,
    capture: Capture | None = None,
) -> Path:
    """Write a synthetic RAW of a seeded scene, as a camera would.

    `width` x `height` is the sensor; `orientation` is the TIFF Orientation tag (6: the
    camera was turned for a portrait). The developed, upright picture is
    render_scene(*upright_size(width, height, orientation), seed), so a developer that
    ignores or misreads the tag shows a sideways or upside-down scene.
    """
    if width < 64 or height < 64:
        # Below this the colour checker no longer fits the frame.
        raise ValueError(f"a fixture must be at least 64x64 pixels, got {width}x{height}")
    if orientation not in range(1, 9):
        raise ValueError(f"orientation must be a TIFF Orientation value 1..8, got {orientation}")
    scene = _to_sensor(render_scene(*upright_size(width, height, orientation), seed), orientation)
    neutral = as_shot_neutral(seed)
    cfa = _mosaic(scene, neutral, np.random.default_rng([seed, 2]))
    del scene
    data = _encode_dng(
        cfa,
        neutral=neutral,
        orientation=orientation,
        make=make,
        model=model,
        capture_time=capture_time,
        capture=capture,
    )
    return _write_atomic(Path(path), data)


def make_demo_shoot(dir: Path, count: int = 4, width: int = 1600, height: int = 1066) -> list[Path]:
    """A small shoot: DRM_0001.dng, ...; frames 2, 5, 8, ... (or a lone frame) are portraits."""
    base = datetime(2024, 5, 17, 14, 30, 0)
    paths = []
    for i in range(1, count + 1):
        paths.append(
            write_dng(
                Path(dir) / f"DRM_{i:04d}.dng",
                width=width,
                height=height,
                seed=i,
                orientation=6 if i % 3 == 2 or count == 1 else 1,
                capture_time=base + timedelta(seconds=7 * i),
            )
        )
    return paths


# D65 white in CIE XYZ (Y = 1), for scenes given in XYZ.
D65_XYZ = np.array([0.95047, 1.0, 1.08883])
# The chart is shot as a camera's meter would: scene white at half the sensor's range,
# leaving the highlight headroom real exposures keep (so middle grey is well below the
# developed image's middle grey until the developer places it).
CHART_EXPOSURE = 0.5
CHART_COLUMNS = 6
# The backdrop a chart is photographed on: a neutral of 18% reflectance.
BACKDROP_Y = 0.18


def chart_patches(width: int, height: int, count: int = 24) -> list[Patch]:
    """Where write_chart_dng puts its patches, in upright image coordinates (row-major)."""
    rows = -(-count // CHART_COLUMNS)
    cell = min(width * 0.8 / CHART_COLUMNS, height * 0.8 / rows)
    gap = max(2, int(cell / 8))
    size = int(cell) - gap
    x0 = (width - CHART_COLUMNS * int(cell)) // 2
    y0 = (height - rows * int(cell)) // 2
    patches = []
    for i in range(count):
        r, c = divmod(i, CHART_COLUMNS)
        left, top = x0 + c * int(cell), y0 + r * int(cell)
        patches.append(Patch(f"patch_{i + 1:02d}", (0, 0, 0), left, top, left + size, top + size))
    return patches


def write_chart_dng(
    path: Path,
    patches_xyz: NDArray[np.floating],
    *,
    width: int = 1536,
    height: int = 1024,
    seed: int = 0,
    orientation: int = 1,
    exposure: float = CHART_EXPOSURE,
    make: str = "Darkroom",
    model: str = "Chart 1",
    capture_time: datetime | None = None,
    capture: Capture | None = None,
) -> Path:
    """A RAW of a colour chart: each patch a CIE XYZ colour (D65, white Y = 1), row-major in
    rows of six, on a neutral 18% backdrop, shot under the seed's light.

    The scene goes through the camera matrix in the DNG's own ColorMatrix1, so a developer
    that applies the DNG's matrix and as-shot white balance gets the patches' colours back.
    """
    xyz = np.asarray(patches_xyz, dtype=np.float32).reshape(-1, 3)
    upright_w, upright_h = upright_size(width, height, orientation)
    scene = np.empty((upright_h, upright_w, 3), dtype=np.float32)
    scene[:] = (D65_XYZ * BACKDROP_Y).astype(np.float32)
    for patch, colour in zip(chart_patches(upright_w, upright_h, len(xyz)), xyz, strict=True):
        scene[patch.top : patch.bottom, patch.left : patch.right] = colour
    neutral = as_shot_neutral(seed)
    cfa = _mosaic(
        _to_sensor(scene, orientation),
        neutral,
        np.random.default_rng([seed, 4]),
        to_camera=CAMERA_MATRIX,
        scene_white=D65_XYZ,
        exposure=exposure,
    )
    data = _encode_dng(
        cfa,
        neutral=neutral,
        orientation=orientation,
        make=make,
        model=model,
        capture_time=capture_time,
        capture=capture,
    )
    return _write_atomic(Path(path), data)


def write_photo_dng(
    path: Path,
    srgb: NDArray[np.uint8],
    *,
    seed: int = 0,
    make: str = "Darkroom",
    model: str = "Photo 1",
) -> Path:
    """A RAW of a real photograph: its 8-bit sRGB pixels taken back to linear light and
    mosaiced like any scene, so the benchmark decodes real image content at real size."""
    height, width = srgb.shape[:2]
    # Row by row in bands: a 24 MP float copy of the whole frame is 288 MB.
    scene = np.empty((height, width, 3), dtype=np.float32)
    lut = srgb_to_linear(np.arange(256, dtype=np.float64)).astype(np.float32)
    for top in range(0, height, 512):
        scene[top : top + 512] = lut[srgb[top : top + 512, :, :3]]
    neutral = as_shot_neutral(seed)
    cfa = _mosaic(scene, neutral, np.random.default_rng([seed, 2]))
    del scene
    data = _encode_dng(
        cfa, neutral=neutral, orientation=1, make=make, model=model, capture_time=None
    )
    return _write_atomic(Path(path), data)


CorruptKind = Literal["truncated", "garbage", "empty", "blank", "stripped"]
# Share of photosites a "stripped" frame still holds a stray value in: too few to be a
# picture, enough (above 1 in 1000) that the developed frame is not simply black.
STRAY_SHARE = 0.003


def write_corrupt_raw(path: Path, kind: CorruptKind) -> Path:
    """A file that must fail to develop, of the given kind of damage.

    "blank" and "stripped" are valid DNGs that LibRaw decodes without error: a frame of
    nothing but the black level, and one whose pixel data was cut out and left as zeros
    (far below the black level) bar a few stray values, as a tool that strips image data
    leaves a real camera file. Brightened, the stray values become a sparse garbage pattern.
    """
    path = Path(path)
    if kind == "empty":
        return _write_atomic(path, b"")
    if kind == "garbage":
        return _write_atomic(path, np.random.default_rng(7).bytes(64 * 1024))
    if kind == "truncated":
        data = _encode_dng(
            _mosaic(render_scene(640, 480, 7), as_shot_neutral(7), np.random.default_rng(7)),
            neutral=as_shot_neutral(7),
            orientation=1,
            make="Darkroom",
            model="Synthetic 1",
            capture_time=None,
        )
        # Header and tags intact, most of the pixel data missing: a failed upload.
        return _write_atomic(path, data[: len(data) // 3])
    if kind == "blank":
        cfa = np.full((480, 640), BLACK_LEVEL, dtype=np.uint16)
    elif kind == "stripped":
        rng = np.random.default_rng(7)
        cfa = np.zeros((480, 640), dtype=np.uint16)
        stray = rng.random(cfa.shape) < STRAY_SHARE
        cfa[stray] = rng.integers(0, WHITE_LEVEL + 1, int(stray.sum()))
    else:
        raise ValueError(f"unknown kind of corrupt RAW: {kind!r}")
    data = _encode_dng(
        cfa,
        neutral=as_shot_neutral(7),
        orientation=1,
        make="Darkroom",
        model="Synthetic 1",
        capture_time=None,
    )
    return _write_atomic(path, data)
