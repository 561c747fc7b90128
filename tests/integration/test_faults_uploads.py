"""Large originals on the local cloud, uploaded in presigned parts: an upload that loses
its connection midway and is resumed by `darkroom upload --job-id` (only the missing
parts are sent), a complete with ETags that are not S3's, and an abort.

The session's cloud sends files over 6 MiB in parts of 5 MiB (conftest.MULTIPART)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from darkroom import keys, names
from darkroom.api.client import TransferError
from darkroom.cli import main as cli
from darkroom.imaging.fixtures.dng import write_dng
from darkroom.jobs import JobStatus
from darkroom.local.cloud import LocalCloud
from tests.harness import Studio

pytestmark = pytest.mark.integration

MIB = 1024**2
PART = 5 * MIB
BIG = 3 * PART + 1234  # four parts: three of 5 MiB and 1,234 bytes


def _big_dng(path: Path, size: int = BIG) -> Path:
    """A real, decodable DNG padded to `size` bytes: TIFF readers follow offsets, so the
    bytes after the last IFD's data are never read."""
    write_dng(path, width=600, height=400, seed=7)
    with path.open("ab") as out:
        out.write(b"\0" * (size - path.stat().st_size))
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _in_progress(cloud: LocalCloud, job_id: str) -> list[dict[str, Any]]:
    page = cloud.client("s3").list_multipart_uploads(
        Bucket=names.RAW_BUCKET, Prefix=keys.raw_prefix(job_id)
    )
    return list(page.get("Uploads", []))


def _parts_held(cloud: LocalCloud, job_id: str, name: str, upload_id: str) -> list[int]:
    page = cloud.client("s3").list_parts(
        Bucket=names.RAW_BUCKET, Key=keys.raw_key(job_id, name), UploadId=upload_id
    )
    return [p["PartNumber"] for p in page.get("Parts", [])]


