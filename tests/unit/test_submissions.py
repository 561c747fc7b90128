"""The submission reconciler against moto's in-process mocks: overdue submissions and
parked orchestrator events start their job's one execution, and nothing else."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from darkroom import keys, names, submissions
from darkroom.aws.executions import Executions
from darkroom.aws.job_store import JobStore
from darkroom.aws.queues import FailureQueue
from darkroom.aws.table import create_request
from darkroom.aws.uploads import DeclaredFile, Upload, UploadStatus, UploadStore
from tests.moto_config import IDLE_STATE_MACHINES, offline_aws

REGION = "us-east-1"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
AFTER = timedelta(minutes=5)


@dataclass
class World:
    uploads: UploadStore
    jobs: JobStore
    executions: Executions
    failures: FailureQueue

    def upload(self, job_id: str, submitted: datetime | None) -> None:
        stamp = (submitted or NOW).isoformat().replace("+00:00", "Z")
        self.uploads.create(
            Upload(
                job_id=job_id,
                status=UploadStatus.CREATED,
                files=(DeclaredFile(name="A.dng", size=1),),
                created_at=stamp,
            )
        )
        if submitted is not None:
            self.uploads.mark_submitted(job_id, stamp)

    def reconcile(self) -> submissions.Outcome:
        return submissions.reconcile(
            uploads=self.uploads,
            jobs=self.jobs,
            executions=self.executions,
            failures=self.failures,
            raw_bucket=names.RAW_BUCKET,
            resubmit_after=AFTER,
            now=NOW,
        )

    def started(self) -> dict[str, Any]:
        return {
            e["name"]: json.loads(self.executions.describe(e["executionArn"])["input"])
            for e in self.executions.list()
        }


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    offline_aws(monkeypatch, REGION)
    with mock_aws(config=IDLE_STATE_MACHINES):
        session = boto3.session.Session(region_name=REGION)
        ddb = session.client("dynamodb")
        for schema in (names.JOBS_SCHEMA, names.UPLOADS_SCHEMA):
            ddb.create_table(**create_request(schema))
        sfn = session.client("stepfunctions")
        machine = sfn.create_state_machine(
            name=names.state_machine_name(),
            definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/x",
        )["stateMachineArn"]
        sqs = session.client("sqs")
        url = sqs.create_queue(QueueName=names.SUBMISSION_FAILURES_QUEUE)["QueueUrl"]
        yield World(
            UploadStore(names.UPLOADS_TABLE, ddb),
            JobStore(names.JOBS_TABLE, ddb),
            Executions(machine, sfn),
            FailureQueue(url, sqs),
        )


def test_an_overdue_submission_with_no_execution_is_started_once(world: World) -> None:
    world.upload("late", NOW - AFTER - timedelta(seconds=1))
    world.upload("recent", NOW - AFTER + timedelta(seconds=30))  # the orchestrator may yet
    world.upload("declared", None)  # not submitted: nothing to start
    assert world.reconcile().started == ["late"]
    assert world.started() == {"late": {"job_id": "late"}}
    assert world.reconcile().started == []
    assert list(world.started()) == ["late"]


def test_a_submission_with_an_execution_or_a_job_record_is_left_alone(world: World) -> None:
    before = NOW - AFTER * 2
    world.upload("running", before)
    world.executions.start("running", {"job_id": "running"})
    world.upload("registered", before)
    world.jobs.register(
        job_id="registered",
        execution_arn=world.executions.arn_for("registered"),
        files=["A.dng"],
        name=None,
        recipe=None,
    )
    assert world.reconcile().started == []
    assert list(world.started()) == ["running"]


def _parked(job_id: str) -> dict[str, Any]:
    """What Lambda puts on the orchestrator's on-failure queue once its tries are spent."""
    key = keys.raw_manifest_key(job_id)
    return {
        "version": "1.0",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": names.RAW_BUCKET}, "object": {"key": key}},
                }
            ]
        },
        "responseContext": {"functionError": "Unhandled"},
        "responsePayload": {"errorType": "Runtime.ExitError"},
    }


def test_parked_submissions_are_redriven_and_cleared_and_strangers_are_kept(
    world: World,
) -> None:
    world.failures.send(_parked("parked"))
    world.failures.send(_parked("parked"))  # S3 delivered it twice
    world.failures.send({"something": "else"})
    outcome = world.reconcile()
    assert (outcome.redriven, outcome.kept) == (["parked", "parked"], 1)
    assert world.started() == {"parked": {"job_id": "parked"}}
    # Handled events are gone; the stranger waits for a person (hidden for a while).
    attributes = world.failures._sqs.get_queue_attributes(
        QueueUrl=world.failures.queue_url, AttributeNames=["All"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
