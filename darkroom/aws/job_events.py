"""Job events: every status a job takes, published on EventBridge's default bus as
`source: darkroom`, `detail-type: Job status changed`, for the studio's own rules and
for darkroom's notify function. JobStore calls it right after each status write, so
there is one place statuses are written and one place they are published."""

from __future__ import annotations

import json
from typing import Any

from darkroom import names
from darkroom.aws.clients import client
from darkroom.jobs import Job
from darkroom.observability import logger


def job_event_detail(job: Job) -> dict[str, Any]:
    """What an event (and a webhook call) says of the job: the same JSON both ways."""
    detail: dict[str, Any] = {
        "job_id": job.job_id,
        "run_id": job.run_id,
        "status": str(job.status),
        "attempt": job.attempt,
        "files_total": job.files_total,
        "files_done": job.files_done,
        "files_failed": job.files_failed,
        "updated_at": job.updated_at,
    }
    if job.error:
        detail["error"] = job.error
        detail["cause"] = job.cause
    return detail


class JobEvents:
    def __init__(self, bus: str = "default", events: Any | None = None) -> None:
        self._bus = bus
        self._events = events

    def publish(self, job: Job) -> bool:
        """Publish the job's status now. A failure is logged and returns False: the
        status is written already, and must not be undone by its announcement."""
        events = self._events or client("events")
        entry = {
            "Source": names.JOB_EVENT_SOURCE,
            "DetailType": names.JOB_EVENT_DETAIL_TYPE,
            "Detail": json.dumps(job_event_detail(job)),
            "EventBusName": self._bus,
            "Resources": [],
        }
        try:
            answer = events.put_events(Entries=[entry])
        except Exception as exc:
            logger.warning("job event not published", extra={"job_id": job.job_id, "why": str(exc)})
            return False
        if answer.get("FailedEntryCount"):
            logger.warning(
                "job event refused", extra={"job_id": job.job_id, "entries": answer["Entries"]}
            )
            return False
        return True
