"""The local cloud's AWS call recorder: every call and presign of a process, one JSON
line each, with what names the resource and nothing bulky."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore import handlers
from botocore.stub import Stubber

from darkroom.local import call_recorder
from tests.moto_config import offline_aws


@pytest.fixture
def recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    offline_aws(monkeypatch)
    # install() extends botocore's process-wide list: keep it to this test.
    monkeypatch.setattr(handlers, "BUILTIN_HANDLERS", list(handlers.BUILTIN_HANDLERS))
    path = tmp_path / "calls.jsonl"
    call_recorder.install(path, "darkroom-api")
    return path


def test_a_call_is_recorded_with_its_resource_and_not_its_body(recording: Path) -> None:
    ddb = boto3.session.Session().client("dynamodb")
    item = {"job_id": {"S": "j1"}, "payload": {"S": "x" * 1000}}
    with Stubber(ddb) as stub:
        stub.add_response("put_item", {}, {"TableName": "jobs", "Item": item})
        ddb.put_item(TableName="jobs", Item=item)
    (record,) = call_recorder.read(recording)
    assert record == {
        "principal": "darkroom-api",
        "service": "dynamodb",
        "operation": "PutItem",
        "params": {"TableName": "jobs"},
        "presign": False,
    }


def test_a_presigned_url_is_recorded_under_the_signer(recording: Path) -> None:
    s3 = boto3.session.Session().client("s3")
    s3.generate_presigned_url("put_object", Params={"Bucket": "raw", "Key": "raw/j/a.dng"})
    (record,) = call_recorder.read(recording)
    assert record["principal"] == "darkroom-api"
    assert (record["service"], record["operation"]) == ("s3", "PutObject")
    assert record["params"] == {"Bucket": "raw", "Key": "raw/j/a.dng"}
    assert record["presign"] is True


def test_batches_and_transactions_name_their_tables() -> None:
    summary = call_recorder.summarize(
        {
            "RequestItems": {"jobs": {}, "uploads": {}},
            "TransactItems": [
                {"Put": {"TableName": "jobs", "Item": {}}},
                {"ConditionCheck": {"TableName": "shares", "Key": {}}},
            ],
            "Delete": {"Objects": [{"Key": "a", "VersionId": "v1"}, {"Key": "b"}]},
            "Bucket": "raw",
        }
    )
    assert summary == {
        "Bucket": "raw",
        "RequestItems": ["jobs", "uploads"],
        "TransactItems": [("ConditionCheck", "shares"), ("Put", "jobs")],
        "DeleteKeys": [{"Key": "a", "VersionId": "v1"}, {"Key": "b"}],
    }


def test_the_worker_is_started_through_the_recorder_only_when_recording() -> None:
    assert call_recorder.worker_command("py", {}, "i-1") == ["py", "-m", "worker"]
    recording = {call_recorder.CALL_LOG_ENV: "/tmp/calls.jsonl"}
    command = call_recorder.worker_command("py", recording, "i-1")
    assert command == ["py", "-m", "darkroom.local.call_recorder", "worker", "worker", "i-1"]


def test_nothing_is_installed_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers, "BUILTIN_HANDLERS", list(handlers.BUILTIN_HANDLERS))
    before = len(handlers.BUILTIN_HANDLERS)
    assert not call_recorder.install_from_environment("fn", environ={})
    assert len(handlers.BUILTIN_HANDLERS) == before
