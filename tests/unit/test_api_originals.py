"""Originals through the API core (moto in-process): upload URLs that can only create a
file, resuming an interrupted upload, and erasing a job."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from darkroom import keys, names, pipeline
from darkroom.aws.executions import Executions
from darkroom.erasure import erasure_name
from darkroom.errors import TransientError
from darkroom.jobs import JobStatus
from tests.unit import test_api
from tests.unit.test_api import SM_ARN, Api, _create

api = test_api.api  # the API core over moto, as test_api.py's tests have it


def _version_raw_bucket(api: Api) -> None:
    api.s3.put_bucket_versioning(
        Bucket=names.RAW_BUCKET, VersioningConfiguration={"Status": "Enabled"}
    )


def _everything_of(api: Api, job_id: str) -> dict[str, Any]:
    """Whatever of the job is left anywhere the API keeps something."""
    left: dict[str, Any] = {}
    for bucket, prefix in (
        (names.RAW_BUCKET, keys.raw_prefix(job_id)),
        (names.PROCESSED_BUCKET, keys.processed_prefix(job_id)),
    ):
        page = api.s3.list_object_versions(Bucket=bucket, Prefix=prefix)
        left[bucket] = [
            (v["Key"], v["VersionId"])
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
    left["jobs"] = api.ddb.query(
        TableName=names.JOBS_TABLE,
        KeyConditionExpression="job_id = :j",
        ExpressionAttributeValues={":j": {"S": job_id}},
    )["Items"]
    left["upload"] = api.service.uploads.get(job_id)
    left["shares"] = api.service.shares.of_job(job_id)
    return left


NOTHING = {
    names.RAW_BUCKET: [],
    names.PROCESSED_BUCKET: [],
    "jobs": [],
    "upload": None,
    "shares": [],
}


def _finished_with_everything(api: Api, job_id: str) -> None:
    """A delivered job with all a job can leave behind: an overwritten original (two
    versions) and a deleted one (a delete marker), a per-file item beside the job's own,
    its upload record, renditions and two shares."""
    _create(api, {"A.dng": 3, "B.dng": 3}, job_id=job_id)
    api.put_raw(job_id, "A.dng", 3)
    api.put_raw(job_id, "B.dng", 3)
    assert api.call("POST", f"/jobs/{job_id}/submit")[0] == 202
    api.finish(job_id, {"A.dng": 3, "B.dng": 3})
    api.put_raw(job_id, "A.dng", 3)  # a second version, as a hand overwrite would leave
    api.s3.delete_object(Bucket=names.RAW_BUCKET, Key=keys.raw_key(job_id, "B.dng"))
    api.ddb.put_item(
        TableName=names.JOBS_TABLE,
        Item={"job_id": {"S": job_id}, "sk": {"S": "FILE#A.dng"}, "status": {"S": "DONE"}},
    )
    api.share(job_id)
    api.share(job_id)


# -- upload URLs ------------------------------------------------------------------------
def test_upload_urls_sign_if_none_match_so_no_put_can_replace_an_original(api: Api) -> None:
    doc = _create(api, {"A.dng": 10})
    (upload,) = doc["uploads"]
    signed = parse_qs(urlsplit(upload["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
    assert "if-none-match" in signed
    assert upload["headers"]["If-None-Match"] == "*"


def test_resuming_issues_urls_only_for_the_files_not_uploaded_yet(api: Api) -> None:
    doc = _create(api, {"A.dng": 10, "B.dng": 20, "C.dng": 30})
    job_id = doc["job_id"]
    api.put_raw(job_id, "B.dng", 20)
    api.now[0] += 7200  # the first URLs have long expired
    status, _, resumed = api.call("POST", f"/jobs/{job_id}/uploads")
    assert status == 200, resumed
    assert [u["name"] for u in resumed["uploads"]] == ["A.dng", "C.dng"]
    assert resumed["uploaded"] == ["B.dng"]
    assert resumed["expires_in"] == 3600
    for upload in resumed["uploads"]:
        assert upload["headers"] == {"Content-Length": str(upload["size"]), "If-None-Match": "*"}
        assert urlsplit(upload["url"]).path.endswith(keys.raw_key(job_id, upload["name"]))
    api.put_raw(job_id, "A.dng", 10)
    api.put_raw(job_id, "C.dng", 30)
    status, _, done = api.call("POST", f"/jobs/{job_id}/uploads")
    assert (status, done["uploads"], done["uploaded"]) == (200, [], ["A.dng", "B.dng", "C.dng"])


def test_no_upload_url_is_issued_once_a_job_is_submitted(api: Api) -> None:
    doc = _create(api, {"A.dng": 10})
    job_id = doc["job_id"]
    api.put_raw(job_id, "A.dng", 10)
    assert api.call("POST", f"/jobs/{job_id}/submit")[0] == 202
    status, _, refused = api.call("POST", f"/jobs/{job_id}/uploads")
    assert (status, refused["error"]) == (409, "conflict")
    assert "already submitted" in refused["message"]
    api.finish(job_id, {"A.dng": 10})
    assert api.call("POST", f"/jobs/{job_id}/uploads")[0] == 409
    assert api.call("POST", "/jobs/nope/uploads")[0] == 404


def test_a_file_of_another_size_cannot_be_resumed_and_is_named(api: Api) -> None:
    job_id = _create(api, {"A.dng": 10, "B.dng": 20})["job_id"]
    api.put_raw(job_id, "A.dng", 11)
    status, _, refused = api.call("POST", f"/jobs/{job_id}/uploads")
    assert status == 409
    assert refused["files"] == [{"name": "A.dng", "expected_size": 10, "actual_size": 11}]


# -- erasure ----------------------------------------------------------------------------
def test_deleting_a_job_erases_every_version_item_upload_and_share_and_nothing_else(
    api: Api,
) -> None:
    _version_raw_bucket(api)
    _finished_with_everything(api, "shoot1")
    # A neighbour whose id the first one's is a prefix of: nothing of it may go.
    _finished_with_everything(api, "shoot10")
    before = _everything_of(api, "shoot10")

    status, _, erased = api.call("DELETE", "/jobs/shoot1")
    assert status == 200, erased
    # A, A again, B, B's delete marker, the manifest; four renditions and their manifest.
    # Records: the job item, one item per file, the upload record.
    assert erased == {"job_id": "shoot1", "object_versions": 10, "records": 4, "shares": 2}
    assert _everything_of(api, "shoot1") == NOTHING
    assert _everything_of(api, "shoot10") == before
    assert api.call("GET", "/jobs/shoot1")[0] == 404
    # Nothing is left to erase: the job is unknown now.
    assert api.call("DELETE", "/jobs/shoot1")[0] == 404


def test_a_declared_job_not_submitted_can_be_deleted_and_then_nothing_accepts_it(
    api: Api,
) -> None:
    job_id = _create(api, {"A.dng": 10, "B.dng": 10})["job_id"]
    api.put_raw(job_id, "A.dng", 10)
    status, _, erased = api.call("DELETE", f"/jobs/{job_id}")
    assert (status, erased["object_versions"], erased["records"]) == (200, 1, 1)
    assert _everything_of(api, job_id) == NOTHING
    assert api.call("POST", f"/jobs/{job_id}/uploads")[0] == 404
    assert api.call("POST", f"/jobs/{job_id}/submit")[0] == 404


def test_deleting_an_unknown_job_is_404(api: Api) -> None:
    for job_id in ("nope", "..%2Fx"):
        status, _, doc = api.call("DELETE", f"/jobs/{job_id}")
        assert (status, doc["error"]) == (404, "not_found")


def test_a_job_is_not_deleted_while_a_run_may_use_it(api: Api) -> None:
    # Submitted, its execution not started yet: it is about to read the originals.
    job_id = _create(api, {"A.dng": 10})["job_id"]
    api.put_raw(job_id, "A.dng", 10)
    assert api.call("POST", f"/jobs/{job_id}/submit")[0] == 202
    status, _, refused = api.call("DELETE", f"/jobs/{job_id}")
    assert (status, refused["error"]) == (409, "conflict"), refused
    # Registered and developing.
    api.put_raw("running", "A.dng", 10)
    api.finish("running", {"A.dng": 10}, status=JobStatus.PROCESSING)
    status, _, refused = api.call("DELETE", "/jobs/running")
    assert status == 409 and "PROCESSING" in refused["message"]
    # Finished, but a reprocess has claimed it and its execution is starting.
    api.put_raw("claimed", "A.dng", 10)
    api.finish("claimed", {"A.dng": 10})
    executions = api.service.executions
    arn = executions.arn_for(pipeline.reprocess_execution_name("claimed"))
    api.service.jobs.claim("claimed", arn, now=api.now[0])
    status, _, refused = api.call("DELETE", "/jobs/claimed")
    assert status == 409 and "reprocessed" in refused["message"]
    for job in (job_id, "running", "claimed"):
        assert _everything_of(api, job)[names.RAW_BUCKET], f"{job}: nothing may be erased"


def test_a_claim_whose_reprocess_never_started_does_not_block_deleting(api: Api) -> None:
    api.finish("stale", {"A.dng": 10})
    executions = api.service.executions
    api.service.jobs.claim(
        "stale", executions.arn_for(pipeline.reprocess_execution_name("stale")), now=api.now[0]
    )
    api.now[0] += pipeline.CLAIM_GRACE_SECONDS + 1
    assert api.call("DELETE", "/jobs/stale")[0] == 200
    assert _everything_of(api, "stale") == NOTHING


class _FailingS3:
    """The S3 client, except that DeleteObjects fails after `allowed` calls."""

    def __init__(self, real: Any, allowed: int) -> None:
        self._real = real
        self.allowed = allowed

    def delete_objects(self, **kwargs: Any) -> Any:
        if self.allowed <= 0:
            raise TransientError("S3: SlowDown")
        self.allowed -= 1
        return self._real.delete_objects(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_delete_that_fails_midway_is_finished_by_the_next_and_blocks_reprocess_meanwhile(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _version_raw_bucket(api)
    _finished_with_everything(api, "shoot1")
    _finished_with_everything(api, "shoot2")
    before = _everything_of(api, "shoot2")
    # The originals go, then deleting the renditions fails.
    monkeypatch.setattr(api.service.objects, "_s3", _FailingS3(api.s3, allowed=1))
    status, _, _ = api.call("DELETE", "/jobs/shoot1")
    assert status == 500
    left = _everything_of(api, "shoot1")
    assert left[names.RAW_BUCKET] == [] and left[names.PROCESSED_BUCKET]
    assert left["upload"] is None and left["shares"] == [] and left["jobs"]
    # Claimed for the erasure: no run can start on the half-erased job.
    job = api.service.jobs.get("shoot1")
    assert job.claimed_by == Executions(SM_ARN).arn_for(erasure_name("shoot1"))
    status, _, refused = api.call("POST", "/jobs/shoot1/reprocess")
    assert status == 409, refused

    monkeypatch.setattr(api.service.objects, "_s3", api.s3)
    status, _, erased = api.call("DELETE", "/jobs/shoot1")
    assert status == 200, erased
    assert erased["object_versions"] == 5  # the renditions and their manifest were left
    assert _everything_of(api, "shoot1") == NOTHING
    assert _everything_of(api, "shoot2") == before


# -- the command ------------------------------------------------------------------------
def test_darkroom_delete_asks_first_and_refuses_without_yes_when_it_cannot_ask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from darkroom.cli import main as cli

    sent: list[str] = []

    def urlopen(request: Any, timeout: float) -> Any:
        sent.append(f"{request.get_method()} {request.full_url}")
        raise AssertionError("no request may be made")

    monkeypatch.setattr("darkroom.api.client.urlopen", urlopen)
    url = "http://127.0.0.1:9/"
    refused = CliRunner().invoke(cli.app, ["delete", "shoot1", "--api-url", url])
    assert refused.exit_code == 2, refused.output
    assert "without --yes" in refused.output
    monkeypatch.setattr("darkroom.cli.jobs_cmd.can_ask", lambda: True)
    declined = CliRunner().invoke(cli.app, ["delete", "shoot1", "--api-url", url], input="n\n")
    assert declined.exit_code == 1, declined.output
    assert "nothing erased" in declined.output
    assert sent == []
