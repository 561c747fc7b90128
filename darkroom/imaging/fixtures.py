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
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pidng.core import RAW2DNG
from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, PhotometricInterpretation
from pidng.dng import DNGTags, Tag

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
    scene: NDArray[np.float32], neutral: NDArray[np.float64], rng: np.random.Generator
) -> NDArray[np.uint16]:
    """Linear sRGB scene -> 14-bit RGGB Bayer data with black level and sensor noise.

    The scene's colours are as under D65; the light's colour (`neutral`) scales each camera
    channel, which is exactly what the developer's as-shot white balance undoes.
    """
    height, width = scene.shape[:2]
    camera_from_srgb = (neutral / CAMERA_NEUTRAL)[:, None] * _CAMERA_FROM_SRGB
    white = camera_from_srgb.sum(axis=1)
    scale = EXPOSURE * (WHITE_LEVEL - BLACK_LEVEL) / white.max()
    cfa = np.empty((height, width), dtype=np.float32)
    # Only the colour each photosite sees is computed: a quarter of the work of a full
    # camera-space image.
    sites = {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 2}
    for (dy, dx), channel in sites.items():
        rgb = scene[dy::2, dx::2]
        weights = (camera_from_srgb[channel] * scale).astype(np.float32)
        cfa[dy::2, dx::2] = rgb @ weights
    np.maximum(cfa, 0.0, out=cfa)
    # Shot noise (Poisson, as Gaussian at these counts) plus read noise.
    sigma = np.sqrt(cfa / GAIN_E_PER_DN + READ_NOISE_DN**2)
    cfa += sigma * rng.standard_normal(cfa.shape, dtype=np.float32)
    cfa += BLACK_LEVEL
    return np.clip(cfa, 0, WHITE_LEVEL, out=cfa).astype(np.uint16)


def _rational(value: float, denominator: int = 10000) -> list[int]:
    return [round(value * denominator), denominator]


def _encode_dng(
    cfa: NDArray[np.uint16],
    *,
    neutral: NDArray[np.float64],
    orientation: int,
    make: str,
    model: str,
    capture_time: datetime | None,
) -> bytes:
    height, width = cfa.shape
    tags = DNGTags()
    tags.set(Tag.ImageWidth, width)
    tags.set(Tag.ImageLength, height)
    # pidng writes the image as a single tile.
    tags.set(Tag.TileWidth, width)
    tags.set(Tag.TileLength, height)
    tags.set(Tag.Orientation, orientation)
    tags.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    tags.set(Tag.SamplesPerPixel, 1)
    # 14-bit samples in 16-bit words, as Adobe DNG Converter writes them.
    tags.set(Tag.BitsPerSample, 16)
    tags.set(Tag.CFARepeatPatternDim, [2, 2])
    tags.set(Tag.CFAPattern, CFAPattern.RGGB)
    tags.set(Tag.BlackLevel, BLACK_LEVEL)
    tags.set(Tag.WhiteLevel, WHITE_LEVEL)
    tags.set(Tag.ColorMatrix1, [_rational(v) for v in CAMERA_MATRIX.flat])
    tags.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
    tags.set(Tag.AsShotNeutral, [_rational(v) for v in neutral])
    tags.set(Tag.Make, make)
    tags.set(Tag.Model, model)
    tags.set(Tag.UniqueCameraModel, f"{make} {model}")
    tags.set(Tag.DNGVersion, DNGVersion.V1_4)
    tags.set(Tag.DNGBackwardVersion, DNGVersion.V1_2)
    if capture_time is not None:
        stamp = capture_time.strftime("%Y:%m:%d %H:%M:%S")
        # pidng writes one IFD; TIFF/EP allows DateTimeOriginal there and LibRaw reads it.
        tags.set(Tag.DateTime, stamp)
        tags.set(Tag.DateTimeOriginal, stamp)
    writer = RAW2DNG()
    writer.options(tags, path="", compress=False)
    return bytes(writer.convert(cfa))


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


CorruptKind = Literal["truncated", "garbage", "empty", "blank"]


def write_corrupt_raw(path: Path, kind: CorruptKind) -> Path:
    """A file that must fail to develop, of the given kind of damage."""
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
        data = _encode_dng(
            cfa,
            neutral=as_shot_neutral(7),
            orientation=1,
            make="Darkroom",
            model="Synthetic 1",
            capture_time=None,
        )
        return _write_atomic(path, data)
    raise ValueError(f"unknown kind of corrupt RAW: {kind!r}")
