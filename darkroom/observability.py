"""One observability module: Powertools JSON logs (correlation id) and EMF metrics.

Every runtime (each Lambda handler at import, the worker at start) calls `configure`
with its settings, so DARKROOM_LOG_LEVEL means the same everywhere. X-Ray tracing is
darkroom.tracing: only the Lambda functions carry the X-Ray SDK.
"""

from __future__ import annotations

import logging
from typing import TextIO

from aws_lambda_powertools import Logger, Metrics

from darkroom.settings import Settings

SERVICE = "darkroom"
NAMESPACE = "Darkroom"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def configure(settings: Settings) -> None:
    logger.setLevel(settings.log_level)


def log_to(stream: TextIO) -> None:
    """Send the JSON logs to `stream` instead of stdout: a process whose stdout is read
    by a program (`darkroom local up` prints its endpoints there, first line) runs
    pipeline code in-process too (reconciling interrupted jobs at start)."""
    for handler in logging.getLogger(logger.name).handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)
