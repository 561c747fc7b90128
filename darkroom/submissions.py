"""No submission is lost: starting the jobs whose submission never started an execution.

Submitting writes the job's manifest, and S3 invokes the orchestrator, which Lambda
retries twice. A submission survives an outage longer than those tries three ways, all
starting the one execution named after the job (`pipeline.start_jobs`), so a job still
runs at most once however many of them fire:

- submitting it again (`POST /jobs/{id}/submit` of a SUBMITTED job) starts it;
- the submission reconciler, on a schedule, starts every job submitted more than a few
  minutes ago that has neither a job record nor an execution;
- the same run redrives the orchestrator's on-failure queue: it starts the jobs each
  parked event names and deletes the events it handled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from darkroom import pipeline
from darkroom.aws.executions import Executions
from darkroom.aws.job_store import JobStore
from darkroom.aws.queues import FailureQueue
from darkroom.aws.uploads import UploadStatus, UploadStore
from darkroom.observability import logger

# How long a parked event stays hidden while one run handles it: a run that dies
# midway leaves it for the next.
REDRIVE_HIDE_SECONDS = 120


def resubmit(job_id: str, executions: Executions) -> pipeline.Started:
    """Start a submitted job's execution, or find the one it has (started_now False)."""
    (started,) = pipeline.start_jobs([job_id], executions)
    return started


@dataclass
class Outcome:
    started: list[str] = field(default_factory=list)  # overdue submissions started
    redriven: list[str] = field(default_factory=list)  # jobs named by parked events
    kept: int = 0  # parked events left on the queue (unreadable, or their start failed)

    def to_dict(self) -> dict[str, Any]:
        return {"started": self.started, "redriven": self.redriven, "kept": self.kept}


def overdue(uploads: UploadStore, *, before: datetime) -> list[str]:
    """Jobs submitted before `before` (whether or not their execution started)."""
    return [
        upload.job_id
        for upload in uploads.newest(page_size=100)
        if upload.status is UploadStatus.SUBMITTED
        and (when := _moment(upload.submitted_at)) is not None
        and when <= before
    ]


def reconcile(
    *,
    uploads: UploadStore,
    jobs: JobStore,
    executions: Executions,
    failures: FailureQueue,
    raw_bucket: str,
    resubmit_after: timedelta,
    now: datetime | None = None,
) -> Outcome:
    outcome = Outcome()
    now = now or datetime.now(UTC)
    waiting = overdue(uploads, before=now - resubmit_after)
    registered = jobs.registered(waiting)
    for job_id in waiting:
        if job_id in registered:
            continue
        # An execution that failed before registering the job (a bad manifest) has
        # ended for good: its name is taken, and its failure is what the job shows.
        if executions.status(executions.arn_for(pipeline.execution_name(job_id))) != "MISSING":
            continue
        started = resubmit(job_id, executions)
        if started.started_now:
            logger.warning("submitted job had no execution: started", extra={"job_id": job_id})
            outcome.started.append(job_id)

    for message in failures.receive(hide_seconds=REDRIVE_HIDE_SECONDS):
        payload = message.body.get("requestPayload") if isinstance(message.body, Mapping) else None
        job_ids = pipeline.manifest_job_ids(payload, raw_bucket) if payload else []
        if not job_ids:
            # Not an orchestrator event we can read: left for a person (its alarm).
            outcome.kept += 1
            continue
        try:
            pipeline.start_jobs(job_ids, executions)
        except Exception:
            logger.exception("could not redrive a submission", extra={"job_ids": job_ids})
            outcome.kept += 1
            continue
        failures.delete(message)
        outcome.redriven.extend(job_ids)
    logger.info("submissions reconciled", extra=outcome.to_dict())
    return outcome


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
