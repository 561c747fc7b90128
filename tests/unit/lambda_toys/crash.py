"""Ends its own process the hard way: os._exit or a segmentation fault."""

from __future__ import annotations

import ctypes
import os
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "exit" in event:
        print("crash: exiting")
        os._exit(event["exit"])
    if event.get("segfault"):
        ctypes.string_at(0)
    return {"pid": os.getpid()}
