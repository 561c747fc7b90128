"""The job model: statuses, legal transitions, the job and its files. Pure logic, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

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
    # The photographer rejected it (an XMP sidecar's reject): not developed, not a failure.
    SKIPPED = "SKIPPED"


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


# Error messages are recorded per file; a decoder's message can be anything, and a
# file item must stay small whatever happens.
MAX_ERROR_CHARS = 1000
# A file's develop notes: a few short sentences, bounded so the file item stays small.
MAX_NOTES = 8
MAX_NOTE_KEY = 32
MAX_NOTE_CHARS = 300
# What developed a file: a few names and versions, bounded likewise.
MAX_SOFTWARE = 8
MAX_VERSION_CHARS = 64
# A failed job's cause, likewise (Step Functions passes up to 32,768 characters).
MAX_CAUSE_CHARS = 4000


class Output(BaseModel):
    """One rendition of one file, as uploaded: where it is and what it is."""

    model_config = ConfigDict(frozen=True)

    key: str
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    content_type: str | None = None
    # Of the bytes uploaded (hex), so a later read can tell they are still the same.
    sha256: str | None = None


class FileProgress(BaseModel):
    """What one run made of one file: its status, renditions, or error."""

    model_config = ConfigDict(frozen=True)

    status: FileStatus = FileStatus.PENDING
    outputs: dict[str, Output] = Field(default_factory=dict)  # rendition -> output
    error_code: str | None = None
    error: str | None = None
    # Decoding and rendering, for the run's manifest (the orchestration overhead).
    develop_seconds: float | None = None
    # What was decided for the file and why (crop, white balance, lens, noise reduction),
    # in words, for the run's manifest.
    notes: dict[str, str] = Field(default_factory=dict)
    # The lineage, for the run's manifest: the original's bytes as downloaded, the
    # resolved recipe the worker developed with (darkroom.digests), the software that
    # did it, and where the file's time went (download, decode, render, upload).
    original_sha256: str | None = None
    recipe_sha256: str | None = None
    software: dict[str, str] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)

    def to_item(self) -> dict[str, Any]:
        """The attempt as a file item stores it: only what it has, errors cut to size."""
        empty = {name for name in _COLLECTIONS if not getattr(self, name)}
        item = self.model_dump(mode="json", exclude_none=True, exclude=empty or None)
        if self.error is not None:
            item["error"] = self.error[:MAX_ERROR_CHARS]
        if self.notes:
            item["notes"] = {
                key[:MAX_NOTE_KEY]: text[:MAX_NOTE_CHARS]
                for key, text in list(self.notes.items())[:MAX_NOTES]
            }
        if self.software:
            item["software"] = {
                name[:MAX_NOTE_KEY]: version[:MAX_VERSION_CHARS]
                for name, version in list(self.software.items())[:MAX_SOFTWARE]
            }
        return item


# The attempt's fields that are maps: an empty one is not stored.
_COLLECTIONS = ("outputs", "notes", "software", "timings")
# Every field of an attempt, as a file item stores it: what recording an attempt
# replaces (or removes, when the attempt has none).
ATTEMPT_FIELDS: tuple[str, ...] = tuple(n for n in FileProgress.model_fields if n != "status")


class FileRecord(BaseModel):
    """One file of a job, its own item: the original it develops from, the current run's
    attempt at it, and what the client is delivered (a finished run's renditions)."""

    model_config = ConfigDict(frozen=True)

    name: str
    # The S3 version of the original every run reads (None: an unversioned bucket).
    original_version: str | None = None
    # The current attempt: the run it belongs to and how it went.
    run_id: str | None = None
    status: FileStatus = FileStatus.PENDING
    outputs: dict[str, Output] = Field(default_factory=dict)
    error_code: str | None = None
    error: str | None = None
    develop_seconds: float | None = None
    notes: dict[str, str] = Field(default_factory=dict)
    original_sha256: str | None = None
    recipe_sha256: str | None = None
    software: dict[str, str] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    # The file's XMP sidecar (Lightroom's or darktable's) and the S3 version registered.
    sidecar: str | None = None
    sidecar_version: str | None = None
    # What shares, downloads and the gallery serve, as JobStore reads it: resolved
    # against the job's delivered run (darkroom.delivery.resolved). Stored, it is what
    # an earlier run delivered, copied in when the next run registered.
    delivered_run: str | None = None
    delivered: dict[str, Output] = Field(default_factory=dict)
    delivered_at: str | None = None
    # Which shard of the run develops it (RegisterJob assigns it; 0 for a single shard).
    shard: int = 0
    # Its number in the job by name, from 1 (RegisterJob; None for items from before).
    seq: int | None = None

    @property
    def progress(self) -> FileProgress:
        return FileProgress(
            status=self.status,
            outputs=self.outputs,
            error_code=self.error_code,
            error=self.error,
            develop_seconds=self.develop_seconds,
            notes=self.notes,
            original_sha256=self.original_sha256,
            recipe_sha256=self.recipe_sha256,
            software=self.software,
            timings=self.timings,
        )


class Archive(BaseModel):
    """A "download all" ZIP of one rendition of the delivered files."""

    model_config = ConfigDict(frozen=True)

    key: str
    bytes: int
    files: int


class ArchiveSegment(BaseModel):
    """One shard's part of a rendition's ZIP: a whole ZIP of the shard's entries, whose
    first `data_bytes` (the entries, before its central directory) the packager joins
    to the other shards' into the run's ZIP, inside S3."""

    model_config = ConfigDict(frozen=True)

    key: str
    bytes: int
    files: int
    data_bytes: int


class Shard(BaseModel):
    """A shard of a run, its own item: the first and last of its files in name order
    (its files are that key range), and whether its worker also packages the run (the
    run's only shard), with the ZIPs it wrote; or, in a run of several shards, its part
    of each ZIP, written as its files developed."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    first: str
    last: str
    files: int
    packages: bool = False
    # rendition -> its ZIP, once the shard's worker packaged the run.
    archives: dict[str, Archive] | None = None
    # rendition -> the shard's part of its ZIP (runs of several shards).
    segments: dict[str, ArchiveSegment] | None = None


class DeliveredRun(BaseModel):
    """The last run whose renditions were delivered: the pointer every file resolves
    against (files it did not develop keep those of earlier runs)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    finished_at: str | None = None
    manifest_key: str | None = None
    files_delivered: int = 0
    # rendition -> its ZIP, when packaging succeeded (keys.archive_key).
    archives: dict[str, Archive] = Field(default_factory=dict)


class RunSelection(BaseModel):
    """A run that develops only some of the job's files: which ones were asked for (a
    proofing client's favourites, or names the photographer gave) and how many. The files
    themselves are those whose attempt is the run's; the others keep what they deliver."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["favourites", "names"]
    files: int


class DeliveryPolicy(BaseModel):
    """Who the job is for and whether its first finished run is sent to them by itself
    (darkroom.notify). Carried from the job's creation through its manifest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_name: str | None = None
    client_email: str | None = None
    deliver: str = "manual"  # "auto" | "manual"
    # The share's life; None: the deployment's share_default_expiry_seconds.
    share_expires_in: int | None = None
    # A reprocess updates what the same link shows; the client hears of it only if asked.
    notify_client_on_reprocess: bool = False

    @property
    def auto(self) -> bool:
        return self.deliver == "auto" and bool(self.client_email)


class Job(BaseModel):
    """The job item: identity, status, the current run's counters, what is delivered.

    Nothing on it grows with the job: each file's state is a FileRecord of its own."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    status: JobStatus
    name: str | None = None
    recipe: dict[str, Any] | None = None
    files_total: int = 0
    # Of the current run, counted (atomic ADD) as its files finish.
    files_done: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    run_id: str | None = None
    execution_arn: str | None = None
    # The most recent executions, oldest first (at most MAX_EXECUTIONS).
    executions: tuple[str, ...] = ()
    # A reprocess in flight: the execution the API is starting, until it registers.
    claimed_by: str | None = None
    claimed_at: float | None = None
    attempt: int = 0
    instance_id: str | None = None
    # The current run's manifest, once its worker wrote it.
    manifest_key: str | None = None
    delivered: DeliveredRun | None = None
    # The current run develops only these files (None: all of them).
    selection: RunSelection | None = None
    error: str | None = None
    cause: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    delivery_policy: DeliveryPolicy | None = None
    # The last failure of each kind of notice ("client", "photographer", "webhook"), as
    # "<run>: <why>": shown by `darkroom status`, never a reason to fail the job.
    notice_errors: dict[str, str] = Field(default_factory=dict)
    # The share automatic delivery emailed the client (later runs update what it shows).
    auto_share_id: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def has_delivery(self) -> bool:
        """Whether some run finished and left renditions to share."""
        return self.delivered is not None and self.delivered.files_delivered > 0

    @property
    def created_key(self) -> str:
        return created_key(self.created_at or "", self.job_id)


MAX_EXECUTIONS = 20


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
