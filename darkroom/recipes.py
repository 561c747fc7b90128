"""Recipes: how a job develops every RAW file, and which renditions it makes of each.

A recipe travels as JSON (in the upload manifest, the job record and the processed
manifest), so parsing is strict and its errors name the offending field the way a user
wrote it: ``recipe.renditions[1].quality: must be between 1 and 100``.

Every field has a default, so ``{}`` is the default recipe: camera white balance,
automatic exposure, clipped highlights, sRGB, GPS stripped, and three renditions (web,
thumb, full).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from darkroom.filenames import DEFAULT_TEMPLATE, template_problem
from darkroom.keys import ASSET_NAME

NAME_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")
# JPEG cannot encode a side longer than this (WebP's limit is lower: checked per format).
MAX_LONG_EDGE = 65_535
MAX_WEBP_EDGE = 16_383
# Beyond a few stops a RAW's shadows are noise and its highlights are gone.
MAX_COMPENSATION_EV = 5.0
# White balance multipliers far outside this are a typo, not a light source.
MULTIPLIER_RANGE = (0.05, 20.0)
# A light's temperature (kelvin) and tint (Adobe's units) as Lightroom and Camera Raw accept.
KELVIN_RANGE = (1700.0, 25000.0)
TINT_RANGE = (-150.0, 150.0)

# Renditions per recipe: each is an output of every file, and a file's item records them.
MAX_RENDITIONS = 8
# What a client's gallery calls a rendition the recipe gives no label; any other name is
# shown as written, capitalised.
DEFAULT_LABELS = {"web": "Web", "full": "Full resolution", "thumb": "Thumbnail"}
MAX_LABEL_LENGTH = 40

# How many problems a recipe error names in full; it counts the rest.
MAX_NAMED_PROBLEMS = 5

Format = Literal["jpeg", "webp", "tiff"]
Sharpen = Literal["none", "screen", "print"]
_EXTENSIONS: dict[str, str] = {"jpeg": "jpg", "webp": "webp", "tiff": "tif"}
_CONTENT_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "webp": "image/webp", "tiff": "image/tiff"}


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the field and what is wrong."""


