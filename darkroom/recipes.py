"""Recipes: which renditions a job develops every RAW file into.

A recipe travels as JSON (in the upload manifest, the job record and the processed
manifest), so parsing is strict and its errors name the offending field the way a user
wrote it: ``recipe.renditions[1].quality: must be between 1 and 100``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

NAME_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")
# JPEG cannot encode a side longer than this.
MAX_LONG_EDGE = 65_535

_EXTENSIONS = {"jpeg": "jpg"}
_CONTENT_TYPES = {"jpeg": "image/jpeg"}


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the field and what is wrong."""


class Rendition(BaseModel):
    """One output of every developed file: a named size, format and quality."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    long_edge: int | Literal["full"] = 2048
    format: Literal["jpeg"] = "jpeg"
    quality: int = 90

    @field_validator("long_edge", "quality", mode="before")
    @classmethod
    def _whole_number(cls, value: Any, info: ValidationInfo) -> Any:
        # Plain pydantic would take True as 1 and "90" as 90; a recipe says what it means.
        # Integral floats and Decimals (JSON, DynamoDB) still pass.
        if info.field_name == "long_edge":
            if value == "full":
                return value
            if isinstance(value, bool | str):
                raise ValueError(f'must be a whole number of pixels or "full", got {value!r}')
        elif isinstance(value, bool | str):
            raise ValueError(f"must be a whole number, got {value!r}")
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        # The name becomes a directory and an S3 key segment.
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(
                f"must be 1-32 characters of lowercase letters, digits, '_' or '-' (got {value!r})"
            )
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

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.format]

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self.format]


class Recipe(BaseModel):
    """Every rendition a job produces for each of its files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    renditions: tuple[Rendition, ...] = Field(
        default=(
            Rendition(name="web", long_edge=2048, quality=90),
            Rendition(name="thumb", long_edge=400, quality=85),
        )
    )

    @field_validator("renditions")
    @classmethod
    def _check_renditions(cls, value: tuple[Rendition, ...]) -> tuple[Rendition, ...]:
        if not value:
            raise ValueError("must list at least one rendition")
        names = [r.name for r in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            # Two renditions of one name would overwrite each other's files.
            raise ValueError(f"rendition names must be unique; repeated: {', '.join(duplicates)}")
        return value


DEFAULT_RECIPE = Recipe()


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = "recipe"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _expected_fields(loc: tuple[int | str, ...]) -> str:
    model: type[BaseModel] = Rendition if "renditions" in loc[:-1] else Recipe
    return ", ".join(model.model_fields)


def _describe(error: Any, union_field: bool) -> str:
    kind = error["type"]
    got = error.get("input")
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if union_field:
        return f'must be a whole number of pixels or "full", got {got!r}'
    if kind == "extra_forbidden":
        return f"unknown field (expected one of: {_expected_fields(tuple(error['loc']))})"
    if kind == "missing":
        return "required"
    if kind == "literal_error":
        return f"must be one of: {error['ctx']['expected']}, got {got!r}"
    if kind in ("int_type", "int_from_float", "int_parsing"):
        return f"must be a whole number, got {got!r}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list, got {type(got).__name__}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be an object, got {type(got).__name__}"
    message = str(error["msg"])
    return message[:1].lower() + message[1:]


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
        messages: dict[str, str] = {}
        for error in exc.errors():
            # A union field (long_edge) fails once per arm, each arm named in the location:
            # one message per field says what to write instead.
            loc = tuple(part for part in error["loc"] if not _is_union_arm(part))
            path = _field_path(loc)
            if path not in messages:
                messages[path] = _describe({**error, "loc": loc}, len(loc) < len(error["loc"]))
        raise RecipeError("; ".join(f"{path}: {why}" for path, why in messages.items())) from None


def _is_union_arm(part: int | str) -> bool:
    return isinstance(part, str) and part in ("int", "literal['full']")
