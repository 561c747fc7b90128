"""Step Functions: starting executions, reading them, and the worker's callbacks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from botocore.exceptions import ClientError

from darkroom.aws.clients import client, error_code

# Statuses after which an execution can no longer act on a job or a lease. MISSING: Step
# Functions no longer knows it (executions are kept 90 days).
ENDED_STATUSES: Final = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "MISSING"})
# A state's events come in a handful (entered, scheduled, started, succeeded, exited):
# the newest 100 nearly always hold the last StateEntered.
CURRENT_STATE_PAGE: Final = 100


class Executions:
    def __init__(self, state_machine_arn: str = "", sfn: Any | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._sfn = sfn or client("stepfunctions")

    def start(self, name: str, payload: Mapping[str, Any]) -> tuple[str, bool]:
        """Start (or find) the named execution: (arn, started_now).

        Same name and input while it runs returns the same execution (AWS semantics);
        a finished one with that name means this start already happened.
        """
        try:
            arn = self._sfn.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=name,
                input=json.dumps(payload, sort_keys=True),
            )["executionArn"]
        except ClientError as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
            return self.arn_for(name), False
        return str(arn), True

    def arn_for(self, name: str) -> str:
        # executionArn = stateMachineArn with ":stateMachine:" -> ":execution:" + ":name"
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

    def describe(self, execution_arn: str) -> dict[str, Any]:
        return dict(self._sfn.describe_execution(executionArn=execution_arn))

    def status(self, execution_arn: str) -> str:
        """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, or MISSING."""
        try:
            return str(self._sfn.describe_execution(executionArn=execution_arn)["status"])
        except ClientError as exc:
            if error_code(exc) != "ExecutionDoesNotExist":
                raise
            return "MISSING"

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self._sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def current_state(self, execution_arn: str) -> str | None:
        """The state the execution entered last: its history newest first, a page at a
        time, only until a StateEntered event (nearly always on the first page), so a
        poll costs the same however long the execution has run."""
        kwargs: dict[str, Any] = {
            "executionArn": execution_arn,
            "maxResults": CURRENT_STATE_PAGE,
            "reverseOrder": True,
        }
        while True:
            page = self._sfn.get_execution_history(**kwargs)
            for event in page["events"]:
                if details := event.get("stateEnteredEventDetails"):
                    return str(details["name"])
            if not page.get("nextToken"):
                return None
            kwargs["nextToken"] = page["nextToken"]

    def list(self, status: str | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"stateMachineArn": self.state_machine_arn}
        if status:
            kwargs["statusFilter"] = status
        out: list[dict[str, Any]] = []
        while True:
            page = self._sfn.list_executions(**kwargs)
            out.extend(page["executions"])
            if not page.get("nextToken"):
                return out
            kwargs["nextToken"] = page["nextToken"]


class ExecutionStatus:
    """Execution statuses read once each: one decision sees one consistent picture."""

    def __init__(self, executions: Executions | None = None) -> None:
        self._executions = executions or Executions()
        self._seen: dict[str, str] = {}

    def __call__(self, execution_arn: str) -> str:
        if execution_arn not in self._seen:
            self._seen[execution_arn] = self._executions.status(execution_arn)
        return self._seen[execution_arn]


class TaskCallbacks:
    """What the worker says back to the waiting WaitForWorker state."""

    def __init__(self, sfn: Any | None = None) -> None:
        self._sfn = sfn or client("stepfunctions")

    def heartbeat(self, token: str) -> bool:
        """False once the task is over (timed out, failed): the worker must stop."""
        try:
            self._sfn.send_task_heartbeat(taskToken=token)
        except ClientError as exc:
            if error_code(exc) in {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}:
                return False
            raise
        return True

    def succeed(self, token: str, output: Mapping[str, Any]) -> None:
        self._sfn.send_task_success(taskToken=token, output=json.dumps(output))

    def fail(self, token: str, error: str, cause: str) -> None:
        self._sfn.send_task_failure(taskToken=token, error=error[:256], cause=cause[:32768])
