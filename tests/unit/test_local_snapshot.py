"""The local cloud's snapshot against moto's in-process mocks: what one cloud saved, a
fresh one loads through the services' APIs, versions in order, records pointing at the
re-imported versions; a save that dies leaves the previous snapshot."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from darkroom import names, pipeline
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.aws.table import create_request
from darkroom.jobs import JobStatus
from darkroom.local import snapshot

EXEC = "arn:aws:states:us-east-1:123456789012:execution:m:j1"
REGION = "us-east-1"


class Cloud:
    """What LocalCloud.provision makes that the snapshot reads and writes."""

    def __init__(self) -> None:
        s3 = self.client("s3")
        for bucket in snapshot.BUCKETS:
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(
            Bucket=names.RAW_BUCKET, VersioningConfiguration={"Status": "Enabled"}
        )
        for schema in names.TABLES:
            self.client("dynamodb").create_table(**create_request(schema))
        self.jobs = JobStore(names.JOBS_TABLE, self.client("dynamodb"))

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]


@pytest.fixture
def saved(tmp_path: Path) -> tuple[snapshot.Summary, dict[str, Any]]:
    """What a first cloud saved under tmp_path; it is gone before the test starts a
    fresh one."""
    with mock_aws():
        first = Cloud()
        filled = _fill(first)
        return snapshot.save(first, tmp_path), filled


def _fill(cloud: Cloud) -> dict[str, Any]:
    s3 = cloud.client("s3")
    raw = names.RAW_BUCKET
    s3.put_object(Bucket=raw, Key="raw/j1/A.DNG", Body=b"first", ContentType="image/x-adobe-dng")
    latest = s3.put_object(
        Bucket=raw,
        Key="raw/j1/A.DNG",
        Body=b"second",
        ContentType="image/x-adobe-dng",
        Metadata={"shot": "1"},
    )["VersionId"]
    s3.put_object(Bucket=raw, Key="raw/j1/gone.DNG", Body=b"x")
    s3.delete_object(Bucket=raw, Key="raw/j1/gone.DNG")
    s3.put_object(Bucket=names.PROCESSED_BUCKET, Key="processed/j1/A.jpg", Body=b"\xff\xd8jpeg")
    pipeline.register_job(
        {"job_id": "j1"},
        EXEC,
        raw_bucket=raw,
        jobs=cloud.jobs,
        objects=Objects(s3),
        heartbeat_seconds=10,
        timeout_seconds=600,
    )
    cloud.client("dynamodb").put_item(
        TableName=names.SHARES_TABLE,
        Item={"share_id": {"S": "s1"}, "job_id": {"S": "j1"}, "blob": {"B": b"\x00\x01"}},
    )
    return {"latest": latest}


def _bodies(s3: Any, key: str) -> list[bytes]:
    """A key's versions, oldest first (S3 lists them newest first)."""
    listed = s3.list_object_versions(Bucket=names.RAW_BUCKET, Prefix=key)["Versions"]
    return [
        s3.get_object(Bucket=names.RAW_BUCKET, Key=key, VersionId=v["VersionId"])["Body"].read()
        for v in reversed(listed)
    ]


def test_what_one_cloud_saved_a_fresh_one_loads(saved: Any, tmp_path: Path) -> None:
    summary, before = saved
    assert (summary.objects, summary.items) == (5, 4)  # RAW: 3 versions, a marker; a rendition
    with mock_aws():
        second = Cloud()
        loaded = snapshot.load(second, tmp_path)
        assert loaded is not None and (loaded.objects, loaded.items) == (5, 4)
        s3 = second.client("s3")
        got = s3.get_object(Bucket=names.RAW_BUCKET, Key="raw/j1/A.DNG")
        assert got["Body"].read() == b"second"
        assert (got["ContentType"], got["Metadata"]) == ("image/x-adobe-dng", {"shot": "1"})
        assert _bodies(s3, "raw/j1/A.DNG") == [b"first", b"second"]
        gone = s3.list_object_versions(Bucket=names.RAW_BUCKET, Prefix="raw/j1/gone.DNG")
        assert [m["IsLatest"] for m in gone["DeleteMarkers"]] == [True]
        # The file record reads the re-imported original, not an id this cloud never made.
        item = second.client("dynamodb").get_item(
            TableName=names.JOBS_TABLE, Key={"job_id": {"S": "j1"}, "sk": {"S": "FILE#A.DNG"}}
        )["Item"]
        new_latest = s3.head_object(Bucket=names.RAW_BUCKET, Key="raw/j1/A.DNG")["VersionId"]
        assert item["original_version"]["S"] == new_latest == loaded.versions[before["latest"]]
        share = second.client("dynamodb").get_item(
            TableName=names.SHARES_TABLE, Key={"share_id": {"S": "s1"}}
        )["Item"]
        assert share["blob"]["B"] == b"\x00\x01"

        # The execution that owned j1 is gone: the job fails, open to a reprocess.
        assert snapshot.fail_interrupted(second.jobs, loaded.jobs) == ["j1"]
        job = second.jobs.get("j1")
        assert job.status == JobStatus.FAILED and job.cause is not None
        assert snapshot.INTERRUPTED_CAUSE in job.cause
        assert snapshot.fail_interrupted(second.jobs, [job.model_dump(mode="json")]) == []


