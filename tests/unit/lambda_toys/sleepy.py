"""Sleeps for event["seconds"], optionally with a child process of its own."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    print(f"sleepy pid={os.getpid()}")
    if event.get("spawn"):
        child = subprocess.Popen(["sleep", "60"])
        print(f"sleepy child={child.pid}")
    time.sleep(event.get("seconds", 0))
    return {"pid": os.getpid()}
