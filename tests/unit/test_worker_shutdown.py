"""The idle worker stops its own instance through EC2; a refusal is reported, not hidden."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from worker import main


class FakeInstances:
    def __init__(self, error: Exception | None = None) -> None:
        self.stopped: list[str] = []
        self._error = error

    def stop(self, instance_id: str) -> None:
        if self._error:
            raise self._error
        self.stopped.append(instance_id)


def settings(mode: str) -> Any:
    return SimpleNamespace(shutdown_mode=mode)


def test_the_idle_worker_stops_its_own_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeInstances()
    monkeypatch.setattr(main, "PoolInstances", lambda: fake)
    assert main.shut_down(settings("ec2-api"), "i-0abc")
    assert fake.stopped == ["i-0abc"]


def test_a_refused_stop_is_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    denied = ClientError({"Error": {"Code": "UnauthorizedOperation"}}, "StopInstances")
    monkeypatch.setattr(main, "PoolInstances", lambda: FakeInstances(denied))
    assert not main.shut_down(settings("ec2-api"), "i-0abc")


def test_mode_none_just_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main, "PoolInstances", lambda: pytest.fail("no EC2 call"))
    assert main.shut_down(settings("none"), "i-0abc")
