"""Returns what event["kind"] asks for, JSON-friendly or not."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def handler(event: dict[str, Any], context: Any) -> Any:
    kind = event["kind"]
    if kind == "set":
        return {"tags": {"a", "b"}}
    if kind == "decimal":
        return {"count": Decimal("3"), "ratio": Decimal("0.5")}
    if kind == "bytes":
        return b"\x00raw bytes"
    return None
