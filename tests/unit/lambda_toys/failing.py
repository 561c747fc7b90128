"""Raises the pipeline's NoIdleWorker unless told not to; records every attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class NoIdleWorker(Exception):
    pass


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "attempts_file" in event:
        with Path(event["attempts_file"]).open("a") as attempts:
            attempts.write(context.aws_request_id + "\n")
    if event.get("fail", True):
        raise NoIdleWorker("no idle worker in the pool")
    return {"ok": True}
