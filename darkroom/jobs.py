"""The job model: statuses, legal transitions, per-file progress. Pure logic, no AWS."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JobStatus(StrEnum):
    REGISTERED = "REGISTERED"  # accepted by an execution, queued for a worker
    STARTING = "STARTING"  # a worker instance is leased and booting
    PROCESSING = "PROCESSING"  # the worker is developing files
    DONE = "DONE"
    DONE_WITH_ERRORS = "DONE_WITH_ERRORS"  # finished; some files failed, the rest are ready
    FAILED = "FAILED"


class FileStatus(StrEnum):
    PENDING = "PENDING"
    DONE = "DONE"
    FAILED = "FAILED"


TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.DONE, JobStatus.DONE_WITH_ERRORS, JobStatus.FAILED}
)
# Finished with renditions to deliver (a share link, a download).
SHAREABLE: frozenset[JobStatus] = frozenset({JobStatus.DONE, JobStatus.DONE_WITH_ERRORS})

# None stands for "no record yet". Reprocessing is a terminal -> REGISTERED edge, so a
# job is never registered twice while it runs.
_TRANSITIONS: dict[JobStatus | None, frozenset[JobStatus]] = {
    None: frozenset({JobStatus.REGISTERED}),
    JobStatus.REGISTERED: frozenset({JobStatus.STARTING, JobStatus.FAILED}),
    JobStatus.STARTING: frozenset({JobStatus.PROCESSING, JobStatus.FAILED}),
    JobStatus.PROCESSING: frozenset({JobStatus.DONE, JobStatus.DONE_WITH_ERRORS, JobStatus.FAILED}),
    JobStatus.DONE: frozenset({JobStatus.REGISTERED}),
    JobStatus.DONE_WITH_ERRORS: frozenset({JobStatus.REGISTERED}),
    JobStatus.FAILED: frozenset({JobStatus.REGISTERED}),
}


def can_transition(current: JobStatus | None, target: JobStatus) -> bool:
    return target in _TRANSITIONS[current]


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """Statuses from which `target` may be reached: the condition of a conditional write."""
    return frozenset(s for s, ts in _TRANSITIONS.items() if s is not None and target in ts)


def finished_status(files_done: int, files_failed: int) -> JobStatus:
    """The terminal status of a job whose worker finished (at least one file developed)."""
    return JobStatus.DONE if files_failed == 0 else JobStatus.DONE_WITH_ERRORS


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def created_key(created_at: str, job_id: str) -> str:
    """Where a job sorts when listed newest first; set once, when the job is created."""
    return f"{created_at}#{job_id}"


class FileProgress(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: FileStatus = FileStatus.PENDING
    outputs: dict[str, str] = Field(default_factory=dict)  # rendition -> S3 key
    error_code: str | None = None
    error: str | None = None

    def to_item(self) -> dict[str, Any]:
        """The file's entry as stored on the job and shown by status readers: only what
        it has (no empty outputs before it is developed, no null errors)."""
        return self.model_dump(
            mode="json", exclude_none=True, exclude=None if self.outputs else {"outputs"}
        )


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    status: JobStatus
    files: tuple[str, ...] = ()
    name: str | None = None
    recipe: dict[str, Any] | None = None
    progress: dict[str, FileProgress] = Field(default_factory=dict)
    execution_arn: str | None = None
    executions: tuple[str, ...] = ()
    # A reprocess in flight: the execution the API is starting, until it registers.
    claimed_by: str | None = None
    claimed_at: float | None = None
    attempt: int = 0
    instance_id: str | None = None
    manifest_key: str | None = None
    error: str | None = None
    cause: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def files_done(self) -> int:
        return sum(1 for p in self.progress.values() if p.status is FileStatus.DONE)

    @property
    def files_failed(self) -> int:
        return sum(1 for p in self.progress.values() if p.status is FileStatus.FAILED)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def created_key(self) -> str:
        return created_key(self.created_at or "", self.job_id)


def pending_progress(files: Iterable[str]) -> dict[str, FileProgress]:
    return {name: FileProgress() for name in files}


# Step Functions' own error names may not be re-raised by a Fail state, and they mean
# little to a studio; these are the stable names a failed job carries instead.
_STATES_ERRORS: dict[str, str] = {
    "States.Timeout": "WorkerTimedOut",
    "States.HeartbeatTimeout": "WorkerLost",
    "States.TaskFailed": "TaskFailed",
    "States.Permissions": "PermissionDenied",
}


def stable_error_name(error: str | None) -> str:
    if not error:
        return "JobFailed"
    if error in _STATES_ERRORS:
        return _STATES_ERRORS[error]
    if error.startswith("States."):
        return "Pipeline" + error.removeprefix("States.").replace(".", "")
    return error
