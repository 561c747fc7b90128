"""Secrets Manager: a deployment's secret values, read once at start-up."""

from __future__ import annotations

from typing import Any

from darkroom.aws.clients import client


def secret_bytes(secret_id: str, secrets: Any | None = None) -> bytes:
    """A secret's value as bytes (its string, UTF-8). An empty secret is refused: a
    key of nothing would sign nothing."""
    answer = (secrets or client("secretsmanager")).get_secret_value(SecretId=secret_id)
    value = answer.get("SecretString")
    data = value.encode("utf-8") if value is not None else bytes(answer.get("SecretBinary") or b"")
    if not data:
        raise RuntimeError(f"secret {secret_id} is empty")
    return data
