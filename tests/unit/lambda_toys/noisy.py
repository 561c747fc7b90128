"""Writes to every output channel a handler has, through Powertools among others."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="noisy")
print("noisy: printed at import")


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    print('{"looks": "like a protocol message"}')
    print("noisy: to stderr", file=sys.stderr)
    os.write(1, b"noisy: straight to fd 1\n")
    sys.stdout.write("noisy: no newline")
    logging.getLogger("toys.stdlib").warning("noisy: stdlib warning")
    logger.info("noisy: powertools info", extra={"marker": "pt"})
    stdin = sys.stdin.read()  # must be empty, not the protocol channel
    print("x" * event.get("filler", 0))
    print("noisy: last line")
    return {"ok": True, "stdin": stdin, "pid": os.getpid()}
