"""Plain JSON values to DynamoDB attribute values and back.

boto3's serializer refuses floats (a recipe's `exposure: 0.5`) and its deserializer hands
back Decimals, which json.dumps refuses; every table adapter goes through these two.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def _to_decimal(value: Any) -> Any:
    if isinstance(value, float):
        # str() keeps the decimal the user wrote: Decimal(0.1) would carry binary noise.
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _to_decimal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_decimal(v) for v in value]
    return value


def plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [plain(v) for v in value]
    return value


def to_attribute(value: Any) -> dict[str, Any]:
    return dict(_SERIALIZER.serialize(_to_decimal(value)))


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: to_attribute(v) for k, v in values.items()}


def from_item(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {k: plain(_DESERIALIZER.deserialize(v)) for k, v in raw.items()}
