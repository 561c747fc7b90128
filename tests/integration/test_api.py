"""The upload and delivery API over real HTTP against the local cloud: the local gateway,
the real darkroom-api function, presigned URLs against the local S3, and curl."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from darkroom import names
from darkroom.imaging.fixtures import make_demo_shoot, write_corrupt_raw
from darkroom.local.cloud import LocalCloud

pytestmark = pytest.mark.integration


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--max-time", "60", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def put_with_curl(url: str, path: Path) -> int:
    result = curl(
        "--output", "/dev/null", "--write-out", "%{http_code}", "--upload-file", str(path), url
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def create(api: str, files: list[dict[str, Any]], **extra: Any) -> requests.Response:
    return requests.post(f"{api}/jobs", json={"files": files, **extra}, timeout=30)


def declared(paths: list[Path]) -> list[dict[str, Any]]:
    return [{"name": p.name, "size": p.stat().st_size} for p in paths]


def wait_done(api: str, job_id: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{api}/jobs/{job_id}", timeout=30).json()
        if job["status"] in {"DONE", "DONE_WITH_ERRORS", "FAILED"}:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not finished after {timeout}s")


def wait_developing(api: str, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """The job once its worker is developing it, before its last file is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{api}/jobs/{job_id}", timeout=30).json()
        if job["status"] == "PROCESSING" and job["files_done"] < job["files_total"]:
            return job
        assert job["status"] not in {"DONE", "DONE_WITH_ERRORS", "FAILED"}, job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not PROCESSING after {timeout}s")


@contextmanager
def worker_held(cloud: LocalCloud, instance_id: str) -> Iterator[None]:
    """The pool's worker (and its develop processes) paused, as a slow machine would be:
    a job it has not finished stays PROCESSING, however fast files develop here. Held for
    a few requests only, well inside the worker's heartbeat window."""
    assert cloud.instances is not None
    pid = cloud.instances.pid(instance_id)
    assert pid is not None, f"no worker running on {instance_id}"
    os.killpg(pid, signal.SIGSTOP)  # the worker leads its own process group
    try:
        yield
    finally:
        os.killpg(pid, signal.SIGCONT)


@dataclass
class SubmittedJob:
    job_id: str
    files: list[Path]
    created: dict[str, Any]
    while_running: dict[str, requests.Response]
    finished: dict[str, Any]


@pytest.fixture(scope="module")
def api(cloud: LocalCloud) -> str:
    return cloud.api_url


@pytest.fixture(scope="module")
def job(
    api: str, cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SubmittedJob]:
    """A shoot uploaded through presigned URLs with curl and submitted; what the API said
    while its worker was developing it, and the job once finished."""
    files = make_demo_shoot(tmp_path_factory.mktemp("api-shoot"), count=3, width=900, height=600)
    response = create(api, declared(files), name="API shoot")
    assert response.status_code == 201, response.text
    created = response.json()
    by_name = {p.name: p for p in files}
    for upload in created["uploads"]:
        assert put_with_curl(upload["url"], by_name[upload["name"]]) == 200
    submitted = requests.post(f"{api}/jobs/{created['job_id']}/submit", timeout=30)
    assert submitted.status_code == 202, submitted.text
    job_id = created["job_id"]
    developing = wait_developing(api, job_id)
    # Asked while its worker is held mid-job, so the job is surely still running.
    with worker_held(cloud, developing["instance_id"]):
        while_running = {
            "before": requests.get(f"{api}/jobs/{job_id}", timeout=30),
            "reprocess": requests.post(f"{api}/jobs/{job_id}/reprocess", timeout=30),
            "share": requests.post(f"{api}/jobs/{job_id}/shares", json={}, timeout=30),
            "status": requests.get(f"{api}/jobs/{job_id}", timeout=30),
        }
    yield SubmittedJob(job_id, files, created, while_running, wait_done(api, job_id))


def test_uploads_are_presigned_sigv4_puts_with_the_configured_expiry(job: SubmittedJob) -> None:
    assert len(job.created["uploads"]) == len(job.files)
    for upload in job.created["uploads"]:
        q = query_of(upload["url"])
        assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert q["X-Amz-Expires"] == "3600"
        assert "content-length" in q["X-Amz-SignedHeaders"].split(";")
        # Straight to the local S3, not through the API.
        assert urlsplit(upload["url"]).path.startswith(f"/{names.RAW_BUCKET}/raw/{job.job_id}/")


