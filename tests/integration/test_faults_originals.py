"""Originals on the local cloud, as a hostile client and a faulty environment would try
them: re-PUTs through old upload URLs, an upload interrupted midway and resumed, and an
erasure that fails midway and is retried."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from darkroom import keys, names
from darkroom.api.app import handle
from darkroom.api.client import TransferError
from darkroom.api.service import ApiService
from darkroom.aws.executions import Executions
from darkroom.aws.favourites import FavouriteStore
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.aws.presign import Presigner
from darkroom.aws.shares import ShareStore
from darkroom.aws.uploads import UploadStore
from darkroom.cli import main as cli
from darkroom.cli.studio_client import ApiTarget, StudioClient, raw_files
from darkroom.errors import TransientError
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.jobs import JobStatus
from darkroom.local.cloud import LocalCloud
from darkroom.settings import ApiSettings
from tests.harness import Studio

pytestmark = pytest.mark.integration

BUCKETS = (names.RAW_BUCKET, names.PROCESSED_BUCKET, names.INPUT_BUCKET, names.OUTPUT_BUCKET)
TABLES = (names.JOBS_TABLE, names.WORKERS_TABLE, names.UPLOADS_TABLE, names.SHARES_TABLE)


@pytest.fixture(scope="module")
def client(cloud: LocalCloud) -> StudioClient:
    return StudioClient.at(ApiTarget(cloud.api_url))


def _checksums(cloud: LocalCloud, job_id: str) -> dict[str, str]:
    s3 = cloud.client("s3")
    found = {}
    for entry in s3.list_objects_v2(Bucket=names.RAW_BUCKET, Prefix=keys.raw_prefix(job_id))[
        "Contents"
    ]:
        body = s3.get_object(Bucket=names.RAW_BUCKET, Key=entry["Key"])["Body"].read()
        found[entry["Key"]] = hashlib.sha256(body).hexdigest()
    return found


def _versions(cloud: LocalCloud, bucket: str, prefix: str = "") -> list[tuple[str, str]]:
    s3 = cloud.client("s3")
    found = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            found.append((entry["Key"], entry["VersionId"]))
    return sorted(found)


def _everything_of(cloud: LocalCloud, job_id: str) -> dict[str, list[Any]]:
    """Every object version (in any bucket) and every item (in any table) of the job."""
    ddb = cloud.client("dynamodb")
    left: dict[str, list[Any]] = {}
    for bucket in BUCKETS:
        left[bucket] = [v for v in _versions(cloud, bucket) if f"/{job_id}/" in v[0]]
    for table in TABLES:
        items = []
        for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            items += [i for i in page["Items"] if i.get("job_id", {}).get("S") == job_id]
        left[table] = sorted(items, key=str)
    return left


def _nothing_left(cloud: LocalCloud, job_id: str) -> None:
    left = _everything_of(cloud, job_id)
    assert left == {where: [] for where in (*BUCKETS, *TABLES)}, left


def _delivered(client: StudioClient, studio: Studio, shoot: Path, job_id: str) -> None:
    """A job uploaded through the API, developed, and shared with a client."""
    client.upload(raw_files(shoot), job_id=job_id)
    assert studio.wait(job_id, timeout=180).status is JobStatus.DONE
    client.share(job_id)


# -- upload URLs ------------------------------------------------------------------------
def test_an_old_upload_url_cannot_overwrite_an_original_after_submit_or_once_done(
    cloud: LocalCloud, studio: Studio, tmp_path: Path
) -> None:
    files = make_demo_shoot(tmp_path / "shoot", count=2, width=600, height=400)
    api = cloud.api_url
    created = requests.post(
        f"{api}/jobs",
        json={"files": [{"name": p.name, "size": p.stat().st_size} for p in files]},
        timeout=30,
    ).json()
    job_id = created["job_id"]
    by_name = {p.name: p for p in files}
    for upload in created["uploads"]:
        put = requests.put(
            upload["url"], data=by_name[upload["name"]].read_bytes(), headers=upload["headers"]
        )
        assert put.status_code == 200, put.text
    assert requests.post(f"{api}/jobs/{job_id}/submit", timeout=30).status_code == 202
    originals = _checksums(cloud, job_id)
    impostor = tmp_path / "impostor"

    def re_put_each() -> None:
        for upload in created["uploads"]:
            # Same size, other bytes: what an overwrite would have to be to pass submit.
            impostor.write_bytes(b"\0" * upload["size"])
            put = requests.put(
                upload["url"], data=impostor.read_bytes(), headers=upload["headers"], timeout=30
            )
            assert put.status_code == 412, put.text
            assert "PreconditionFailed" in put.text

    re_put_each()  # submitted, not yet developed
    assert studio.wait(job_id, timeout=180).status is JobStatus.DONE
    re_put_each()  # delivered, within the URLs' hour
    assert _checksums(cloud, job_id) == originals
    # Each original was written once: no second version behind the first.
    assert len(_versions(cloud, names.RAW_BUCKET, keys.raw_prefix(job_id))) == len(files) + 1
    refused = requests.post(f"{api}/jobs/{job_id}/uploads", timeout=30)
    assert refused.status_code == 409, refused.text


# -- resuming ---------------------------------------------------------------------------
def test_an_upload_interrupted_midway_resumes_with_darkroom_upload_and_sends_each_file_once(
    cloud: LocalCloud, studio: Studio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shoot = tmp_path / "shoot"
    make_demo_shoot(shoot, count=5, width=600, height=400)
    job_id = "resumed-upload"
    argv = ["upload", str(shoot), "--job-id", job_id, "--endpoint-url", cloud.endpoint_url]
    from darkroom.cli import studio_client

    real_put = studio_client.put_file
    started: list[str] = []
    sent: list[str] = []

    def dies_after_two(url: str, path: Path, *args: Any, **kwargs: Any) -> None:
        started.append(path.name)
        if len(started) > 2:
            # The studio's connection drops midway through the shoot.
            raise TransferError(f"upload of {path.name}: connection reset")
        real_put(url, path, *args, **kwargs)
        sent.append(path.name)

    monkeypatch.setattr(studio_client, "put_file", dies_after_two)
    first = CliRunner().invoke(cli.app, argv)
    assert first.exit_code == 1, first.output
    assert "connection reset" in first.output
    assert f"--job-id {job_id}" in first.output  # how to resume
    view = requests.get(f"{cloud.api_url}/jobs/{job_id}", timeout=30).json()
    assert view["status"] == "CREATED"
    uploaded = sorted(n for n, f in view["files"].items() if f["status"] == "UPLOADED")
    assert uploaded == sorted(sent) and len(sent) == 2

    monkeypatch.setattr(studio_client, "put_file", real_put)
    second = CliRunner().invoke(cli.app, argv)
    assert second.exit_code == 0, second.output
    assert second.stdout.strip().splitlines()[-1] == job_id
    assert "resuming; 2 of 5 files were already uploaded" in second.output

    job = studio.wait(job_id, timeout=180)
    assert job.status is JobStatus.DONE, job.model_dump()
    assert job.files_done == 5
    # Every original exactly once: one version each, none sent twice.
    raw = _versions(cloud, names.RAW_BUCKET, keys.raw_prefix(job_id))
    assert sorted(key for key, _ in raw) == sorted(
        [keys.raw_key(job_id, p.name) for p in raw_files(shoot)] + [keys.raw_manifest_key(job_id)]
    )


# -- erasure ----------------------------------------------------------------------------
def test_deleting_a_job_leaves_nothing_of_it_in_any_bucket_or_table(
    cloud: LocalCloud, client: StudioClient, studio: Studio, tmp_path: Path
) -> None:
    for job_id in ("erase-me", "erase-me2"):
        make_demo_shoot(tmp_path / job_id, count=2, width=600, height=400)
        _delivered(client, studio, tmp_path / job_id, job_id)
    neighbour = _everything_of(cloud, "erase-me2")
    assert neighbour[names.PROCESSED_BUCKET] and neighbour[names.SHARES_TABLE]

    erased = client.delete("erase-me")
    assert erased["shares"] == 1 and erased["object_versions"] > 3
    _nothing_left(cloud, "erase-me")
    assert _everything_of(cloud, "erase-me2") == neighbour
    gone = requests.delete(f"{cloud.api_url}/jobs/erase-me", timeout=30)
    assert gone.status_code == 404, gone.text


class _FailingS3:
    """The local cloud's S3, except that DeleteObjects fails once `allowed` calls have
    gone through, as a throttled or failing S3 would midway through an erasure."""

    def __init__(self, real: Any, allowed: int) -> None:
        self._real = real
        self.allowed = allowed

    def delete_objects(self, **kwargs: Any) -> Any:
        if self.allowed <= 0:
            raise TransientError("S3: SlowDown (injected)")
        self.allowed -= 1
        return self._real.delete_objects(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def failing_api(cloud: LocalCloud) -> Iterator[ApiService]:
    """The API core in this process, over the local cloud's services, with an S3 that
    fails midway through an erasure."""
    values = cloud.settings_values()
    settings = ApiSettings(**{k: v for k, v in values.items() if k in ApiSettings.model_fields})
    s3 = cloud.client("s3")
    ddb = cloud.client("dynamodb")
    yield ApiService(
        settings,
        jobs=JobStore(names.JOBS_TABLE, ddb),
        favourites=FavouriteStore(names.JOBS_TABLE, ddb),
        uploads=UploadStore(names.UPLOADS_TABLE, ddb),
        shares=ShareStore(names.SHARES_TABLE, ddb),
        objects=Objects(_FailingS3(s3, allowed=1)),
        presigner=Presigner(s3),
        executions=Executions(settings.state_machine_arn, cloud.client("stepfunctions")),
    )


def _delete_event(job_id: str) -> dict[str, Any]:
    path = f"/jobs/{job_id}"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "headers": {"host": "127.0.0.1"},
        "requestContext": {
            "http": {"method": "DELETE", "path": path},
            "requestId": "fault",
            "stage": "$default",
        },
        "isBase64Encoded": False,
    }


def test_a_delete_failing_midway_is_refused_to_reprocess_and_finished_by_a_retry(
    cloud: LocalCloud,
    client: StudioClient,
    studio: Studio,
    tmp_path: Path,
    failing_api: ApiService,
) -> None:
    for job_id in ("half-erased", "half-erased-not"):
        make_demo_shoot(tmp_path / job_id, count=2, width=600, height=400)
        _delivered(client, studio, tmp_path / job_id, job_id)
    neighbour = _everything_of(cloud, "half-erased-not")

    # The originals go; deleting the renditions fails.
    failed = handle(_delete_event("half-erased"), None, failing_api)
    assert failed["statusCode"] == 500, failed
    left = _everything_of(cloud, "half-erased")
    assert left[names.RAW_BUCKET] == [] and left[names.SHARES_TABLE] == []
    assert left[names.PROCESSED_BUCKET] and left[names.JOBS_TABLE]
    # Half erased, the job cannot be run again: the erasure holds its claim.
    refused = requests.post(f"{cloud.api_url}/jobs/half-erased/reprocess", json={}, timeout=30)
    assert refused.status_code == 409, refused.text

    retried = requests.delete(f"{cloud.api_url}/jobs/half-erased", timeout=30)
    assert retried.status_code == 200, retried.text
    assert retried.json()["object_versions"] > 0  # what the failed delete left
    _nothing_left(cloud, "half-erased")
    assert _everything_of(cloud, "half-erased-not") == neighbour
