"""Secrets Manager: a deployment's secret values, read once per process."""

from __future__ import annotations

import functools
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from darkroom.aws.clients import client


class SecretUnreadable(RuntimeError):
    pass


def secret_value(arn: str, secrets: Any | None = None) -> str:
    """The secret's SecretString; a clear error naming the secret when it cannot be read
    (a runtime that needs it must not start without it)."""
    try:
        response = (secrets or client("secretsmanager")).get_secret_value(SecretId=arn)
    except (ClientError, BotoCoreError) as exc:
        raise SecretUnreadable(f"cannot read secret {arn}: {exc}") from exc
    value = response.get("SecretString")
    if not value:
        raise SecretUnreadable(f"secret {arn} holds no text value")
    return str(value)


@functools.cache
def secret_text(secret_id: str) -> str:
    """`secret_value`, read once per process: a warm Lambda signs with what it read."""
    return secret_value(secret_id)


def secret_bytes(secret_id: str, secrets: Any | None = None) -> bytes:
    """A secret's value as bytes (its string, UTF-8). An empty secret is refused: a
    key of nothing would sign nothing."""
    answer = (secrets or client("secretsmanager")).get_secret_value(SecretId=secret_id)
    value = answer.get("SecretString")
    data = value.encode("utf-8") if value is not None else bytes(answer.get("SecretBinary") or b"")
    if not data:
        raise RuntimeError(f"secret {secret_id} is empty")
    return data
