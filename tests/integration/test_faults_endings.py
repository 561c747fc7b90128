"""No ending is silent, no submission is lost: faults on the local cloud.

The orchestrator dies on every try of a submission; an execution is stopped mid-run; the
state machine's own failure path dies; an execution fails where no Catch can run. Each
job ends terminal or recovers without a hand edit, and only the ended execution's worker
is stopped and freed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from darkroom import keys, names
from darkroom.api.client import put_file
from darkroom.cli.studio_client import raw_files
from darkroom.imaging import usable_cores
from darkroom.imaging.fixtures import make_demo_shoot, write_corrupt_raw
from darkroom.jobs import JobStatus
from darkroom.local.cloud import LocalCloud
from darkroom.names import Function
from tests.harness import Studio, lease_of, wait_for

pytestmark = pytest.mark.integration

T = TypeVar("T")
# The orchestrator is invoked asynchronously: one try and Lambda's two retries.
ORCHESTRATOR_TRIES = 3
# MarkFailed's first try and its five retries.
MARK_FAILED_TRIES = 6


def _instance_state(cloud: LocalCloud) -> str:
    reservations = cloud.client("ec2").describe_instances(InstanceIds=cloud.instance_ids)
    return str(reservations["Reservations"][0]["Instances"][0]["State"]["Name"])


def _executions_named(studio: Studio, name: str) -> list[dict[str, Any]]:
    return [e for e in studio.executions.list() if e["name"] == name]


def _parked(cloud: LocalCloud) -> int:
    attributes = cloud.client("sqs").get_queue_attributes(
        QueueUrl=cloud.queue_url(names.SUBMISSION_FAILURES_QUEUE),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _create_and_upload(cloud: LocalCloud, files: list[Path]) -> str:
    answer = requests.post(
        f"{cloud.api_url}/jobs",
        json={"files": [{"name": p.name, "size": p.stat().st_size} for p in files]},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    by_name = {p.name: p for p in files}
    for upload in created["uploads"]:
        put_file(upload["url"], by_name[upload["name"]])
    return str(created["job_id"])


def _submit(cloud: LocalCloud, job_id: str) -> requests.Response:
    return requests.post(f"{cloud.api_url}/jobs/{job_id}/submit", timeout=30)


def _submit_with_the_orchestrator_down(cloud: LocalCloud, files: list[Path]) -> str:
    """Submit while every try of the orchestrator loses its process."""
    kills = [cloud.kill_next_invocation(Function.ORCHESTRATOR) for _ in range(ORCHESTRATOR_TRIES)]
    job_id = _create_and_upload(cloud, files)
    answer = _submit(cloud, job_id)
    assert answer.status_code == 202, answer.text
    for kill in kills:
        assert kill.wait(60), "the orchestrator was not tried three times"
    return job_id


def test_a_submission_whose_orchestrator_died_on_every_try_starts_when_submitted_again(
    studio: Studio, cloud: LocalCloud, shoot: Path
) -> None:
    job_id = _submit_with_the_orchestrator_down(cloud, raw_files(shoot))
    answer = _submit(cloud, job_id)
    assert answer.status_code == 202, answer.text
    # Started at once (by this call, or by the scheduled reconciler just before it).
    assert _executions_named(studio, job_id)

    job = studio.wait(job_id, timeout=240)
    assert job.status is JobStatus.DONE, job.model_dump()
    assert len(_executions_named(studio, job_id)) == 1
    assert job.attempt == 1
    # The parked submission was redriven (starting nothing new) and cleared.
    wait_for(lambda: _parked(cloud) == 0, 60)
    assert len(_executions_named(studio, job_id)) == 1


def test_a_submission_whose_orchestrator_died_on_every_try_is_started_by_the_reconciler(
    studio: Studio, cloud: LocalCloud, shoot: Path
) -> None:
    job_id = _submit_with_the_orchestrator_down(cloud, raw_files(shoot))
    # Nobody submits again: the scheduled reconciler redrives the parked event.
    job = studio.wait(job_id, timeout=240)
    assert job.status is JobStatus.DONE, job.model_dump()
    assert len(_executions_named(studio, job_id)) == 1
    wait_for(lambda: _parked(cloud) == 0, 60)


def test_a_submission_whose_event_was_lost_is_started_once_it_is_overdue(
    studio: Studio, cloud: LocalCloud, shoot: Path
) -> None:
    job_id = _submit_with_the_orchestrator_down(cloud, raw_files(shoot))
    # The parked event is lost too (taken off its queue as it arrives): only the upload
    # record is left to say the job was submitted.
    sqs, url = cloud.client("sqs"), cloud.queue_url(names.SUBMISSION_FAILURES_QUEUE)
    (lost,) = wait_for(
        lambda: sqs.receive_message(
            QueueUrl=url, VisibilityTimeout=600, WaitTimeSeconds=5, MaxNumberOfMessages=1
        ).get("Messages"),
        30,
    )
    assert job_id in lost["Body"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=lost["ReceiptHandle"])

    job = studio.wait(job_id, timeout=240)
    assert job.status is JobStatus.DONE, job.model_dump()
    assert len(_executions_named(studio, job_id)) == 1
    assert job.attempt == 1
    # Started as overdue: the reconciler found the submission, not the parked event.
    log = cloud.state_dir / "logs" / f"{Function.RECONCILE_SUBMISSIONS}.log"
    started = [
        json.loads(line)
        for line in log.read_text().splitlines()
        if "submitted job had no execution" in line
    ]
    assert job_id in {entry.get("job_id") for entry in started}


def _developed(studio: Studio, job_id: str) -> set[str]:
    """Files of the job with at least one rendition in the processed bucket."""
    listed = studio.objects.list(studio.target.processed_bucket, keys.processed_prefix(job_id))
    return {Path(o["Key"]).stem for o in listed if not o["Key"].endswith(names.MANIFEST_NAME)}


def test_a_stopped_execution_fails_its_job_frees_its_worker_and_the_worker_stops_at_once(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    files = make_demo_shoot(tmp_path / "shoot", count=14, width=2400, height=1600)
    job_id = studio.upload(files)
    wait_for(
        lambda: (j := studio.jobs.find(job_id)) is not None and j.files_done >= 1 and j, 180, 0.05
    )
    first = studio.jobs.get(job_id).execution_arn or ""

    # An execution started by hand for the running job fails (JobBusy) and its ending
    # leaves the job and its worker to their own execution.
    sfn = cloud.client("stepfunctions")
    intruder = sfn.start_execution(
        stateMachineArn=studio.target.state_machine_arn,
        name=f"{job_id}-intruder",
        input=json.dumps({"job_id": job_id}),
    )["executionArn"]
    wait_for(lambda: studio.executions.status(intruder) == "FAILED", 60)
    time.sleep(2)  # its ending has reached the reconciler
    job = studio.jobs.get(job_id)
    assert (job.status, job.execution_arn) == (JobStatus.PROCESSING, first)
    assert lease_of(cloud)["execution_arn"] == first

    sfn.stop_execution(executionArn=first, error="Studio.Cancelled", cause="wrong shoot uploaded")
    before = _developed(studio, job_id)

    job = wait_for(lambda: (j := studio.jobs.get(job_id)).is_terminal and j, 30)
    assert (job.status, job.error) == (JobStatus.FAILED, "ExecutionEnded")
    assert job.cause and "Studio.Cancelled: wrong shoot uploaded" in job.cause, job.cause
    wait_for(lambda: _instance_state(cloud) == "stopped", 60)
    wait_for(lambda: lease_of(cloud)["state"] == "IDLE", 30)
    assert cloud.instances is not None
    wait_for(lambda: cloud.instances.pid(cloud.instance_ids[0]) is None, 30)

    # The worker develops two files per process at once: at most those were finished
    # after the stop, and nothing else of the shoot was developed.
    after = _developed(studio, job_id)
    in_flight = 2 * usable_cores()
    assert len(after - before) <= in_flight, (sorted(before), sorted(after))
    assert len(after) < len(files)
    assert studio.jobs.get(job_id).status is JobStatus.FAILED


def test_a_failure_path_that_dies_on_every_try_still_leaves_the_job_failed(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    shoot = tmp_path / "broken"
    shoot.mkdir()
    write_corrupt_raw(shoot / "A.dng", "truncated")
    write_corrupt_raw(shoot / "B.dng", "garbage")
    kills = [cloud.kill_next_invocation(Function.MARK_FAILED) for _ in range(MARK_FAILED_TRIES)]
    job_id = studio.upload(raw_files(shoot))

    arn = wait_for(lambda: (j := studio.jobs.find(job_id)) is not None and j.execution_arn, 120)
    described = wait_for(
        lambda: (d := studio.executions.describe(arn))["status"] != "RUNNING" and d, 240, 0.5
    )
    assert all(kill.is_set() for kill in kills)
    # MarkFailed never ran to the end: the execution failed with its crash.
    assert (described["status"], described["error"]) == ("FAILED", "Runtime.ExitError")
    job = wait_for(lambda: (j := studio.jobs.get(job_id)).is_terminal and j, 30)
    assert (job.status, job.error) == (JobStatus.FAILED, "ExecutionEnded")
    assert job.cause and "ended FAILED" in job.cause and "Runtime.ExitError" in job.cause
    wait_for(lambda: lease_of(cloud)["state"] == "IDLE", 30)
    wait_for(lambda: _instance_state(cloud) == "stopped", 60)


def test_an_execution_failing_where_no_catch_runs_reaches_the_reconciler(
    studio: Studio, cloud: LocalCloud
) -> None:
    # An input that is not an object: the Catch cannot put its error into it, which is a
    # States.Runtime error, and States.ALL does not catch those.
    arn = cloud.client("stepfunctions").start_execution(
        stateMachineArn=studio.target.state_machine_arn,
        name="by-hand-not-an-object",
        input=json.dumps("just-a-job-id"),
    )["executionArn"]
    described = wait_for(
        lambda: (d := studio.executions.describe(arn))["status"] != "RUNNING" and d, 60
    )
    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime"), described
    log = cloud.state_dir / "logs" / f"{Function.RECONCILE_ENDING}.log"
    wait_for(lambda: log.exists() and arn in log.read_text(), 30)
    # It owned nothing: no job was made, no worker touched.
    assert studio.jobs.find("just-a-job-id") is None
    assert lease_of(cloud).get("execution_arn") != arn