def test_while_a_job_runs_reprocess_and_share_are_refused_with_409(job: SubmittedJob) -> None:
    # Running throughout: PROCESSING, not yet all files done, before and after both asks.
    for when in ("before", "status"):
        seen = job.while_running[when].json()
        assert seen["status"] == "PROCESSING", (when, seen)
        assert seen["files_done"] < seen["files_total"], (when, seen)
    for what in ("reprocess", "share"):
        response = job.while_running[what]
        assert response.status_code == 409, (what, response.text)
        assert response.json()["error"] == "conflict"
        assert "PROCESSING" in response.json()["message"], (what, response.text)
    # Refused, not started: the job finished under its one execution.
    assert job.finished["attempt"] == 1
    assert job.finished["execution_arn"].endswith(f":{job.job_id}")


def test_a_finished_job_reports_its_times_and_every_files_progress(job: SubmittedJob) -> None:
    finished = job.finished
    assert finished["status"] == "DONE", finished
    stamps = [
        datetime.fromisoformat(finished[key])
        # Created when it was declared: registering the job keeps that time.
        for key in ("created_at", "submitted_at", "started_at", "finished_at")
    ]
    assert all(stamp.utcoffset() == timedelta(0) for stamp in stamps), stamps
    assert stamps == sorted(stamps), stamps
    assert finished["files_total"] == finished["files_done"] == len(job.files)
    assert finished["files_failed"] == 0
    assert set(finished["files"]) == {p.name for p in job.files}
    assert finished["delivered"]["run_id"] == finished["run_id"] == job.job_id
    assert finished["delivered"]["files_delivered"] == len(job.files)
    for name, progress in finished["files"].items():
        assert progress["status"] == "DONE", (name, progress)
        assert set(progress["outputs"]) == {"web", "thumb", "full"}, (name, progress)
        # What the run made is what is delivered.
        assert progress["delivered"] == progress["outputs"], (name, progress)


def test_a_shared_job_downloads_with_curl_byte_for_byte_what_the_worker_wrote(
    api: str, cloud: LocalCloud, job: SubmittedJob, tmp_path: Path
) -> None:
    assert job.finished["status"] == "DONE", job.finished
    share = requests.post(f"{api}/jobs/{job.job_id}/shares", json={}, timeout=30)
    assert share.status_code == 201, share.text
    link = share.json()["url"]
    assert link.startswith(f"{api}/share/")
    document = requests.get(link, timeout=30).json()
    assert document["job"]["files_done"] == len(job.files)
    s3 = cloud.client("s3")
    key = job.finished["manifest_key"]
    manifest = json.loads(s3.get_object(Bucket=names.PROCESSED_BUCKET, Key=key)["Body"].read())
    expected = {
        (entry["name"], rendition): meta["key"]
        for entry in manifest["files"]
        for rendition, meta in entry["outputs"].items()
    }
    seen = set()
    for entry in document["files"]:
        for rendition in entry["renditions"]:
            url = rendition["download_url"]
            assert url.startswith(f"{link}/files/"), url
            # The stable link redirects to a presigned GET made for this request.
            redirect = requests.get(url, timeout=30, allow_redirects=False)
            assert redirect.status_code == 302, redirect.text
            assert redirect.headers["cache-control"] == "no-store"
            q = query_of(redirect.headers["location"])
            assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
            assert q["X-Amz-Expires"] == "900"
            out = tmp_path / rendition["filename"]
            result = curl("--location", "--dump-header", "-", "--output", str(out), url)
            assert result.returncode == 0, result.stderr
            # The last of the answers curl followed: S3's.
            last = re.split(r"\r?\n\r?\n", result.stdout.strip())[-1]
            status_line, *header_lines = last.splitlines()
            assert " 200" in status_line
            headers = dict(
                (k.lower(), v.strip()) for k, _, v in (h.partition(":") for h in header_lines)
            )
            # Saved under the original file's name, whatever the S3 key.
            stem = Path(entry["name"]).stem
            assert rendition["filename"] == f"{stem}-{rendition['rendition']}.jpg"
            assert headers["content-disposition"].startswith(
                f'attachment; filename="{rendition["filename"]}"'
            )
            key = expected[(entry["name"], rendition["rendition"])]
            assert (
                out.read_bytes()
                == s3.get_object(Bucket=names.PROCESSED_BUCKET, Key=key)["Body"].read()
            )
            seen.add((entry["name"], rendition["rendition"]))
    assert seen == set(expected)