def test_loading_does_not_notify(saved: Any, tmp_path: Path) -> None:
    with mock_aws():
        second = Cloud()
        s3 = second.client("s3")
        wiring = {
            "QueueConfigurations": [
                {
                    "Id": "q",
                    "QueueArn": second.client("sqs").get_queue_attributes(
                        QueueUrl=second.client("sqs").create_queue(QueueName="q")["QueueUrl"],
                        AttributeNames=["QueueArn"],
                    )["Attributes"]["QueueArn"],
                    "Events": ["s3:ObjectCreated:*"],
                }
            ]
        }
        s3.put_bucket_notification_configuration(
            Bucket=names.RAW_BUCKET, NotificationConfiguration=wiring
        )
        snapshot.load(second, tmp_path)
        url = second.client("sqs").get_queue_url(QueueName="q")["QueueUrl"]
        messages = second.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        # moto sends one test event when a queue is wired; none for the imported objects.
        bodies = [json.loads(m["Body"]) for m in messages.get("Messages", [])]
        assert all("Records" not in b for b in bodies), bodies
        kept = s3.get_bucket_notification_configuration(Bucket=names.RAW_BUCKET)
        assert kept["QueueConfigurations"][0]["Id"] == "q"


def test_a_save_that_dies_leaves_the_previous_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        first = Cloud()
        _fill(first)
        snapshot.save(first, tmp_path)
        kept = snapshot.current(tmp_path)
        first.client("s3").put_object(Bucket=names.INPUT_BUCKET, Key="late.png", Body=b"late")

        def dies(*_: Any) -> int:
            raise OSError("disk full")

        monkeypatch.setattr(snapshot, "_save_table", dies)
        with pytest.raises(OSError):
            snapshot.save(first, tmp_path)
        assert snapshot.current(tmp_path) == kept
        monkeypatch.undo()
    with mock_aws():
        loaded = snapshot.load(Cloud(), tmp_path)
        assert loaded is not None and loaded.objects == 5

    assert snapshot.reset(tmp_path) is True
    assert snapshot.current(tmp_path) is None and snapshot.reset(tmp_path) is False


