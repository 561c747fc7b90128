"""The stores over moto's in-process DynamoDB: keys, listing order and cursors, leases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from darkroom import names
from darkroom.aws.job_store import JobStore, job_key
from darkroom.aws.lease_store import LeaseState, LeaseStore, Waiter
from darkroom.aws.shares import RETENTION_AFTER_EXPIRY_SECONDS, Share, ShareIdTaken, ShareStore
from darkroom.aws.table import create_request
from darkroom.aws.uploads import DeclaredFile, JobExists, Upload, UploadStatus, UploadStore
from darkroom.jobs import JobStatus
from tests.moto_config import offline_aws

REGION = "us-east-1"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    offline_aws(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        for schema in names.TABLES:
            client.create_table(**create_request(schema))
        yield client


def _register(jobs: JobStore, job_id: str, execution: str = "arn:exec:1") -> None:
    jobs.register(job_id=job_id, execution_arn=execution, files=["A.dng"], name=None, recipe=None)


def test_the_job_item_is_keyed_by_job_id_and_sk_and_carries_its_listing_keys(ddb: Any) -> None:
    jobs = JobStore(names.JOBS_TABLE, ddb)
    _register(jobs, "j1")
    raw = ddb.get_item(TableName=names.JOBS_TABLE, Key={"job_id": {"S": "j1"}, "sk": {"S": "JOB"}})
    item = raw["Item"]
    assert item["entity"] == {"S": "JOB"}
    created_at = item["created_at"]["S"]
    assert item["created_key"] == {"S": f"{created_at}#j1"}
    assert job_key("j1") == {"job_id": "j1", "sk": "JOB"}


def test_a_reprocessed_job_keeps_its_place_in_the_listing(ddb: Any) -> None:
    jobs = JobStore(names.JOBS_TABLE, ddb)
    _register(jobs, "j1")
    first = jobs.get("j1")
    jobs.transition("j1", "arn:exec:1", JobStatus.FAILED)
    _register(jobs, "j2")
    _register(jobs, "j1", execution="arn:exec:2")
    again = jobs.get("j1")
    assert again.attempt == 2 and again.created_key == first.created_key
    assert [j.job_id for j in jobs.newest()] == ["j2", "j1"]


def test_jobs_are_listed_newest_first_in_pages_of_one_with_a_stable_cursor(ddb: Any) -> None:
    jobs = JobStore(names.JOBS_TABLE, ddb)
    for job_id in ("j1", "j2", "j3"):
        _register(jobs, job_id)
    first = next(jobs.newest(page_size=1))
    assert first.job_id == "j3"
    # A job created between two pages sorts before the cursor: the next page is unmoved.
    _register(jobs, "j4")
    second = next(jobs.newest(before=first.created_key, page_size=1))
    assert second.job_id == "j2"
    rest = [j.job_id for j in jobs.newest(before=second.created_key, page_size=1)]
    assert rest == ["j1"]
    assert [j.job_id for j in jobs.newest(page_size=1)] == ["j4", "j3", "j2", "j1"]


def test_registered_names_the_jobs_that_have_a_record(ddb: Any) -> None:
    jobs = JobStore(names.JOBS_TABLE, ddb)
    _register(jobs, "j1")
    assert jobs.registered(["j1", "j2", "j1"]) == {"j1"}
    assert jobs.registered([]) == set()


def test_uploads_are_created_once_and_listed_newest_first(ddb: Any) -> None:
    uploads = UploadStore(names.UPLOADS_TABLE, ddb)
    for i, job_id in enumerate(("u1", "u2")):
        upload = Upload(
            job_id=job_id,
            status=UploadStatus.CREATED,
            files=(DeclaredFile(name="A.dng", size=10), DeclaredFile(name="B.dng", size=5)),
            created_at=f"2026-01-0{i + 1}T00:00:00.000Z",
            recipe={"exposure": {"compensation_ev": 0.5}},
            expires_ttl=99,
        )
        uploads.create(upload)
    with pytest.raises(JobExists):
        uploads.create(upload)
    assert uploads.get("u2") == upload and upload.total_bytes == 15
    assert [u.job_id for u in uploads.newest(page_size=1)] == ["u2", "u1"]
    assert [u.job_id for u in uploads.newest(before=upload.created_key)] == ["u1"]
    submitted = uploads.mark_submitted("u1", "2026-02-01T00:00:00.000Z")
    assert submitted.status is UploadStatus.SUBMITTED
    assert uploads.mark_submitted("u1", "later").submitted_at == "2026-02-01T00:00:00.000Z"


def test_shares_store_their_ttl_and_revoke_only_for_their_job(ddb: Any) -> None:
    shares = ShareStore(names.SHARES_TABLE, ddb)
    share = Share(share_id="s1", job_id="j1", token_sha256="h", created_at="t", expires_at=1000)
    shares.put(share)
    with pytest.raises(ShareIdTaken):
        shares.put(share)
    raw = ddb.get_item(TableName=names.SHARES_TABLE, Key={"share_id": {"S": "s1"}})["Item"]
    assert raw["expires_ttl"] == {"N": str(1000 + RETENTION_AFTER_EXPIRY_SECONDS)}
    assert shares.get("s1") == share
    assert shares.revoke("other-job", "s1", "now") is None
    revoked = shares.revoke("j1", "s1", "now")
    assert revoked is not None and revoked.revoked_at == "now"
    assert shares.revoke("j1", "s1", "later") == revoked
    assert shares.revoke("j1", "nope", "now") is None


def test_finding_a_held_lease_in_a_known_pool_reads_its_rows_and_never_scans(ddb: Any) -> None:
    leases = LeaseStore(names.WORKERS_TABLE, ddb)
    pool = ("i-1", "i-2")
    leases.ensure(pool)
    leases.ensure(pool)  # existing rows are kept
    taken = leases.acquire("j1", "arn:exec:1", pool)
    assert taken is not None and taken.state is LeaseState.LEASED

    calls: list[str] = []
    ddb.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    assert leases.acquire("j1", "arn:exec:1", pool) == taken
    assert leases.held_by("arn:exec:1", pool) == [taken]
    assert leases.held_for("arn:exec:1", 0, pool) == taken
    assert leases.held_for("arn:exec:1", 1, pool) is None
    assert "Scan" not in calls and "BatchGetItem" in calls
    assert [lease.instance_id for lease in leases.of(("i-2", "i-1", "i-9"))] == ["i-1", "i-2"]
    # Without the pool's ids (the failure path may not know them) it reads the table.
    calls.clear()
    assert leases.held_by("arn:exec:1") == [taken] and "Scan" in calls
    assert [lease.instance_id for lease in leases.all()] == ["i-1", "i-2"]


def test_waiters_share_the_workers_table_but_no_lease_read_sees_them(ddb: Any) -> None:
    leases = LeaseStore(names.WORKERS_TABLE, ddb)
    leases.ensure(("i-1",))
    waiter = Waiter(job_id="j1", execution_arn="arn:exec:1", shard=2, created_at="t")
    leases.wait(waiter)
    leases.wait(waiter)  # a retried StartWorker keeps its place
    assert [lease.instance_id for lease in leases.all()] == ["i-1"]
    assert [w.key for w in leases.waiters()] == [waiter.key]
    assert leases.waiters()[0].since is not None
    leases.stop_waiting("arn:exec:1", 2)
    leases.stop_waiting("arn:exec:1", 2)  # gone already: nothing to do
    assert leases.waiters() == []
