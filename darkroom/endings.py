"""No ending is silent: what becomes of a job and its worker when its execution ends.

An execution can end where no Catch runs: stopped (ABORTED), timed out, or failed with
an error `States.ALL` does not catch (`States.Runtime`), or with its failure path failing
too. Step Functions reports every ending as an event ("Step Functions Execution Status
Change": EventBridge in AWS, the local cloud's hooks on the laptop); the ending
reconciler receives the FAILED, TIMED_OUT and ABORTED ones and, for that execution only:

- marks its job FAILED (`ExecutionEnded`, with the execution's error and cause) if the
  execution still owns the job and left it unfinished (`pipeline.fail_ended`);
- withdraws a claim it made on the job and never used by registering;
- stops the instance it leased and frees the lease (`worker_queue.stop_worker`).

Each step is conditional on the execution, so a repeated event, or an ending the
state machine's own failure path already handled, changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from darkroom import keys, names, pipeline, worker_queue
from darkroom.aws.job_store import JobStore
from darkroom.aws.lease_store import LeaseStore
from darkroom.aws.pool_instances import PoolInstances
from darkroom.errors import JobBusy, StaleExecution
from darkroom.observability import logger

# The separator of a reprocess execution's name (pipeline.reprocess_execution_name).
_REPROCESS_MARK = ".rp-"


class ExecutionStatusChange(BaseModel):
    """An event's `detail`, as Step Functions sends it (fields we do not use are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    execution_arn: str = Field(alias="executionArn")
    name: str = ""
    status: str
    # The execution input as JSON text; null when it is too large to be included.
    input: str | None = None
    error: str | None = None
    cause: str | None = None


@dataclass(frozen=True)
class Ending:
    execution_arn: str
    status: str
    job_id: str | None
    error: str | None = None
    cause: str | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Ending:
        detail = ExecutionStatusChange.model_validate(event.get("detail") or {})
        return cls(
            execution_arn=detail.execution_arn,
            status=detail.status,
            job_id=job_id_of(detail),
            error=detail.error,
            cause=detail.cause,
        )


def job_id_of(detail: ExecutionStatusChange) -> str | None:
    """The job an execution ran for: its input's job_id, as RegisterJob reads it. Only
    when the event carries no input, the name: a job's first execution is named after it
    and a reprocess `<job_id>.rp-<stamp>`."""
    if detail.input is not None:
        try:
            document = json.loads(detail.input)
        except ValueError:
            return None
        candidate = document.get("job_id") if isinstance(document, dict) else None
    else:
        candidate = detail.name.split(_REPROCESS_MARK, 1)[0]
    if not isinstance(candidate, str):
        return None
    try:
        return keys.validate_job_id(candidate)
    except ValueError:
        return None


@dataclass(frozen=True)
class Reconciled:
    execution_arn: str
    status: str
    job_id: str | None
    job_failed: bool = False
    instance_id: str | None = None
    released: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reconcile(
    ending: Ending, *, jobs: JobStore, leases: LeaseStore, pool: PoolInstances
) -> Reconciled:
    if ending.status not in names.EXECUTION_ENDINGS:
        # SUCCEEDED: MarkDone finished the job and StopWorker freed the instance.
        return Reconciled(ending.execution_arn, ending.status, ending.job_id)
    job_failed = False
    if ending.job_id is not None:
        jobs.release_claim(ending.job_id, ending.execution_arn)
        job = jobs.find(ending.job_id)
        if job is not None and job.execution_arn == ending.execution_arn and not job.is_terminal:
            try:
                pipeline.fail_ended(
                    ending.job_id,
                    ending.execution_arn,
                    ending.status,
                    jobs,
                    error=ending.error,
                    cause=ending.cause,
                )
                job_failed = True
            except (StaleExecution, JobBusy) as exc:
                # A reprocess took the job over meanwhile: it is that execution's now.
                logger.info("job left to its new execution", extra={"why": str(exc)})
    worker = worker_queue.stop_worker(ending.execution_arn, None, leases=leases, pool=pool)
    outcome = Reconciled(
        ending.execution_arn,
        ending.status,
        ending.job_id,
        job_failed=job_failed,
        instance_id=worker["instance_id"],
        released=bool(worker["released"]),
    )
    logger.info("execution ending reconciled", extra=outcome.to_dict())
    return outcome
