"""The ending reconciler against moto's in-process mocks: every ending leaves the job
terminal and frees only that execution's lease, once, whatever order events come in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from darkroom import endings, names, worker_queue
from darkroom.jobs import JobStatus
from tests.unit.test_pipeline_steps import EXEC_A, EXEC_B, World

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:m"


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield World()


def _event(
    execution_arn: str = EXEC_A,
    status: str = "ABORTED",
    *,
    job_id: str | None = "j1",
    error: str | None = "Operator",
    cause: str | None = "cancelled by the studio",
    input: Any = "default",
) -> dict[str, Any]:
    if input == "default":
        input = json.dumps({"job_id": job_id}) if job_id is not None else "{}"
    return {
        "version": "0",
        "source": "aws.states",
        "detail-type": names.EXECUTION_STATUS_CHANGE,
        "resources": [execution_arn],
        "detail": {
            "executionArn": execution_arn,
            "stateMachineArn": MACHINE,
            "name": execution_arn.rsplit(":", 1)[-1],
            "status": status,
            "startDate": 1,
            "stopDate": 2,
            "input": input,
            "output": None,
            "error": error,
            "cause": cause,
            "redriveCount": 0,
        },
    }


def _reconcile(world: World, event: dict[str, Any]) -> endings.Reconciled:
    return endings.reconcile(
        endings.Ending.from_event(event), jobs=world.jobs, leases=world.leases, pool=world.pool
    )


def _processing(world: World, job_id: str, execution: str = EXEC_A) -> str:
    world.upload(job_id, "A.DNG", manifest={})
    world.register(job_id, execution)
    instance_id = world.start(job_id, execution)["instance_id"]
    world.jobs.transition(job_id, execution, JobStatus.PROCESSING)
    return str(instance_id)


@pytest.mark.parametrize("status", names.EXECUTION_ENDINGS)
def test_an_ending_fails_the_job_with_the_executions_error_and_frees_its_worker(
    world: World, status: str
) -> None:
    instance_id = _processing(world, "j1")
    outcome = _reconcile(world, _event(status=status))
    assert (outcome.job_failed, outcome.instance_id, outcome.released) == (True, instance_id, True)
    job = world.jobs.get("j1")
    assert (job.status, job.error) == (JobStatus.FAILED, "ExecutionEnded")
    assert job.cause is not None
    assert f"ended {status}" in job.cause and "Operator: cancelled by the studio" in job.cause
    assert job.finished_at
    assert world.state(instance_id) == "stopped"
    lease = world.leases.get(instance_id)
    assert lease is not None and lease.state == "IDLE"


def test_the_same_event_twice_changes_nothing_the_second_time(world: World) -> None:
    _processing(world, "j1")
    _reconcile(world, _event())
    first = world.jobs.get("j1")
    again = _reconcile(world, _event(cause="a different cause"))
    assert (again.job_failed, again.released) == (False, False)
    assert world.jobs.get("j1").cause == first.cause


def test_success_is_left_alone(world: World) -> None:
    instance_id = _processing(world, "j1")
    outcome = _reconcile(world, _event(status="SUCCEEDED", error=None, cause=None))
    assert (outcome.job_failed, outcome.released) == (False, False)
    assert world.jobs.get("j1").status is JobStatus.PROCESSING
    lease = world.leases.get(instance_id)
    assert lease is not None and lease.execution_arn == EXEC_A


def test_a_failure_the_state_machine_recorded_keeps_its_own_error(world: World) -> None:
    # The Catch path ran: ReleaseWorker freed the instance, MarkFailed named the error.
    _processing(world, "j1")
    from darkroom import pipeline

    worker_queue.stop_worker(EXEC_A, None, leases=world.leases, pool=world.pool)
    pipeline.mark_failed(
        "j1", EXEC_A, {"Error": "AllFilesFailed", "Cause": "none developed"}, jobs=world.jobs
    )
    outcome = _reconcile(world, _event(status="FAILED", error="AllFilesFailed"))
    assert (outcome.job_failed, outcome.released) == (False, False)
    job = world.jobs.get("j1")
    assert (job.error, job.cause) == ("AllFilesFailed", "none developed")


def test_an_older_executions_ending_touches_neither_the_job_nor_the_new_lease(
    world: World,
) -> None:
    _processing(world, "j1")
    world.jobs.transition("j1", EXEC_A, JobStatus.DONE)

    worker_queue.stop_worker(EXEC_A, None, leases=world.leases, pool=world.pool)
    instance_id = _processing(world, "j1", EXEC_B)  # reprocessing now
    outcome = _reconcile(world, _event(EXEC_A, "ABORTED"))
    assert (outcome.job_failed, outcome.released) == (False, False)
    job = world.jobs.get("j1")
    assert (job.status, job.execution_arn) == (JobStatus.PROCESSING, EXEC_B)
    assert world.state(instance_id) == "running"
    lease = world.leases.get(instance_id)
    assert lease is not None and lease.execution_arn == EXEC_B


def test_a_claim_its_execution_never_used_is_dropped(world: World) -> None:
    _processing(world, "j1")
    world.jobs.transition("j1", EXEC_A, JobStatus.DONE)
    world.jobs.claim("j1", EXEC_B, now=1000.0)
    outcome = _reconcile(world, _event(EXEC_B, "ABORTED"))
    assert not outcome.job_failed
    job = world.jobs.get("j1")
    assert (job.status, job.claimed_by) == (JobStatus.DONE, None)


def test_an_ending_before_registering_frees_a_lease_and_creates_no_job(world: World) -> None:
    world.leases.ensure(world.instance_ids)
    outcome = _reconcile(world, _event(EXEC_B, "FAILED", job_id="never-registered"))
    assert (outcome.job_failed, outcome.released) == (False, False)
    assert world.jobs.find("never-registered") is None


@pytest.mark.parametrize(
    ("name", "input", "job_id"),
    [
        ("j1", json.dumps({"job_id": "j1", "reprocess": True}), "j1"),
        ("console-name", json.dumps({"job_id": "j1"}), "j1"),
        ("j1", json.dumps({"jobid": "typo"}), None),
        ("j1", json.dumps(["not", "an", "object"]), None),
        ("j1", "not json", None),
        ("j1", json.dumps({"job_id": "../escape"}), None),
        # No input in the event (too large to include): the name says whose it was.
        ("j1", None, "j1"),
        ("j1.rp-20260102T030405678", None, "j1"),
    ],
)
def test_the_job_is_read_from_the_input_as_register_job_reads_it(
    name: str, input: str | None, job_id: str | None
) -> None:
    detail = endings.ExecutionStatusChange.model_validate(
        {"executionArn": f"{MACHINE}:{name}", "name": name, "status": "FAILED", "input": input}
    )
    assert endings.job_id_of(detail) == job_id