def shorten(text: str, limit: int = 60) -> str:
    """Text as an error message quotes it: a hostile field name can be megabytes long."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reject_bool_and_str(value: Any, what: str) -> Any:
    # Plain pydantic would take True as 1 and "90" as 90; a recipe says what it means.
    # Integral floats and Decimals (JSON, DynamoDB) still pass.
    if isinstance(value, bool | str):
        raise ValueError(f"must be {what}, got {shorten(repr(value))}")
    return value


def _segment(value: str, pattern: re.Pattern[str], lead: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(
            f"{lead}1-32 characters of lowercase letters, digits, '_' or '-' "
            f"(got {shorten(repr(value))})"
        )
    return value


def _plain_number(value: float) -> float | int:
    # Integral values travel as JSON integers: DynamoDB's serializer refuses Python floats.
    return int(value) if float(value).is_integer() else value


class Rendition(BaseModel):
    """One output of every developed file: a named size, format and quality."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    long_edge: int | Literal["full"] = 2048
    format: Format = "jpeg"
    # JPEG and WebP only; TIFF renditions are lossless 16-bit.
    quality: int = 90
    # Output sharpening after the resize, as Lightroom's export does: "screen" for a
    # downscaled rendition, "none" for full size (and for TIFF masters) unless given.
    sharpen: Sharpen = "screen"
    # What the client's gallery calls it ("Web", "Print size"); DEFAULT_LABELS when absent.
    label: str | None = None

    @field_validator("long_edge", "quality", mode="before")
    @classmethod
    def _whole_number(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name == "long_edge":
            if value == "full":
                return value
            return _reject_bool_and_str(value, 'a whole number of pixels or "full"')
        return _reject_bool_and_str(value, "a whole number")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        # The name becomes a directory and an S3 key segment.
        return _segment(value, NAME_PATTERN, "must be ")

    @field_validator("label")
    @classmethod
    def _check_label(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # Shown on a page to people: one line of printable text.
        value = " ".join(value.split())
        if not 1 <= len(value) <= MAX_LABEL_LENGTH:
            raise ValueError(f"must be 1-{MAX_LABEL_LENGTH} characters of text")
        if any(unicodedata.category(c).startswith("C") for c in value):
            raise ValueError("must be printable text (no control characters)")
        return value

    @field_validator("long_edge")
    @classmethod
    def _check_long_edge(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= MAX_LONG_EDGE:
            raise ValueError(f'must be between 1 and {MAX_LONG_EDGE} pixels, or "full"')
        return value

    @field_validator("quality")
    @classmethod
    def _check_quality(cls, value: int) -> int:
        if not 1 <= value <= 100:
            raise ValueError("must be between 1 and 100")
        return value

    @model_validator(mode="after")
    def _check_format_limits(self) -> Rendition:
        if (
            self.format == "webp"
            and isinstance(self.long_edge, int)
            and self.long_edge > MAX_WEBP_EDGE
        ):
            raise ValueError(f"long_edge: WebP cannot encode a side over {MAX_WEBP_EDGE} pixels")
        if self.format == "tiff" and self.sharpen not in (None, "none"):
            raise ValueError("sharpen: TIFF renditions are masters and are never sharpened")
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_sharpen(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("sharpen") is None:
            full = data.get("long_edge") == "full" or data.get("format") == "tiff"
            return {**data, "sharpen": "none" if full else "screen"}
        return data

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.format]

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self.format]

    @property
    def bits(self) -> int:
        return 16 if self.format == "tiff" else 8


class WhiteBalance(BaseModel):
    """camera: the as-shot balance the camera recorded (auto when it recorded none, as
    LibRaw does); auto: grey world over the frame; fixed: the recipe's own red, green, blue
    multipliers (relative; only ratios matter), or a light's temperature (kelvin) and tint
    (Lightroom's units, + toward magenta), converted through the camera's own matrix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["camera", "auto", "fixed"] = "camera"
    multipliers: tuple[float, float, float] | None = None
    temperature: float | None = None
    tint: float | None = None

    @field_validator("multipliers", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            for item in value:
                _reject_bool_and_str(item, "a number")
        return value

    @field_validator("temperature", "tint", mode="before")
    @classmethod
    def _number(cls, value: Any, info: ValidationInfo) -> Any:
        return value if value is None else _reject_bool_and_str(value, "a number")

    @field_validator("multipliers")
    @classmethod
    def _check_multipliers(
        cls, value: tuple[float, float, float] | None
    ) -> tuple[float, float, float] | None:
        if value is not None:
            low, high = MULTIPLIER_RANGE
            if not all(math.isfinite(v) and low <= v <= high for v in value):
                raise ValueError(f"each multiplier must be between {low} and {high}")
        return value

    @field_validator("temperature")
    @classmethod
    def _check_temperature(cls, value: float | None) -> float | None:
        low, high = KELVIN_RANGE
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"must be between {low:g} and {high:g} kelvin")
        return value

    @field_validator("tint")
    @classmethod
    def _check_tint(cls, value: float | None) -> float | None:
        low, high = TINT_RANGE
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    @model_validator(mode="after")
    def _fixed_needs_one_light(self) -> WhiteBalance:
        if self.mode != "fixed":
            for name in ("multipliers", "temperature", "tint"):
                if getattr(self, name) is not None:
                    raise ValueError(f'{name}: only with mode "fixed", not "{self.mode}"')
            return self
        if self.multipliers is None and self.temperature is None:
            raise ValueError(
                'multipliers: required when mode is "fixed" ([red, green, blue]), '
                "unless a temperature is given"
            )
        if self.multipliers is not None and self.temperature is not None:
            raise ValueError("temperature: give multipliers or a temperature, not both")
        if self.tint is not None and self.temperature is None:
            raise ValueError("tint: only with a temperature")
        return self

    @field_serializer("multipliers")
    def _dump_multipliers(self, value: tuple[float, float, float] | None) -> Any:
        return None if value is None else [_plain_number(v) for v in value]

    @field_serializer("temperature", "tint")
    def _dump_light(self, value: float | None) -> Any:
        return None if value is None else _plain_number(value)


class Exposure(BaseModel):
    """auto: meter the frame so its average brightness sits at middle grey, never pushing
    highlights into clipping; manual: the camera's exposure. Either way plus compensation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["auto", "manual"] = "auto"
    compensation_ev: float = 0.0

    @field_validator("compensation_ev", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return _reject_bool_and_str(value, "a number of stops")

    @field_validator("compensation_ev")
    @classmethod
    def _check_compensation(cls, value: float) -> float:
        if not (math.isfinite(value) and abs(value) <= MAX_COMPENSATION_EV):
            raise ValueError(
                f"must be between -{MAX_COMPENSATION_EV:g} and {MAX_COMPENSATION_EV:g} stops"
            )
        return value

    @field_serializer("compensation_ev")
    def _dump_compensation(self, value: float) -> float | int:
        return _plain_number(value)


class Metadata(BaseModel):
    """What of the RAW's EXIF reaches the outputs. Capture date, camera, lens, exposure
    settings and artist/copyright always do; the location only when asked for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep_gps: StrictBool = False


Position = Literal[
    "top-left",
    "top",
    "top-right",
    "left",
    "center",
    "right",
    "bottom-left",
    "bottom",
    "bottom-right",
]
# A mark narrower than this is a smudge, one wider than the frame cannot be placed.
WATERMARK_SIZE_RANGE = (0.02, 1.0)
WATERMARK_OPACITY_RANGE = (0.05, 1.0)
WATERMARK_MARGIN_MAX = 0.25


class Watermark(BaseModel):
    """A studio asset (a PNG uploaded once with `darkroom asset put`) laid over some
    renditions after their sharpening, as Lightroom's export does: `size` is the mark's
    width as a fraction of the rendition's width (Lightroom's "proportional" size, kept
    within the height too), `margin` the inset from the edges as a fraction of the
    rendition's shorter side, `opacity` multiplies the PNG's own alpha. Web renditions
    only unless named: a thumbnail is too small to carry one, and a full-size master is
    what the client pays for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asset: str
    position: Position = "bottom-right"
    size: float = 0.2
    opacity: float = 0.6
    margin: float = 0.03
    renditions: tuple[str, ...] = ("web",)

    @field_validator("asset")
    @classmethod
    def _check_asset(cls, value: str) -> str:
        return _segment(value, ASSET_NAME, "must name a studio asset: ")

    @field_validator("size", "opacity", "margin", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return _reject_bool_and_str(value, "a number")

    @field_validator("size", "opacity", "margin")
    @classmethod
    def _check_fraction(cls, value: float, info: ValidationInfo) -> float:
        low, high = {
            "size": WATERMARK_SIZE_RANGE,
            "opacity": WATERMARK_OPACITY_RANGE,
            "margin": (0.0, WATERMARK_MARGIN_MAX),
        }[str(info.field_name)]
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    @field_validator("renditions")
    @classmethod
    def _check_renditions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one rendition (or leave out the watermark)")
        return value

    @field_serializer("size", "opacity", "margin")
    def _dump_fraction(self, value: float) -> float | int:
        return _plain_number(value)


_DEFAULT_RENDITIONS = (
    Rendition(name="web", long_edge=2048, quality=90),
    Rendition(name="thumb", long_edge=400, quality=85),
    Rendition(name="full", long_edge="full", quality=92),
)


class Recipe(BaseModel):
    """How every file of a job is developed, and every rendition it produces."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    renditions: tuple[Rendition, ...] = Field(default=_DEFAULT_RENDITIONS)
    white_balance: WhiteBalance = WhiteBalance()
    exposure: Exposure = Exposure()
    highlights: Literal["clip", "recover"] = "clip"
    colour_space: Literal["srgb", "display-p3", "adobe-rgb"] = "srgb"
    metadata: Metadata = Metadata()
    # Distortion, vignetting and lateral chromatic aberration from lensfun's database,
    # when the camera and lens are in it (the manifest says when they are not).
    lens: Literal["auto", "off"] = "auto"
    # Edge-preserving denoising scaled to the noise measured in the frame.
    noise_reduction: Literal["off", "low", "medium", "high"] = "off"
    # What delivered files are called (darkroom.filenames): {stem} {seq} {job} ...
    filename: str = DEFAULT_TEMPLATE
    watermark: Watermark | None = None

    @field_validator("filename")
    @classmethod
    def _check_filename(cls, value: str) -> str:
        problem = template_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("renditions")
    @classmethod
    def _check_renditions(cls, value: tuple[Rendition, ...]) -> tuple[Rendition, ...]:
        if not value:
            raise ValueError("must list at least one rendition")
        if len(value) > MAX_RENDITIONS:
            raise ValueError(f"at most {MAX_RENDITIONS} renditions, got {len(value)}")
        names = [r.name for r in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            # Two renditions of one name would overwrite each other's files.
            raise ValueError(f"rendition names must be unique; repeated: {', '.join(duplicates)}")
        return value

    @model_validator(mode="after")
    def _check_watermarked(self) -> Recipe:
        if self.watermark is None:
            return self
        made = {r.name: r for r in self.renditions}
        unknown = [name for name in self.watermark.renditions if name not in made]
        if unknown:
            raise ValueError(
                f"watermark: renditions names {', '.join(map(repr, unknown))}, which this "
                f"recipe does not make (it makes {', '.join(made)})"
            )
        masters = [n for n in self.watermark.renditions if made[n].format == "tiff"]
        if masters:
            raise ValueError(f"watermark: {', '.join(masters)} is a TIFF master, never watermarked")
        return self

    def watermarked(self, rendition: str) -> bool:
        return self.watermark is not None and rendition in self.watermark.renditions


DEFAULT_RECIPE = Recipe()


def label_of(rendition: str, recipe: Recipe | None = None) -> str:
    """What a client is shown for a rendition: the recipe's label, else the default."""
    made = {r.name: r for r in recipe.renditions} if recipe else {}
    if rendition in made and made[rendition].label:
        return str(made[rendition].label)
    words = rendition.replace("_", " ").replace("-", " ")
    return DEFAULT_LABELS.get(rendition) or words.capitalize()


_MODELS: dict[str, type[BaseModel]] = {
    "renditions": Rendition,
    "white_balance": WhiteBalance,
    "exposure": Exposure,
    "metadata": Metadata,
    "watermark": Watermark,
}


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = "recipe"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel]:
    """The model whose field `loc` names (the part before the last name)."""
    model: type[BaseModel] = Recipe
    for part in loc[:-1]:
        if isinstance(part, str) and part in _MODELS:
            model = _MODELS[part]
    return model


def _describe(error: Any, union_field: bool) -> tuple[tuple[int | str, ...], str]:
    """Where the error is (a model-level check may name its own field) and what is wrong."""
    loc = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    got = shorten(repr(value))
    if kind == "value_error":
        message = str(error["ctx"]["error"])
        # "field: why" from a model validator: point at that field.
        head, sep, rest = message.partition(": ")
        if sep and head.isidentifier() and head in _model_at((*loc, "_")).model_fields:
            return (*loc, head), rest
        return loc, message
    if union_field:
        return loc, f'must be a whole number of pixels or "full", got {got}'
    if kind == "extra_forbidden":
        fields = ", ".join(_model_at(loc).model_fields)
        return loc, f"unknown field (expected one of: {fields})"
    if kind == "missing":
        return loc, "required"
    if kind == "literal_error":
        return loc, f"must be one of: {error['ctx']['expected']}, got {got}"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return loc, f"must be a whole number, got {got}"
    if kind in ("float_type", "float_parsing"):
        return loc, f"must be a number, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return loc, f"must be true or false, got {got}"
    if kind in ("tuple_type", "list_type"):
        return loc, f"must be a list, got {type(value).__name__}"
    if kind == "too_short" or kind == "too_long":
        return loc, f"must list exactly {error['ctx'].get('max_length', 3)} values"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"must be an object, got {type(value).__name__}"
    message = str(error["msg"])
    return loc, message[:1].lower() + message[1:]


def parse_recipe(data: Mapping[str, Any] | Recipe | None) -> Recipe:
    """A validated recipe from its JSON form; None means the default recipe."""
    if data is None:
        return DEFAULT_RECIPE
    if isinstance(data, Recipe):
        return data
    if not isinstance(data, Mapping):
        raise RecipeError(f"recipe: must be an object, got {type(data).__name__}")
    try:
        return Recipe.model_validate(dict(data))
    except ValidationError as exc:
        raise RecipeError(_summary(exc.errors())) from None


def resolved(data: Mapping[str, Any] | Recipe | None) -> dict[str, Any]:
    """The recipe with every default in place: what a file was developed with, even when
    the job named only what it changed (or nothing)."""
    return parse_recipe(data).model_dump(mode="json")


def _summary(errors: list[Any]) -> str:
    """One message per field, the first few in full and how many more: a recipe may carry
    thousands of unknown fields, and the answer must stay short."""
    messages: dict[str, str] = {}
    more: set[str] = set()
    for error in errors:
        # A union field (long_edge) fails once per arm, each arm named in the location:
        # one message per field says what to write instead.
        loc = tuple(part for part in error["loc"] if not _is_union_arm(part))
        if len(messages) >= MAX_NAMED_PROBLEMS:
            path = _field_path(loc)
            if path not in messages:
                more.add(path)
            continue
        where, why = _describe({**error, "loc": loc}, len(loc) < len(error["loc"]))
        messages.setdefault(_field_path(where), why)
    named = "; ".join(f"{shorten(path)}: {why}" for path, why in messages.items())
    return named + (f"; and {len(more)} more" if more else "")


def _is_union_arm(part: int | str) -> bool:
    return isinstance(part, str) and part in ("int", "literal['full']")
