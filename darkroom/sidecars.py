"""XMP sidecars: the photographer's own decisions, carried from Lightroom or darktable.

Photographers cull and make basic adjustments in Lightroom / Camera Raw or darktable,
which write them beside the RAW: `IMG_0001.xmp` (Lightroom, Camera Raw) or
`IMG_0001.CR3.xmp` (darktable). A sidecar pairs with its RAW by name and is never a file
of the job itself: it changes how that RAW develops.

What is honoured:
- Lightroom / Camera Raw (`crs:`): crop and straightening angle, exposure
  (Exposure2012), white balance (As Shot, or Custom temperature and tint), orientation.
- darktable (`darktable:history`): the enabled exposure, crop and white balance
  (temperature) modules' parameters, and orientation.
- Both: a rating of -1, or darktable's rejected flag, skips the file (listed as skipped,
  not failed).

Anything else in a sidecar (local adjustments, tone curves, presets) is not applied; the
manifest says which settings came from a sidecar. Parsing goes through defusedxml: a
sidecar is the client's file, and XML from a client can be hostile (entity expansion).
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Any

SIDECAR_EXTENSION = ".xmp"
# Real sidecars are a few KB (darktable's with a long history, some hundreds).
MAX_SIDECAR_BYTES = 1024 * 1024

_NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "crs": "http://ns.adobe.com/camera-raw-settings/1.0/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "tiff": "http://ns.adobe.com/tiff/1.0/",
    "darktable": "http://darktable.sf.net/",
}
# darktable's image flag for "rejected" (DT_IMAGE_REJECTED).
_DT_REJECTED = 8


class SidecarError(ValueError):
    """A sidecar that cannot be read; the RAW fails with this reason (never silently
    developed without what the photographer decided)."""


def is_sidecar(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() == SIDECAR_EXTENSION


def sidecar_for(raw_name: str, names: Iterable[str]) -> str | None:
    """The sidecar among `names` that belongs to `raw_name`: darktable's `<name>.xmp`
    first (it names one RAW exactly), then Lightroom's `<stem>.xmp`; case-insensitive."""
    return _sidecar_in(raw_name, _by_lower(names))


def _by_lower(names: Iterable[str]) -> dict[str, str]:
    return {n.lower(): n for n in names if is_sidecar(n)}


def _sidecar_in(raw_name: str, by_lower: Mapping[str, str]) -> str | None:
    for candidate in (f"{raw_name}.xmp", f"{PurePosixPath(raw_name).stem}.xmp"):
        if candidate.lower() in by_lower:
            return by_lower[candidate.lower()]
    return None


def pair(names: Iterable[str], is_raw: Callable[[str], bool]) -> tuple[dict[str, str], list[str]]:
    """RAW name -> its sidecar, and the sidecars no RAW among `names` claims."""
    listed = list(names)
    by_lower = _by_lower(listed)
    paired: dict[str, str] = {}
    for raw in listed:
        if is_raw(raw) and (sidecar := _sidecar_in(raw, by_lower)) is not None:
            paired[raw] = sidecar
    claimed = set(paired.values())
    return paired, sorted(n for n in listed if is_sidecar(n) and n not in claimed)


@dataclass(frozen=True)
class Crop:
    """Normalised to the picture before orientation (0..1; left < right, top < bottom),
    and the straightening angle in degrees (positive: clockwise, as Lightroom's)."""

    left: float
    top: float
    right: float
    bottom: float
    angle: float = 0.0


@dataclass(frozen=True)
class Sidecar:
    """What one sidecar asks of its RAW's development."""

    source: str  # "Lightroom" or "darktable"
    rating: int | None = None
    rejected: bool = False
    orientation: int | None = None  # TIFF Orientation 1..8
    exposure_ev: float | None = None
    white_balance: str | None = None  # "as shot", or None for "not said"
    temperature: float | None = None
    tint: float | None = None
    multipliers: tuple[float, float, float] | None = None
    crop: Crop | None = None
    ignored: tuple[str, ...] = field(default_factory=tuple)

    @property
    def skips(self) -> bool:
        return self.rejected or self.rating == -1

    def applied(self) -> list[str]:
        """The settings taken from the sidecar, in words, for the manifest."""
        said = []
        if self.crop is not None:
            angle = f", straightened {self.crop.angle:+g}°" if self.crop.angle else ""
            said.append(f"crop{angle}")
        if self.exposure_ev is not None:
            said.append(f"exposure {self.exposure_ev:+g} EV")
        if self.temperature is not None:
            said.append(f"white balance {self.temperature:g} K, tint {self.tint or 0:+g}")
        elif self.multipliers is not None:
            said.append("white balance multipliers")
        elif self.white_balance == "as shot":
            said.append("white balance as shot")
        if self.orientation is not None:
            said.append(f"orientation {self.orientation}")
        return said


