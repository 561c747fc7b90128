"""moto settings shared by tests that mock AWS in-process."""

from __future__ import annotations

from typing import Any, Final

import pytest
from moto.core.config import DefaultConfig

# moto's config is process-wide and a local cloud in this process (the integration
# tests' session cloud) turns execution on: a test's executions must stay RUNNING until
# it stops them.
IDLE_STATE_MACHINES: Final[DefaultConfig] = {"stepfunctions": {"execute_state_machine": False}}


def offline_aws(monkeypatch: pytest.MonkeyPatch, region: str = "us-east-1") -> None:
    """Credentials moto accepts and no endpoint or profile that could reach a real account."""
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)


def create_pk_sk_table(client: Any, name: str) -> None:
    """An on-demand table keyed by string `pk` and `sk`, as the local cloud's tests use."""
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
