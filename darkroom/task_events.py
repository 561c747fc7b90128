"""What each state of the RAW pipeline hands its Lambda: the ASL Task's `Payload`, typed.

Handlers parse their event with these models. A key the ASL sends that a model does not
declare is refused (extra="forbid"), and tests/unit/test_workflow.py checks every Task's
Payload in the committed ASL against the model of the function it invokes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from darkroom.aws.lease_store import LeaseTask
from darkroom.names import Function


class TaskEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # $$.Execution.Id: every task acts on behalf of one execution.
    execution_arn: str


class _ExecutionInput(TaskEvent):
    # $$.Execution.Input, whatever was typed into a console: the job id is read, never
    # trusted to be there.
    input: Any = None

    @property
    def input_job_id(self) -> str | None:
        job_id = self.input.get("job_id") if isinstance(self.input, Mapping) else None
        return job_id if isinstance(job_id, str) else None


class RegisterJobEvent(TaskEvent):
    # The execution input ("$"): {"job_id", "recipe"?, "reprocess"?}, checked by
    # pipeline.register_job so a bad one fails as InvalidJob.
    input: dict[str, Any] = Field(default_factory=dict)


class StartWorkerEvent(TaskEvent):
    job_id: str
    # Which shard of the run the lease is for, and what the worker does with it.
    shard: int = 0
    task: LeaseTask = LeaseTask.DEVELOP
    # A second attempt names the instance the first one lost ("" on the first).
    avoid: str | None = None


class AwaitWorkerEvent(TaskEvent):
    job_id: str
    instance_id: str
    task_token: str
    shard: int = 0


class StopWorkerEvent(_ExecutionInput):
    """StopWorker (job and instance known) or ReleaseWorker (the failure path, which may
    run before StartWorker did: only the execution input, and `release_only`)."""

    job_id: str | None = None
    instance_id: str | None = None
    # The shard whose lease is freed; None (ReleaseWorker) frees every one it holds.
    shard: int | None = None
    release_only: bool = False


class MarkDoneEvent(TaskEvent):
    job_id: str
    # The packaging worker's SendTaskSuccess output ({"archives": ...}), or
    # {"error": {"Error", "Cause"}} when packaging failed.
    package: dict[str, Any] | None = None


class MarkFailedEvent(_ExecutionInput):
    # The Catch's {"Error", "Cause"}.
    error: dict[str, Any] | None = None
    # FailShard: only this shard's files fail (its worker was lost twice); the job
    # goes on with the others.
    shard: int | None = None


# The function each ASL Task invokes -> the event it receives.
TASK_EVENTS: Final[Mapping[str, type[TaskEvent]]] = {
    Function.REGISTER_JOB: RegisterJobEvent,
    Function.START_WORKER: StartWorkerEvent,
    Function.AWAIT_WORKER: AwaitWorkerEvent,
    Function.STOP_WORKER: StopWorkerEvent,
    Function.MARK_DONE: MarkDoneEvent,
    Function.MARK_FAILED: MarkFailedEvent,
}