def _create(api: str, files: list[Path]) -> dict[str, Any]:
    created = requests.post(
        f"{api}/jobs",
        json={"files": [{"name": p.name, "size": p.stat().st_size} for p in files]},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


def _put_parts(plan: dict[str, Any], path: Path, numbers: list[int]) -> dict[int, str]:
    etags = {}
    data = path.read_bytes()
    for part in plan["parts"]:
        n = part["part_number"]
        if n not in numbers:
            continue
        offset = (n - 1) * plan["part_size"]
        put = requests.put(
            part["url"],
            data=data[offset : offset + part["size"]],
            headers=part["headers"],
            timeout=60,
        )
        assert put.status_code == 200, put.text
        etags[n] = put.headers["ETag"]
    return etags


def test_an_upload_in_parts_cut_midway_resumes_with_only_the_missing_parts_and_develops(
    cloud: LocalCloud, studio: Studio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    big = _big_dng(shoot / "BIG_0001.dng")
    small = write_dng(shoot / "SMALL_0002.dng", width=300, height=200, seed=2)
    job_id = "parts-resumed"
    argv = ["upload", str(shoot), "--job-id", job_id, "--endpoint-url", cloud.endpoint_url]
    from darkroom.api import client as api_client
    from darkroom.cli import studio_client

    real_range = studio_client.put_range
    sent: list[tuple[str, int]] = []

    def loses_part_three(url: str, path: Path, offset: int, *args: Any, **kw: Any) -> str:
        if path == big and offset == 2 * PART:
            # The studio's connection drops, and stays down through the part's retries.
            raise TransferError(f"upload of {path.name}: connection reset")
        sent.append((path.name, offset))
        return real_range(url, path, offset, *args, **kw)

    monkeypatch.setattr(studio_client, "put_range", loses_part_three)
    first = CliRunner().invoke(cli.app, argv)
    assert first.exit_code == 1, first.output
    assert "connection reset" in first.output and f"--job-id {job_id}" in first.output
    # The other parts went up (a few at once), and the small file in one PUT.
    assert sorted(sent) == [(big.name, 0), (big.name, PART), (big.name, 3 * PART)]
    view = requests.get(f"{cloud.api_url}/jobs/{job_id}", timeout=30).json()
    assert {n: f["status"] for n, f in view["files"].items()} == {
        big.name: "AWAITING_UPLOAD",
        small.name: "UPLOADED",
    }
    (upload,) = _in_progress(cloud, job_id)
    assert _parts_held(cloud, job_id, big.name, upload["UploadId"]) == [1, 2, 4]
    refused = requests.post(f"{cloud.api_url}/jobs/{job_id}/submit", timeout=30)
    assert refused.status_code == 409, refused.text
    assert f"uploads in parts not completed: {big.name}" in refused.json()["message"]

    # The resume: one PUT, of part 3, whose first attempt is cut and retried.
    real_once = api_client._put_once
    sent.clear()
    attempts: list[int] = []

    def first_attempt_cut(url: str, path: Path, offset: int, *args: Any, **kw: Any) -> str:
        attempts.append(offset)
        if len(attempts) == 1:
            raise ConnectionResetError("connection reset by peer")
        return real_once(url, path, offset, *args, **kw)

    def counted(url: str, path: Path, offset: int, *args: Any, **kw: Any) -> str:
        sent.append((path.name, offset))
        return real_range(url, path, offset, *args, **kw)

    monkeypatch.setattr(studio_client, "put_range", counted)
    monkeypatch.setattr(api_client, "_put_once", first_attempt_cut)
    second = CliRunner().invoke(cli.app, argv)
    assert second.exit_code == 0, second.output
    assert second.stdout.strip().splitlines()[-1] == job_id
    assert "1 of 2 files were already uploaded" in second.output
    assert sent == [(big.name, 2 * PART)]
    assert attempts == [2 * PART, 2 * PART]
    assert _in_progress(cloud, job_id) == []

    job = studio.wait(job_id, timeout=180)
    assert job.status is JobStatus.DONE, job.model_dump()
    assert job.files_done == 2
    s3 = cloud.client("s3")
    stored = s3.get_object(Bucket=names.RAW_BUCKET, Key=keys.raw_key(job_id, big.name))
    assert _sha256(stored["Body"].read()) == _sha256(big.read_bytes())
    versions = s3.list_object_versions(
        Bucket=names.RAW_BUCKET, Prefix=keys.raw_key(job_id, big.name)
    )["Versions"]
    assert len(versions) == 1


def test_a_complete_with_etags_that_are_not_s3s_is_refused_and_the_upload_resumes(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    big = _big_dng(tmp_path / "ETAG_0001.dng", 2 * PART + 10)
    api = cloud.api_url
    created = _create(api, [big])
    job_id = created["job_id"]
    (upload,) = created["uploads"]
    plan = upload["multipart"]
    assert upload["method"] == "MULTIPART" and plan["parts_total"] == 3
    etags = _put_parts(plan, big, [1, 2, 3])
    complete = f"{api}/jobs/{job_id}/files/{big.name}/complete"
    wrong = [{"part_number": n, "etag": '"0000"' if n == 2 else e} for n, e in etags.items()]
    refused = requests.post(complete, json={"parts": wrong}, timeout=30)
    assert refused.status_code == 400, refused.text
    assert refused.json()["mismatched_parts"] == [2]
    assert [u["UploadId"] for u in _in_progress(cloud, job_id)] == [plan["upload_id"]]

    resumed = requests.post(f"{api}/jobs/{job_id}/uploads", timeout=30).json()
    again = resumed["uploads"][0]["multipart"]
    assert (again["upload_id"], again["parts"], again["all_parts"]) == (
        plan["upload_id"],
        [],
        True,
    )
    held = {p["part_number"]: p["etag"] for p in again["uploaded"]}
    assert held == etags
    done = requests.post(
        complete,
        json={"parts": [{"part_number": n, "etag": e} for n, e in sorted(held.items())]},
        timeout=30,
    )
    assert done.status_code == 200, done.text
    body = cloud.client("s3").get_object(
        Bucket=names.RAW_BUCKET, Key=keys.raw_key(job_id, big.name)
    )
    assert _sha256(body["Body"].read()) == _sha256(big.read_bytes())
    assert _in_progress(cloud, job_id) == []
    assert requests.delete(f"{api}/jobs/{job_id}", timeout=30).status_code == 200


def test_an_aborted_upload_leaves_no_upload_in_progress_and_a_resume_starts_afresh(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    big = _big_dng(tmp_path / "ABORT_0001.dng", PART + MIB + 10)
    api = cloud.api_url
    created = _create(api, [big])
    job_id = created["job_id"]
    plan = created["uploads"][0]["multipart"]
    _put_parts(plan, big, [1])
    assert len(_in_progress(cloud, job_id)) == 1
    aborted = requests.post(f"{api}/jobs/{job_id}/files/{big.name}/abort", timeout=30)
    assert aborted.status_code == 200, aborted.text
    assert aborted.json()["aborted"] == 1
    assert _in_progress(cloud, job_id) == []
    fresh = requests.post(f"{api}/jobs/{job_id}/uploads", timeout=30).json()
    plan_again = fresh["uploads"][0]["multipart"]
    assert plan_again["upload_id"] != plan["upload_id"]
    assert [p["part_number"] for p in plan_again["parts"]] == [1, 2]
    assert (
        requests.post(f"{api}/jobs/{job_id}/files/{big.name}/abort", timeout=30).json()["aborted"]
        == 1
    )
    assert _in_progress(cloud, job_id) == []
    assert requests.delete(f"{api}/jobs/{job_id}", timeout=30).status_code == 200
