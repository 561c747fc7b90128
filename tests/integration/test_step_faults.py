"""The state machine on the local cloud when a step's process dies or an operator stops it.

Each step's Lambda process is killed for real (SIGKILL to its sandbox) through the local
cloud's one-shot fault hook: before its handler runs, or after the handler has done its
work but before its answer gets out, the case that tests a step's idempotency.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from darkroom.cli.studio_client import raw_files
from darkroom.imaging.fixtures import write_corrupt_raw
from darkroom.jobs import FileStatus, JobStatus
from darkroom.local.cloud import LocalCloud
from darkroom.names import Function
from tests.harness import Studio, lease_of, wait_for

pytestmark = pytest.mark.integration

CRASH = "Runtime.ExitError"


def _crashed_states(studio: Studio, execution_arn: str) -> list[str]:
    """The state of every task attempt that failed because its process died, in order."""
    state, crashed = "", []
    for event in studio.executions.history(execution_arn):
        if event["type"].endswith("StateEntered"):
            state = event["stateEnteredEventDetails"]["name"]
        elif event["type"] == "TaskFailed" and event["taskFailedEventDetails"]["error"] == CRASH:
            crashed.append(state)
    return crashed


def test_mark_done_killed_before_and_after_its_work_still_ends_the_job_done(
    studio: Studio, cloud: LocalCloud, shoot: Path
) -> None:
    # The first MarkDone dies before doing anything; the retry dies once it has marked
    # the job DONE, so the third finds its own work done.
    before = cloud.kill_next_invocation(Function.MARK_DONE)
    after = cloud.kill_next_invocation(Function.MARK_DONE, after_handler=True)
    job_id = studio.upload(raw_files(shoot))

    job = studio.wait(job_id, timeout=180)
    assert before.is_set() and after.is_set()
    assert job.status is JobStatus.DONE, job.model_dump()
    assert job.error is None
    assert job.files_done == job.files_total == 3
    assert job.delivered is not None and job.delivered.files_delivered == 3
    assert {f["status"] for f in studio.manifest(job_id)["files"]} == {"DONE"}
    arn = job.execution_arn or ""
    assert studio.executions.status(arn) == "SUCCEEDED"
    assert _crashed_states(studio, arn) == ["MarkDone", "MarkDone"]
    assert lease_of(cloud)["state"] == "IDLE"


def test_every_step_of_the_main_path_survives_a_crash_of_its_process(
    studio: Studio, cloud: LocalCloud, shoot: Path
) -> None:
    # After its work, where that is the harder case: StartWorker has leased and started
    # the instance, AwaitWorker has handed a token over (the retry hands another),
    # StopWorker has stopped and released the instance.
    kills = [
        cloud.kill_next_invocation(Function.REGISTER_JOB),
        cloud.kill_next_invocation(Function.START_WORKER, after_handler=True),
        cloud.kill_next_invocation(Function.AWAIT_WORKER, after_handler=True),
        # StopWorker proper, not a ReleaseShard (the same function, release_only).
        cloud.kill_next_invocation(
            Function.STOP_WORKER, after_handler=True, when=lambda e: not e.get("release_only")
        ),
    ]
    job_id = studio.upload(raw_files(shoot))

    job = studio.wait(job_id, timeout=240)
    assert all(kill.is_set() for kill in kills)
    records = list(studio.jobs.files(job_id))
    assert job.status is JobStatus.DONE, [(r.name, r.status, r.error) for r in records]
    assert len(records) == job.files_total == 3
    assert all(r.status is FileStatus.DONE and r.delivered for r in records)
    arn = job.execution_arn or ""
    assert studio.executions.status(arn) == "SUCCEEDED"
    crashed = _crashed_states(studio, arn)
    # A worker that called back with the token the crashed AwaitWorker handed over,
    # before the retry's token replaced it, leaves the shard to its second attempt
    # (heartbeat timeout): the job still ends DONE, one state later.
    assert crashed in (
        ["RegisterJob", "StartWorker", "WaitForWorker", "StopWorker"],
        ["RegisterJob", "StartWorker", "WaitForWorker", "RetryStopWorker"],
    ), crashed
    assert job.attempt == 1
    assert lease_of(cloud)["state"] == "IDLE"


def test_the_failure_path_survives_crashes_and_records_the_real_error(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    shoot = tmp_path / "broken"
    shoot.mkdir()
    write_corrupt_raw(shoot / "A.dng", "truncated")
    write_corrupt_raw(shoot / "B.dng", "garbage")
    # StopWorker's function also stops the shard's and the packager's workers: the kill
    # is for its ReleaseWorker invocation, after MarkDone found nothing developed.
    kills = [
        cloud.kill_next_invocation(Function.MARK_FAILED, after_handler=True),
        cloud.kill_next_invocation(
            Function.STOP_WORKER, after_handler=True, when=lambda e: bool(e.get("release_only"))
        ),
    ]
    job_id = studio.upload(raw_files(shoot))

    job = studio.wait(job_id, timeout=180)
    assert all(kill.is_set() for kill in kills)
    # The worker's error, not the crash of a step that handled it.
    assert job.status is JobStatus.FAILED
    assert job.error == "AllFilesFailed"
    assert job.cause and "none of the 2 files developed" in job.cause, job.cause
    arn = job.execution_arn or ""
    described = studio.executions.describe(arn)
    assert (described["status"], described["error"]) == ("FAILED", "AllFilesFailed")
    assert _crashed_states(studio, arn) == ["ReleaseWorker", "MarkFailed"]
    assert lease_of(cloud)["state"] == "IDLE"


def test_stop_execution_ends_it_aborted_with_the_callers_error_and_cause(
    studio: Studio, tmp_path: Path
) -> None:
    from darkroom.imaging.fixtures import make_demo_shoot

    files = make_demo_shoot(tmp_path / "shoot", count=8, width=2400, height=1600)
    job_id = studio.upload(files)
    wait_for(
        lambda: (j := studio.jobs.find(job_id)) is not None and j.status is JobStatus.PROCESSING,
        120,
    )
    arn = studio.jobs.get(job_id).execution_arn or ""
    sfn = studio.target.client("stepfunctions")
    stopped = sfn.stop_execution(
        executionArn=arn, error="Operator.Cancelled", cause="the client cancelled the shoot"
    )
    assert stopped["stopDate"]

    # At once, as in AWS: not at the waiting task's next heartbeat or its timeout.
    described = wait_for(
        lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d,
        timeout=5,
    )
    assert described["status"] == "ABORTED"
    assert described["error"] == "Operator.Cancelled"
    assert described["cause"] == "the client cancelled the shoot"
    assert described["stopDate"]
    last = studio.executions.history(arn)[-1]
    assert last["type"] == "ExecutionAborted"
    assert last["executionAbortedEventDetails"] == {
        "error": "Operator.Cancelled",
        "cause": "the client cancelled the shoot",
    }
    # No Catch runs for an aborted execution: the failure path never started.
    entered = {
        e["stateEnteredEventDetails"]["name"]
        for e in studio.executions.history(arn)
        if e["type"].endswith("StateEntered")
    }
    assert not entered & {"ReleaseWorker", "MarkFailed", "JobFailed"}