def test_a_share_pages_by_cursor_and_each_stable_link_serves_the_delivered_bytes(
    api: str, cloud: LocalCloud, tmp_path: Path
) -> None:
    """Seven files, one of which cannot develop, three to a page: three pages, the
    failed file in none of them, and every link to the very rendition delivered."""
    files = make_demo_shoot(tmp_path / "shoot", count=6, width=300, height=200)
    files.append(write_corrupt_raw(tmp_path / "shoot" / "IMG_BROKEN.dng", "garbage"))
    response = create(api, declared(files), name="Paged shoot")
    assert response.status_code == 201, response.text
    created = response.json()
    by_name = {p.name: p for p in files}
    for upload in created["uploads"]:
        assert put_with_curl(upload["url"], by_name[upload["name"]]) == 200
    job_id = created["job_id"]
    assert requests.post(f"{api}/jobs/{job_id}/submit", timeout=30).status_code == 202
    finished = wait_done(api, job_id)
    assert (finished["status"], finished["files_failed"]) == ("DONE_WITH_ERRORS", 1), finished
    share = requests.post(f"{api}/jobs/{job_id}/shares", json={}, timeout=30).json()

    pages = []
    cursor = None
    while True:
        page = requests.get(
            share["url"], params={"limit": 3, **({"cursor": cursor} if cursor else {})}, timeout=30
        )
        assert page.status_code == 200, page.text
        pages.append(page.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            break
    assert len(pages) == 3
    listed = [f["name"] for page in pages for f in page["files"]]
    assert listed == sorted(p.name for p in files if p.name != "IMG_BROKEN.dng")
    # What failed is the photographer's business: the client is told what is delivered.
    assert pages[0]["job"]["files_done"] == 6 and "files_failed" not in pages[0]["job"]

    s3 = cloud.client("s3")
    delivered = {
        (record.name, rendition): output.key
        for record in _file_records(cloud, job_id)
        for rendition, output in record.delivered.items()
    }
    served = {}
    for page in pages:
        for entry in page["files"]:
            for rendition in entry["renditions"]:
                for url in (rendition["url"], rendition["download_url"]):
                    got = requests.get(url, timeout=30)
                    assert got.status_code == 200, url
                    key = delivered[(entry["name"], rendition["rendition"])]
                    body = s3.get_object(Bucket=names.PROCESSED_BUCKET, Key=key)["Body"].read()
                    assert got.content == body, url
                    served[(entry["name"], rendition["rendition"])] = key
    assert served == delivered
    broken = f"{share['url']}/files/IMG_BROKEN.dng/web"
    assert requests.get(broken, timeout=30).status_code == 404

    # Revoked, every stable link with it.
    link = pages[0]["files"][0]["renditions"][0]["url"]
    revoked = requests.delete(f"{api}/jobs/{job_id}/shares/{share['share_id']}", timeout=30)
    assert revoked.status_code == 204
    gone = requests.get(link, timeout=30, allow_redirects=False)
    assert gone.status_code == 410 and "revoked" in gone.json()["message"]


def _file_records(cloud: LocalCloud, job_id: str) -> list[Any]:
    from darkroom.aws.job_store import JobStore

    return list(JobStore(names.JOBS_TABLE, cloud.client("dynamodb")).files(job_id))


def test_the_cli_shares_a_job_and_its_client_downloads_it_with_only_the_link(
    api: str, job: SubmittedJob, tmp_path: Path
) -> None:
    import os
    import sys

    env = {**os.environ, "COLUMNS": "160"}
    env.pop("DARKROOM_ENDPOINT_URL", None)
    cli = [sys.executable, "-m", "darkroom.cli"]
    shared = subprocess.run(
        [*cli, "share", job.job_id, "--expires-in", "1h", "--api-url", api],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert shared.returncode == 0, shared.stderr
    link = shared.stdout.strip()
    assert link.startswith(f"{api}/share/")
    # The client's side: the link and nothing else (no API options, no AWS credentials).
    client_env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    got = subprocess.run(
        [*cli, "download", link, str(tmp_path / "client")],
        capture_output=True,
        text=True,
        env=client_env,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr
    manifest = json.loads((tmp_path / "client" / "manifest.json").read_text())
    assert manifest["files_done"] == len(job.files)
    for entry in manifest["files"]:
        for rendition in entry["renditions"]:
            path = tmp_path / "client" / rendition["path"]
            assert path.stat().st_size == rendition["bytes"]


def test_names_with_paths_or_that_are_not_raw_files_are_400(api: str) -> None:
    for name in ("../../etc/passwd.dng", "..", "sub/dir.dng", "holiday.jpg", "README"):
        response = create(api, [{"name": name, "size": 100}])
        assert response.status_code == 400, (name, response.text)
        assert response.json()["error"] == "bad_request"
        assert response.json()["files"][0]["name"] == name


def test_a_file_over_the_size_limit_is_413(api: str) -> None:
    response = create(api, [{"name": "huge.dng", "size": 6 * 1024**3}])
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"


def test_submitting_with_a_missing_or_short_file_is_409_naming_it(api: str, tmp_path: Path) -> None:
    files = make_demo_shoot(tmp_path, count=2, width=300, height=200)
    created = create(api, declared(files)).json()
    first, second = created["uploads"]
    short = tmp_path / "short.dng"
    short.write_bytes(files[0].read_bytes()[:-10])
    # Local S3 does not check signatures, so a body of the wrong size gets in; submit
    # must still refuse it.
    assert put_with_curl(first["url"], short) == 200
    response = requests.post(f"{api}/jobs/{created['job_id']}/submit", timeout=30)
    assert response.status_code == 409
    problems = {p["name"]: p for p in response.json()["files"]}
    assert problems[second["name"]]["actual_size"] is None
    assert problems[first["name"]]["actual_size"] == first["size"] - 10
    assert second["name"] in response.json()["message"]


def test_unknown_expired_and_revoked_share_links(api: str, job: SubmittedJob) -> None:
    assert job.finished["status"] == "DONE"
    unknown = requests.get(f"{api}/share/{'0' * 20}.{'A' * 43}", timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    assert job.job_id not in unknown.text

    short = requests.post(f"{api}/jobs/{job.job_id}/shares", json={"expires_in": 1}, timeout=30)
    time.sleep(1.5)
    expired = requests.get(short.json()["url"], timeout=30)
    assert expired.status_code == 410 and "expired" in expired.json()["message"]

    share = requests.post(f"{api}/jobs/{job.job_id}/shares", json={}, timeout=30).json()
    assert requests.get(share["url"], timeout=30).status_code == 200
    revoked = requests.delete(f"{api}/jobs/{job.job_id}/shares/{share['share_id']}", timeout=30)
    assert revoked.status_code == 204
    gone = requests.get(share["url"], timeout=30)
    assert gone.status_code == 410 and "revoked" in gone.json()["message"]


def test_a_job_that_has_not_finished_cannot_be_shared(api: str) -> None:
    created = create(api, [{"name": "later.dng", "size": 10}]).json()
    response = requests.post(f"{api}/jobs/{created['job_id']}/shares", json={}, timeout=30)
    assert response.status_code == 409


def test_jobs_are_listed_in_pages(api: str, job: SubmittedJob) -> None:
    first = requests.get(f"{api}/jobs", params={"limit": 1}, timeout=30).json()
    assert len(first["jobs"]) == 1 and first["next_cursor"]
    second = requests.get(
        f"{api}/jobs", params={"limit": 1, "cursor": first["next_cursor"]}, timeout=30
    ).json()
    assert second["jobs"][0]["job_id"] != first["jobs"][0]["job_id"]


def test_the_gateway_answers_unrouted_requests_itself_as_api_gateway_does(api: str) -> None:
    response = requests.get(f"{api}/no/such/route", timeout=30)
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
