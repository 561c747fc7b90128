"""Recipes: defaults, strict parsing, and errors that name the field."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from darkroom.recipes import (
    DEFAULT_RECIPE,
    MAX_RENDITIONS,
    Recipe,
    RecipeError,
    Rendition,
    label_of,
    parse_recipe,
)


def recipe(*renditions: dict[str, object]) -> Recipe:
    return parse_recipe({"renditions": list(renditions)})


# -- recipes ----------------------------------------------------------------------------
def test_default_recipe_is_web_thumb_and_full_with_camera_colour_and_no_gps() -> None:
    assert parse_recipe(None) is DEFAULT_RECIPE
    assert parse_recipe({}) == DEFAULT_RECIPE
    web, thumb, full = DEFAULT_RECIPE.renditions
    assert (web.name, web.long_edge, web.format, web.quality) == ("web", 2048, "jpeg", 90)
    assert (thumb.name, thumb.long_edge, thumb.format) == ("thumb", 400, "jpeg")
    assert (full.name, full.long_edge, full.format) == ("full", "full", "jpeg")
    assert web.extension == "jpg"
    assert DEFAULT_RECIPE.white_balance.mode == "camera"
    assert DEFAULT_RECIPE.exposure.mode == "auto"
    assert DEFAULT_RECIPE.exposure.compensation_ev == 0
    assert DEFAULT_RECIPE.highlights == "clip"
    assert DEFAULT_RECIPE.colour_space == "srgb"
    assert DEFAULT_RECIPE.metadata.keep_gps is False


def test_recipe_round_trips_through_json() -> None:
    original = recipe({"name": "full", "long_edge": "full"}, {"name": "sq", "quality": 70})
    assert parse_recipe(original.model_dump(mode="json")) == original


def test_integral_numbers_from_json_or_dynamodb_are_accepted() -> None:
    parsed = parse_recipe(
        {"renditions": [{"name": "a", "long_edge": Decimal("1024"), "quality": 80.0}]}
    )
    assert parsed.renditions[0].long_edge == 1024
    assert parsed.renditions[0].quality == 80


def test_recipes_are_frozen() -> None:
    with pytest.raises(ValueError):
        DEFAULT_RECIPE.renditions[0].quality = 10


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"renditions": [{"name": "a"}, {"name": "b", "quality": 0}]},
            "recipe.renditions[1].quality: must be between 1 and 100",
        ),
        ({"renditions": [{"name": "a", "quality": "90"}]}, "recipe.renditions[0].quality:"),
        ({"renditions": [{"name": "a", "quality": 80.5}]}, "recipe.renditions[0].quality:"),
        ({"renditions": [{"name": "a", "long_edge": True}]}, "recipe.renditions[0].long_edge:"),
        ({"renditions": [{"name": "a", "long_edge": 0}]}, "recipe.renditions[0].long_edge:"),
        ({"renditions": [{"name": "a", "long_edge": "big"}]}, 'or "full"'),
        ({"renditions": [{"name": "Web Large"}]}, "recipe.renditions[0].name:"),
        ({"renditions": [{"name": "a", "format": "gif"}]}, "recipe.renditions[0].format:"),
        ({"renditions": [{"long_edge": 100}]}, "recipe.renditions[0].name: required"),
        ({"renditions": []}, "recipe.renditions: must list at least one rendition"),
    ],
)
def test_bad_fields_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(RecipeError) as caught:
        parse_recipe(data)
    assert message in str(caught.value)


def test_duplicate_rendition_names_are_rejected() -> None:
    with pytest.raises(RecipeError, match=r"recipe\.renditions: .*unique.*web"):
        parse_recipe({"renditions": [{"name": "web"}, {"name": "web", "long_edge": 100}]})


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"renditons": []}, "recipe.renditons"),
        ({"renditions": [{"name": "a", "qualty": 80}]}, "recipe.renditions[0].qualty"),
    ],
)
def test_unknown_fields_are_rejected_by_name(data: dict[str, object], field: str) -> None:
    with pytest.raises(RecipeError) as caught:
        parse_recipe(data)
    assert str(caught.value).startswith(f"{field}: unknown field")


def test_a_recipe_must_be_an_object() -> None:
    with pytest.raises(RecipeError, match="must be an object"):
        parse_recipe(["web"])  # type: ignore[arg-type]


def test_rendition_is_a_value() -> None:
    assert Rendition(name="x") == Rendition(name="x", long_edge=2048, quality=90)
    assert len({Rendition(name="x"), Rendition(name="x")}) == 1


# -- development settings ---------------------------------------------------------------
FULL_EXAMPLE = {
    "renditions": [
        {"name": "web", "long_edge": 2048, "format": "webp", "quality": 85},
        {"name": "print", "long_edge": "full", "format": "tiff"},
    ],
    "white_balance": {"mode": "fixed", "multipliers": [2.1, 1, 1.6]},
    "exposure": {"mode": "manual", "compensation_ev": 0.5},
    "highlights": "recover",
    "colour_space": "display-p3",
    "metadata": {"keep_gps": True},
}


def test_every_setting_parses_and_round_trips_through_json() -> None:
    parsed = parse_recipe(FULL_EXAMPLE)
    assert parsed.white_balance.multipliers == (2.1, 1.0, 1.6)
    assert parsed.renditions[0].extension == "webp"
    assert parsed.renditions[0].content_type == "image/webp"
    assert parsed.renditions[1].extension == "tif"
    assert parsed.renditions[1].bits == 16
    again = parse_recipe(json.loads(json.dumps(parsed.model_dump(mode="json"))))
    assert again == parsed


def test_whole_numbers_are_dumped_as_integers_for_dynamodb() -> None:
    dumped = parse_recipe(
        {"white_balance": {"mode": "fixed", "multipliers": [2, 1, 1.5]}}
    ).model_dump(mode="json")
    assert dumped["exposure"]["compensation_ev"] == 0
    assert isinstance(dumped["exposure"]["compensation_ev"], int)
    assert dumped["white_balance"]["multipliers"] == [2, 1, 1.5]
    assert [type(v) for v in dumped["white_balance"]["multipliers"]] == [int, int, float]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"white_balance": {"mode": "fixed"}},
            'recipe.white_balance.multipliers: required when mode is "fixed"',
        ),
        (
            {"white_balance": {"mode": "auto", "multipliers": [1, 1, 1]}},
            'recipe.white_balance.multipliers: only with mode "fixed"',
        ),
        (
            {"white_balance": {"mode": "fixed", "multipliers": [1, 0, 1]}},
            "recipe.white_balance.multipliers: each multiplier must be between",
        ),
        (
            {"white_balance": {"mode": "fixed", "multipliers": [1, "2", 1]}},
            "recipe.white_balance.multipliers",
        ),
        ({"white_balance": {"mode": "tungsten"}}, "recipe.white_balance.mode: must be one of"),
        ({"white_balance": "auto"}, "recipe.white_balance: must be an object"),
        ({"exposure": {"compensation_ev": "1"}}, "recipe.exposure.compensation_ev: must be"),
        ({"exposure": {"compensation_ev": True}}, "recipe.exposure.compensation_ev: must be"),
        ({"exposure": {"compensation_ev": 9}}, "recipe.exposure.compensation_ev: must be between"),
        ({"exposure": {"mode": "matrix"}}, "recipe.exposure.mode: must be one of"),
        ({"highlights": "soft"}, "recipe.highlights: must be one of: 'clip' or 'recover'"),
        ({"colour_space": "p3"}, "recipe.colour_space: must be one of"),
        ({"metadata": {"keep_gps": "yes"}}, "recipe.metadata.keep_gps: must be true or false"),
        (
            {"metadata": {"gps": True}},
            "recipe.metadata.gps: unknown field (expected one of: keep_gps)",
        ),
        (
            {"renditions": [{"name": "a", "format": "webp", "long_edge": 20000}]},
            "recipe.renditions[0].long_edge: WebP cannot encode",
        ),
    ],
)
def test_bad_settings_are_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(RecipeError) as caught:
        parse_recipe(data)
    assert message in str(caught.value)


def test_several_mistakes_are_reported_together() -> None:
    with pytest.raises(RecipeError) as caught:
        parse_recipe({"highlights": "soft", "colour_space": "cmyk"})
    assert "recipe.highlights" in str(caught.value)
    assert "recipe.colour_space" in str(caught.value)


def test_a_recipe_has_at_most_eight_renditions() -> None:
    eight = [{"name": f"r{i}"} for i in range(MAX_RENDITIONS)]
    assert len(parse_recipe({"renditions": eight}).renditions) == MAX_RENDITIONS == 8
    with pytest.raises(RecipeError, match="at most 8 renditions"):
        parse_recipe({"renditions": [*eight, {"name": "r9"}]})


# -- labels -----------------------------------------------------------------------------
def test_renditions_are_labelled_for_clients_by_default_and_by_the_recipe() -> None:
    labelled = recipe({"name": "web"}, {"name": "print", "label": "  Print   size "})
    assert label_of("web", labelled) == "Web"
    assert label_of("print", labelled) == "Print size"
    assert [label_of(r.name) for r in DEFAULT_RECIPE.renditions] == [
        "Web",
        "Thumbnail",
        "Full resolution",
    ]
    # A rendition the recipe no longer makes (delivered by an earlier run) still reads well.
    assert label_of("hi-res_master", labelled) == "Hi res master"
    assert parse_recipe(json.loads(json.dumps(labelled.model_dump(mode="json")))) == labelled


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("", "recipe.renditions[0].label: must be 1-40 characters of text"),
        ("x" * 41, "recipe.renditions[0].label: must be 1-40 characters of text"),
        ("Web\u200b", "recipe.renditions[0].label: must be printable text"),
        (7, "recipe.renditions[0].label:"),
    ],
)
def test_a_bad_label_is_named(label: object, message: str) -> None:
    with pytest.raises(RecipeError) as caught:
        recipe({"name": "web", "label": label})
    assert message in str(caught.value)
