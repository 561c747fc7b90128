"""Recipes carry floats (exposure 0.5 EV); DynamoDB wants Decimals and gives them back."""

from __future__ import annotations

from decimal import Decimal

from darkroom.aws.ddb_codec import from_item, to_attribute, to_item


def test_floats_are_stored_as_the_decimal_the_user_wrote() -> None:
    assert to_attribute(0.1) == {"N": "0.1"}
    assert to_attribute({"exposure": [0.5, 1]}) == {
        "M": {"exposure": {"L": [{"N": "0.5"}, {"N": "1"}]}}
    }


def test_a_recipe_round_trips_as_plain_json() -> None:
    recipe = {"exposure": 0.5, "renditions": [{"name": "web", "size": 2048, "quality": 90}]}
    back = from_item(to_item({"recipe": recipe}))["recipe"]
    assert back == recipe
    assert isinstance(back["exposure"], float)
    assert isinstance(back["renditions"][0]["size"], int)
    assert not isinstance(back["renditions"][0]["size"], Decimal)
