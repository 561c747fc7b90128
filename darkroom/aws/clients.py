"""boto3 clients, one per service and thread.

The endpoint comes from boto3's own AWS_ENDPOINT_URL support, so the same code talks to
AWS or to the embedded local cloud without knowing which.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5)
_local = threading.local()


def client(service: str, session: boto3.session.Session | None = None) -> Any:
    """A cached client (boto3 clients are thread-safe, sessions are not)."""
    if session is not None:
        return session.client(service, config=_CONFIG)  # type: ignore[call-overload]
    cache: dict[str, Any] = _local.__dict__.setdefault("clients", {})
    if service not in cache:
        cache[service] = boto3.session.Session().client(service, config=_CONFIG)  # type: ignore[call-overload]
    return cache[service]


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None
