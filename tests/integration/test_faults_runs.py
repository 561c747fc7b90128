"""A reprocess is atomic for the client: a run that dies midway changes nothing of what
the client has, and a run that finishes switches every file it developed and deletes the
renditions it superseded. On the local cloud, with the run stopped for real midway (a
killed worker no longer ends a run: its shard is done again on another worker)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from darkroom import keys
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.jobs import FileStatus, Job, JobStatus
from darkroom.local.cloud import LocalCloud
from tests.harness import Studio
from tests.integration.conftest import HEARTBEAT_SECONDS

pytestmark = pytest.mark.integration

BRIGHTER = {"exposure": {"compensation_ev": 1.5}}


class Link:
    """A client's share link, opened again and again: it must answer 200 every time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened = 0

    def open(self) -> dict[str, Any]:
        answer = requests.get(self.url, timeout=30)
        assert answer.status_code == 200, answer.text
        self.opened += 1
        document: dict[str, Any] = answer.json()
        return document

    def keys(self) -> set[str]:
        """The S3 keys the link's renditions download (the object part of the presigned
        URL each stable link redirects to)."""
        found = set()
        for f in self.open()["files"]:
            for r in f["renditions"]:
                answer = requests.get(r["url"], timeout=30, allow_redirects=False)
                assert answer.status_code == 302, answer.text
                location = answer.headers["location"].split("?", 1)[0]
                found.add(requests.utils.unquote(location).split("/processed/", 1)[1])
        return found


def _delivered(studio: Studio, job_id: str) -> dict[str, bytes]:
    """Every delivered rendition's bytes, by key."""
    bucket = studio.target.processed_bucket
    s3 = studio.target.client("s3")
    return {
        output.key: s3.get_object(Bucket=bucket, Key=output.key)["Body"].read()
        for record in studio.jobs.files(job_id)
        for output in record.delivered.values()
    }


def _wait_for(predicate: Callable[[], Any], timeout: float, between: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        between()
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout}s")


def test_a_reprocess_killed_midway_changes_nothing_delivered_and_the_next_one_switches_all(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    files = make_demo_shoot(tmp_path / "shoot", count=6, width=1600, height=1067)
    job_id = studio.upload(files)
    first = studio.wait(job_id, timeout=180)
    assert first.status is JobStatus.DONE, first.model_dump()
    first_run = first.run_id or ""
    share = requests.post(f"{cloud.api_url}/jobs/{job_id}/shares", json={}, timeout=30)
    assert share.status_code == 201, share.text
    link = Link(share.json()["url"])
    before = _delivered(studio, job_id)
    assert len(before) == 3 * len(files)
    assert link.keys() == {k.removeprefix("processed/") for k in before}

    # A reprocess with another recipe, stopped once it has developed a file.
    failing = studio.reprocess(job_id, BRIGHTER)
    failing_run = keys.run_id(failing)

    def developed_in_failing_run() -> bool:
        return any(
            r.run_id == failing_run and r.status is FileStatus.DONE
            for r in studio.jobs.files(job_id)
        )

    # Polled without opening the link meanwhile: stopped as soon as it can be.
    _wait_for(developed_in_failing_run, 180, lambda: None)
    cloud.client("stepfunctions").stop_execution(
        executionArn=failing, error="Studio.Cancelled", cause="wrong recipe"
    )

    failed = studio.wait(
        job_id,
        timeout=HEARTBEAT_SECONDS * 6,
        since_execution=first.execution_arn,
        on_update=lambda _: link.open(),
    )
    assert failed.status is JobStatus.FAILED, failed.model_dump()
    assert failed.error == "ExecutionEnded"
    assert failed.files_done < failed.files_total, "the kill came after the whole run"
    # The delivery is byte for byte what it was, and the link still serves it.
    assert _delivered(studio, job_id) == before
    assert link.keys() == {k.removeprefix("processed/") for k in before}
    shared = link.open()
    assert shared["job"]["files_done"] == len(files)
    # The job shows the failed attempt and what is still delivered.
    view = requests.get(f"{cloud.api_url}/jobs/{job_id}", timeout=30).json()
    assert (view["status"], view["run_id"], view["error"]) == (
        "FAILED",
        failing_run,
        failed.error,
    )
    assert view["delivered"]["run_id"] == first_run
    assert view["delivered"]["files_delivered"] == len(files)
    assert {f["delivered_run"] for f in view["files"].values()} == {first_run}
    assert {f["run_id"] for f in view["files"].values()} == {failing_run}
    assert "DONE" in {f["status"] for f in view["files"].values()}
    # A failed job with something delivered can be shared anew.
    again = requests.post(f"{cloud.api_url}/jobs/{job_id}/shares", json={}, timeout=30)
    assert again.status_code == 201, again.text

    # The next reprocess finishes: every file switches, what it superseded is deleted.
    succeeding = studio.reprocess(job_id, BRIGHTER)
    done: Job = studio.wait(
        job_id, timeout=240, since_execution=failing, on_update=lambda _: link.open()
    )
    assert done.status is JobStatus.DONE, done.model_dump()
    run = keys.run_id(succeeding)
    records = list(studio.jobs.files(job_id))
    assert {r.delivered_run for r in records} == {run}
    after = _delivered(studio, job_id)
    assert len(after) == len(before)
    assert all(key.startswith(keys.run_prefix(job_id, run)) for key in after)
    assert link.keys() == {k.removeprefix("processed/") for k in after}
    # Brighter: every rendition is another file than the one it replaced.
    assert not set(after.values()) & set(before.values())
    left = {
        o["Key"]
        for o in studio.objects.list(studio.target.processed_bucket, keys.processed_prefix(job_id))
    }
    # The earlier runs' ZIPs went with their renditions; this run's were recorded.
    assert done.delivered is not None
    zips = {a.key for a in done.delivered.archives.values()}
    assert len(zips) == 3 and all(k.startswith(keys.run_prefix(job_id, run)) for k in zips)
    assert left == set(after) | zips | {keys.run_manifest_key(job_id, run)}
    assert link.opened > 3