def test_local_up_keeps_its_state_in_the_users_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from darkroom.cli.local_cmd import default_state_dir

    assert default_state_dir().parts[-2:] == ("darkroom", "local")
    # Without platformdirs, the XDG base directory (what platformdirs answers on Linux).
    monkeypatch.setitem(sys.modules, "platformdirs", None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_state_dir() == tmp_path / "darkroom" / "local"


# -- executions -------------------------------------------------------------------------
MACHINE = "darkroom-jobs"
DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
EXECUTING: Any = {"stepfunctions": {"execute_state_machine": True}}


def _machine(cloud: Cloud) -> str:
    return str(
        cloud.client("stepfunctions").create_state_machine(
            name=MACHINE, definition=DEFINITION, roleArn="arn:aws:iam::123456789012:role/r"
        )["stateMachineArn"]
    )


def test_ended_executions_are_listed_described_and_read_after_a_restart(tmp_path: Path) -> None:
    from darkroom.local import moto_hooks

    with mock_aws():
        first = Cloud()
        sfn = first.client("stepfunctions")
        machine = _machine(first)
        ended = sfn.start_execution(stateMachineArn=machine, name="j1", input='{"job_id": "j1"}')
        sfn.stop_execution(executionArn=ended["executionArn"], error="E", cause="why")
        running = sfn.start_execution(stateMachineArn=machine, name="j2", input="{}")
        first_history = sfn.get_execution_history(executionArn=ended["executionArn"])["events"]
        first_described = sfn.describe_execution(executionArn=ended["executionArn"])
        saved = snapshot.save(first, tmp_path)
        assert saved.executions == 1
        # Archived once: an ended execution never changes.
        assert snapshot.save(first, tmp_path).executions == 0

    with mock_aws(config=EXECUTING):
        second = Cloud()
        _machine(second)
        archived = snapshot.archived_executions(tmp_path)
        assert moto_hooks.restore_executions(archived, account_id="123456789012", region=REGION)
        sfn = second.client("stepfunctions")
        listed = {
            e["name"]: e["status"]
            for e in sfn.list_executions(stateMachineArn=machine)["executions"]
        }
        assert listed == {"j1": "ABORTED", "j2": "ABORTED"}
        only = sfn.list_executions(stateMachineArn=machine, statusFilter="SUCCEEDED")
        assert only["executions"] == []
        described = sfn.describe_execution(executionArn=ended["executionArn"])
        for field in ("status", "input", "startDate", "stopDate", "name", "stateMachineArn"):
            assert described[field] == first_described[field], field
        events = sfn.get_execution_history(executionArn=ended["executionArn"])["events"]
        assert [e["type"] for e in events] == [e["type"] for e in first_history]
        # The one the stop interrupted ends as its job does: stopped with the cloud.
        gone = sfn.describe_execution(executionArn=running["executionArn"])
        assert (gone["error"], gone["cause"]) == (
            snapshot.INTERRUPTED_ERROR,
            snapshot.INTERRUPTED_CAUSE,
        )
        history = sfn.get_execution_history(executionArn=running["executionArn"])["events"]
        assert history[-1]["type"] == "ExecutionAborted"
        # Its name is taken, as AWS keeps an execution's name.
        with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
            sfn.start_execution(stateMachineArn=machine, name="j1", input="{}")
        new = sfn.start_execution(stateMachineArn=machine, name="j3", input="{}")
        assert new["executionArn"].endswith(":j3")


# -- saves that cost what changed, and never leave half a snapshot -----------------------
def _blobs(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in (directory / snapshot.BLOBS).iterdir()}


def test_a_save_copies_only_the_bodies_that_changed(tmp_path: Path) -> None:
    with mock_aws():
        cloud = Cloud()
        _fill(cloud)
        snapshot.save(cloud, tmp_path)
        before = _blobs(tmp_path)
        snapshot.save(cloud, tmp_path)
        assert _blobs(tmp_path) == before  # not one body written again
        cloud.client("s3").put_object(
            Bucket=names.PROCESSED_BUCKET, Key="processed/j1/A.jpg", Body=b"new"
        )
        snapshot.save(cloud, tmp_path)
        after = _blobs(tmp_path)
        # The overwritten body is gone with the snapshot that named it.
        assert len(after) == len(before) and len(set(after) - set(before)) == 1
    with mock_aws():
        second = Cloud()
        snapshot.load(second, tmp_path)
        body = second.client("s3").get_object(
            Bucket=names.PROCESSED_BUCKET, Key="processed/j1/A.jpg"
        )
        assert body["Body"].read() == b"new"


def test_a_save_killed_while_writing_a_body_leaves_the_previous_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        cloud = Cloud()
        _fill(cloud)
        snapshot.save(cloud, tmp_path)
        kept = snapshot.current(tmp_path)
        cloud.client("s3").put_object(Bucket=names.INPUT_BUCKET, Key="late.png", Body=b"x" * 100)
        real_copy = snapshot.shutil.copyfileobj

        def dies_half_way(src: Any, dst: Any, length: int = 0) -> None:
            dst.write(src.read(10))
            raise KeyboardInterrupt  # nothing after this line runs, as under a kill -9

        monkeypatch.setattr(snapshot.shutil, "copyfileobj", dies_half_way)
        with pytest.raises(KeyboardInterrupt):
            snapshot.save(cloud, tmp_path)
        monkeypatch.setattr(snapshot.shutil, "copyfileobj", real_copy)
        assert snapshot.current(tmp_path) == kept
        # The half body has a temporary name, which no snapshot names.
        names_on_disk = {p.name for p in (tmp_path / snapshot.BLOBS).iterdir()}
        assert any(n.endswith(".tmp") for n in names_on_disk)
    with mock_aws():
        loaded = snapshot.load(Cloud(), tmp_path)
        assert loaded is not None and loaded.objects == 5


def test_a_snapshot_saved_before_bodies_were_shared_still_loads(saved: Any, tmp_path: Path) -> None:
    # Format 1 (bodies inside each snapshot, under s3/<bucket>/<n>), as earlier saves left it.
    live = snapshot.current(tmp_path)
    assert live is not None
    for index in (live / "s3").glob("*.jsonl"):
        bodies = live / "s3" / index.stem
        bodies.mkdir()
        entries = [json.loads(line) for line in index.read_text().splitlines()]
        for n, entry in enumerate(entries):
            if "blob" in entry:
                (tmp_path / snapshot.BLOBS / entry.pop("blob")).rename(bodies / str(n))
                entry["file"] = str(n)
        index.write_text("".join(json.dumps(e) + "\n" for e in entries))
    manifest = json.loads((live / "manifest.json").read_text())
    (live / "manifest.json").write_text(json.dumps(manifest | {"format": 1}))
    with mock_aws():
        second = Cloud()
        loaded = snapshot.load(second, tmp_path)
        assert loaded is not None and loaded.objects == 5
        got = second.client("s3").get_object(Bucket=names.RAW_BUCKET, Key="raw/j1/A.DNG")
        assert got["Body"].read() == b"second"