def _local(tag: str) -> tuple[str, str]:
    namespace, _, name = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return namespace, name


def _properties(root: Any) -> dict[tuple[str, str], Any]:
    """Every property of every rdf:Description, whether written as an attribute (Adobe's
    habit) or as a child element (also valid XMP; exiftool writes it)."""
    found: dict[tuple[str, str], Any] = {}
    for description in root.iter(f"{{{_NS['rdf']}}}Description"):
        for key, value in description.attrib.items():
            found.setdefault(_local(key), value)
        for child in description:
            key = _local(child.tag)
            text = (child.text or "").strip()
            found.setdefault(key, text if text or len(child) == 0 else child)
    return found


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(str(value).strip())
    except ValueError as exc:
        raise SidecarError(f"{what}: not a number ({str(value)[:40]!r})") from exc
    if number != number or number in (float("inf"), float("-inf")):
        raise SidecarError(f"{what}: not a finite number")
    return number


def parse_sidecar(data: bytes) -> Sidecar:
    """The decisions a sidecar records; SidecarError when it is not a readable XMP."""
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    if len(data) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"sidecar larger than {MAX_SIDECAR_BYTES} bytes")
    try:
        root = ElementTree.fromstring(data)
    except DefusedXmlException as exc:
        raise SidecarError(f"sidecar refused: {type(exc).__name__}") from exc
    except Exception as exc:  # ParseError and whatever a broken encoding raises
        raise SidecarError(f"sidecar is not valid XML ({exc})") from exc
    props = _properties(root)
    crs, xmp, tiff, dt = (_NS[p] for p in ("crs", "xmp", "tiff", "darktable"))
    rating = _number(props.get((xmp, "Rating")), "xmp:Rating")
    orientation = _number(props.get((tiff, "Orientation")), "tiff:Orientation")
    common: dict[str, Any] = {
        "rating": int(rating) if rating is not None else None,
        # Turns only: a mirrored orientation (2, 4, 5, 7) is not something LibRaw can do.
        "orientation": int(orientation) if orientation in _TURNS else None,
    }
    history = props.get((dt, "history"))
    if history is not None or any(ns == dt for ns, _ in props):
        sidecar = _darktable(props, history, common)
    else:
        sidecar = _lightroom(props, crs, common)
    if orientation is not None and orientation not in _TURNS:
        mirrored = f"tiff:Orientation {orientation:g} (mirrored)"
        return replace(sidecar, ignored=(*sidecar.ignored, mirrored))
    return sidecar


_TURNS = (1, 3, 6, 8)


def _lightroom(props: Mapping[tuple[str, str], Any], crs: str, common: dict[str, Any]) -> Sidecar:
    def get(name: str) -> Any:
        return props.get((crs, name))

    settings: dict[str, Any] = {}
    exposure = _number(get("Exposure2012"), "crs:Exposure2012")
    if exposure is None:
        exposure = _number(get("Exposure"), "crs:Exposure")
    if exposure is not None:
        settings["exposure_ev"] = max(-5.0, min(5.0, exposure))
    balance = str(get("WhiteBalance") or "").strip().lower()
    temperature = _number(get("Temperature"), "crs:Temperature")
    if balance == "as shot":
        settings["white_balance"] = "as shot"
    elif temperature is not None and balance not in ("auto",):
        settings["temperature"] = max(1700.0, min(25000.0, temperature))
        tint = _number(get("Tint"), "crs:Tint")
        settings["tint"] = max(-150.0, min(150.0, tint or 0.0))
    if str(get("HasCrop") or "").strip().lower() == "true":
        edges = [_number(get(f"Crop{side}"), f"crs:Crop{side}") for side in _SIDES]
        if all(e is not None for e in edges):
            top, left, bottom, right = (float(e) for e in edges if e is not None)
            angle = _number(get("CropAngle"), "crs:CropAngle") or 0.0
            settings["crop"] = _crop(left, top, right, bottom, angle)
    ignored = tuple(
        sorted(
            name
            for ns, name in props
            if ns == crs
            and name in _LIGHTROOM_NOT_APPLIED
            and str(props[(ns, name)]) not in ("0", "+0")
        )
    )
    return Sidecar(source="Lightroom", ignored=ignored, **common, **settings)


