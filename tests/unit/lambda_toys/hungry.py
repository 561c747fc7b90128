"""Holds `mb` megabytes (touched: resident) for `hold` seconds, then answers."""

from __future__ import annotations

import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ballast = bytearray(int(event.get("mb", 0)) * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])
    time.sleep(float(event.get("hold", 0)))
    del ballast
    return {"ok": True}
