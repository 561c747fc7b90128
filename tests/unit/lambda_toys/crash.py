"""Ends its own process the hard way: os._exit or a segmentation fault; or does some
work (writes its pid to the file "touch" names) and returns."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "exit" in event:
        print("crash: exiting")
        os._exit(event["exit"])
    if event.get("segfault"):
        ctypes.string_at(0)
    if "touch" in event:
        Path(event["touch"]).write_text(str(os.getpid()))
    return {"pid": os.getpid()}