_SIDES = ("Top", "Left", "Bottom", "Right")
# Global adjustments a photographer may expect, which darkroom does not apply (named in
# the manifest when a sidecar sets them).
_LIGHTROOM_NOT_APPLIED = frozenset(
    {
        "Contrast2012",
        "Highlights2012",
        "Shadows2012",
        "Whites2012",
        "Blacks2012",
        "Clarity2012",
        "Vibrance",
        "Saturation",
        "Texture",
        "Dehaze",
    }
)


def _crop(left: float, top: float, right: float, bottom: float, angle: float) -> Crop | None:
    left, right = max(0.0, min(left, right)), min(1.0, max(left, right))
    top, bottom = max(0.0, min(top, bottom)), min(1.0, max(top, bottom))
    if right - left < 0.01 or bottom - top < 0.01:
        raise SidecarError("crop leaves less than 1% of the picture")
    if (left, top, right, bottom) == (0.0, 0.0, 1.0, 1.0) and not angle:
        return None
    return Crop(left, top, right, bottom, max(-45.0, min(45.0, angle)))


def _darktable(
    props: Mapping[tuple[str, str], Any], history: Any, common: dict[str, Any]
) -> Sidecar:
    dt = _NS["darktable"]
    settings: dict[str, Any] = {}
    flags = _number(props.get((dt, "image_flags")), "darktable:image_flags")
    if flags is not None and int(flags) & _DT_REJECTED:
        settings["rejected"] = True
    end = _number(props.get((dt, "history_end")), "darktable:history_end")
    ignored: list[str] = []
    if history is not None and not isinstance(history, str):
        items = list(history.iter(f"{{{_NS['rdf']}}}li"))
        if end is not None:
            items = items[: int(end)]
        # The last enabled instance of each module is what darktable applies.
        latest: dict[str, Any] = {}
        for item in items:
            operation = item.attrib.get(f"{{{dt}}}operation")
            if operation:
                latest[operation] = item
        for operation, item in latest.items():
            if item.attrib.get(f"{{{dt}}}enabled") != "1":
                continue
            params = item.attrib.get(f"{{{dt}}}params", "")
            if operation == "exposure":
                settings["exposure_ev"] = max(-5.0, min(5.0, _dt_exposure(params)))
            elif operation == "crop":
                settings["crop"] = _dt_crop(params)
            elif operation == "temperature":
                settings["multipliers"] = _dt_multipliers(params)
            elif operation not in _DT_DEFAULT_MODULES:
                ignored.append(operation)
    return Sidecar(source="darktable", ignored=tuple(sorted(ignored)), **common, **settings)


# Modules darktable enables on every RAW by itself: their defaults are darkroom's too.
_DT_DEFAULT_MODULES = frozenset(
    {
        "rawprepare",
        "demosaic",
        "colorin",
        "colorout",
        "gamma",
        "highlights",
        "flip",
        "dither",
        "filmicrgb",
        "sigmoid",
        "channelmixerrgb",
        "colorbalancergb",
        "mask_manager",
    }
)


def _dt_params(params: str) -> bytes:
    """darktable's module parameters: hex, or "gz" + two digits + base64 of zlib data."""
    try:
        if params.startswith("gz"):
            return zlib.decompress(base64.b64decode(params[4:]))
        return bytes.fromhex(params)
    except (ValueError, zlib.error) as exc:
        raise SidecarError(f"darktable parameters cannot be decoded ({exc})") from exc


def _dt_exposure(params: str) -> float:
    # dt_iop_exposure_params_t: mode (int), black (float), exposure (float), ...
    data = _dt_params(params)
    if len(data) < 12:
        raise SidecarError("darktable exposure parameters are too short")
    # float32: rounded to what a person typed, not its binary neighbour.
    return round(float(struct.unpack_from("<iff", data)[2]), 4)


def _dt_crop(params: str) -> Crop | None:
    # dt_iop_crop_params_t: cx, cy, cw, ch (floats; cw, ch are the right and bottom edges).
    data = _dt_params(params)
    if len(data) < 16:
        raise SidecarError("darktable crop parameters are too short")
    left, top, right, bottom = (round(v, 6) for v in struct.unpack_from("<ffff", data))
    return _crop(left, top, right, bottom, 0.0)


def _dt_multipliers(params: str) -> tuple[float, float, float]:
    # dt_iop_temperature_params_t: red, green, blue, g2 (floats: raw multipliers).
    data = _dt_params(params)
    if len(data) < 12:
        raise SidecarError("darktable white balance parameters are too short")
    red, green, blue = (round(v, 6) for v in struct.unpack_from("<fff", data))
    if not all(0 < v < 100 for v in (red, green, blue)):
        raise SidecarError("darktable white balance multipliers out of range")
    return (red / green, 1.0, blue / green)
