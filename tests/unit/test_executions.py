"""Reading an execution for a job's view: its current state costs a page of its newest
events, however long it has run."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from moto.stepfunctions.parser.asl.eval.callback.callback import (
    CallbackEndpoint,
    CallbackOutcomeSuccess,
)

from darkroom.aws.executions import Executions
from darkroom.local import moto_hooks


class History:
    """get_execution_history over a list of events, oldest first, paged as AWS pages."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.requests: list[dict[str, Any]] = []

    def get_execution_history(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        ordered = self.events[::-1] if request.get("reverseOrder") else self.events
        start = int(request.get("nextToken", 0))
        end = start + request["maxResults"]
        page: dict[str, Any] = {"events": ordered[start:end]}
        if end < len(ordered):
            page["nextToken"] = str(end)
        return page


def _entered(name: str) -> dict[str, Any]:
    return {"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": name}}


def test_the_current_state_is_read_from_the_newest_page_only() -> None:
    retries = [{"type": "TaskFailed"}, {"type": "TaskScheduled"}] * 5_000
    history = History([_entered("RegisterJob"), *retries, _entered("MarkDone"), *retries[:6]])
    assert Executions(sfn=history).current_state("arn") == "MarkDone"
    (request,) = history.requests
    assert request["reverseOrder"] and request["maxResults"] == 100


def test_a_state_behind_many_newer_events_is_found_by_paging_back() -> None:
    retries = [{"type": "TaskFailed"}, {"type": "TaskScheduled"}] * 5_000
    history = History([_entered("RegisterJob"), _entered("StartWorker"), *retries])
    assert Executions(sfn=history).current_state("arn") == "StartWorker"
    # Pages of 100 newest first, only as far back as that state: not a page further.
    assert len(history.requests) == 101


def test_an_execution_that_entered_no_state_yet_has_none() -> None:
    history = History([{"type": "ExecutionStarted"}])
    assert Executions(sfn=history).current_state("arn") is None


class LocalCloudHistory:
    """The local cloud's GetExecutionHistory (its moto hook) over a backend holding
    `events`: what Executions reads when it runs against the local cloud."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def get_execution_history(self, **request: Any) -> dict[str, Any]:
        response = SimpleNamespace(
            _get_param=request.get,
            stepfunction_backend=SimpleNamespace(
                get_execution_history=lambda arn: {"events": list(self.events)}
            ),
        )
        result = moto_hooks._get_execution_history(response).result
        assert isinstance(result, dict)
        return result


def test_the_local_cloud_pages_the_history_newest_first_as_aws_does() -> None:
    events = [_entered(f"S{n}") for n in range(250)]
    cloud = LocalCloudHistory(events)
    assert Executions(sfn=cloud).current_state("arn") == "S249"
    first = cloud.get_execution_history(executionArn="arn", reverseOrder=True, maxResults=100)
    assert [e["stateEnteredEventDetails"]["name"] for e in first["events"][:2]] == ["S249", "S248"]
    assert len(first["events"]) == 100 and first["nextToken"]
    # Oldest first, every page: all 250, each once, and no token after the last.
    assert [
        e["stateEnteredEventDetails"]["name"] for e in Executions(sfn=cloud).history("arn")
    ] == [f"S{n}" for n in range(250)]
    last = cloud.get_execution_history(executionArn="arn", maxResults=100, nextToken="200")
    assert len(last["events"]) == 50 and "nextToken" not in last


def test_the_local_cloud_takes_a_heartbeat_from_the_moment_the_task_starts() -> None:
    # The task's Lambda (AwaitWorker) has handed the worker its token but not returned:
    # moto has not started its heartbeat clock yet. AWS takes the heartbeat; so does
    # the local cloud, while the task has no outcome.
    endpoint = CallbackEndpoint(callback_id="token")
    assert moto_hooks._notify_heartbeat(endpoint) is True
    # Once the clock runs, a heartbeat restarts it, as before.
    clock = endpoint.setup_heartbeat_endpoint(heartbeat_seconds=10)
    assert moto_hooks._notify_heartbeat(endpoint) is True
    assert clock.clear_and_wait() is True
    # A task that has its outcome takes no more heartbeats.
    over = CallbackEndpoint(callback_id="done")
    over.notify(CallbackOutcomeSuccess(callback_id="done", output="{}"))
    assert moto_hooks._notify_heartbeat(over) is False
