"""Waiting for a job through the API: a poll the API cannot answer is not the job's answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from darkroom.api.client import ApiCallError
from darkroom.cli.studio_client import StudioClient


class ScriptedApi:
    """Answers GET /jobs/{id} from a script: an ApiCallError is raised, a dict returned."""

    def __init__(self, *answers: ApiCallError | dict[str, Any]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, ApiCallError):
            raise answer
        return answer


def _error(status: int) -> ApiCallError:
    return ApiCallError(status, "internal", f"HTTP {status}", {})


def test_a_wait_rides_out_api_timeouts_and_unreachable_polls() -> None:
    api = ScriptedApi(
        {"job_id": "j", "status": "PROCESSING"},
        _error(500),
        _error(504),
        _error(0),
        {"job_id": "j", "status": "DONE", "execution_arn": "arn:run"},
    )
    job = StudioClient(api).wait("j", timeout=5, poll=0.01)  # type: ignore[arg-type]
    assert job["status"] == "DONE" and api.calls == 5


def test_a_wait_that_only_gets_errors_times_out_naming_the_last() -> None:
    api = ScriptedApi(_error(503))
    with pytest.raises(TimeoutError, match=r"no answer after 0s .*HTTP 503"):
        StudioClient(api).wait("j", timeout=0.05, poll=0.01)  # type: ignore[arg-type]
    assert api.calls > 1


def test_a_client_error_is_not_retried() -> None:
    api = ScriptedApi(_error(403))
    with pytest.raises(ApiCallError) as raised:
        StudioClient(api).wait("j", timeout=5, poll=0.01)  # type: ignore[arg-type]
    assert raised.value.status == 403 and api.calls == 1
