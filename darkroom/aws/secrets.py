"""A secret's value from Secrets Manager, read once per process."""

from __future__ import annotations

import functools

from darkroom.aws.clients import client


@functools.cache
def secret_text(secret_id: str) -> str:
    return str(client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
