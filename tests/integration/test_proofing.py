"""Proofing on the local cloud, as a studio and its client use it: a proofing share, two
favourites marked through it, `darkroom favourites` listing them, and `darkroom
reprocess --files favourites` developing only those while every other file keeps the
very objects it delivered (same bytes, same ETag), still served by the share. A subset
run stopped midway loses nothing delivered."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from darkroom import keys
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.jobs import FileStatus, JobStatus
from darkroom.local.cloud import LocalCloud
from tests.harness import Studio, wait_for
from tests.integration.conftest import HEARTBEAT_SECONDS
from tests.integration.test_cli import run

pytestmark = pytest.mark.integration


def _delivered(studio: Studio, job_id: str) -> dict[str, dict[str, Any]]:
    """Each file's delivered renditions: key, bytes and ETag, by file and rendition."""
    s3 = studio.target.client("s3")
    bucket = studio.target.processed_bucket
    found: dict[str, dict[str, Any]] = {}
    for record in studio.jobs.files(job_id):
        for rendition, output in record.delivered.items():
            got = s3.get_object(Bucket=bucket, Key=output.key)
            found[f"{record.name}/{rendition}"] = {
                "key": output.key,
                "etag": got["ETag"],
                "bytes": got["Body"].read(),
                "run": record.delivered_run,
            }
    return found


def _served(link: str) -> dict[str, bytes]:
    """What the share serves of each file's renditions, through its stable links."""
    served = {}
    for f in requests.get(link, timeout=30).json()["files"]:
        for r in f["renditions"]:
            answer = requests.get(r["url"], timeout=30)
            assert answer.status_code == 200, answer.text
            served[f"{f['name']}/{r['rendition']}"] = answer.content
    return served


def test_two_favourites_are_listed_and_reprocessed_alone_the_others_keep_their_objects(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    files = make_demo_shoot(tmp_path / "shoot", count=4, width=900, height=600)
    job_id = studio.upload(files)
    first = studio.wait(job_id, timeout=240)
    assert first.status is JobStatus.DONE, first.model_dump()
    endpoint = cloud.endpoint_url

    shared = run("share", job_id, "--proofing", "--json", "--endpoint-url", endpoint)
    assert shared.returncode == 0, shared.stderr
    link = json.loads(shared.stdout)["url"]
    names = sorted(p.name for p in files)
    picked = [names[1], names[3]]
    for name, note in zip(picked, ("warmer please", None), strict=True):
        answer = requests.put(
            f"{link}/favourites/{quote(name, safe='')}",
            json={"note": note} if note else {},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    page = requests.get(link, timeout=30).json()
    assert page["proofing"] is True
    assert [f["name"] for f in page["files"] if f.get("favourite")] == picked

    listed = run("favourites", job_id, "--endpoint-url", endpoint)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == picked
    assert "2 favourites through 1 share, 1 with notes" in listed.stderr
    full = json.loads(run("favourites", job_id, "--json", "--endpoint-url", endpoint).stdout)
    assert full["merged"][0]["notes"][0]["note"] == "warmer please"

    before = _delivered(studio, job_id)
    served_before = _served(link)
    assert len(before) == 3 * len(files)

    again = run("reprocess", job_id, "--files", "favourites", "--wait", "--endpoint-url", endpoint)
    assert again.returncode == 0, again.stdout + again.stderr
    done = studio.jobs.get(job_id)
    assert done.status is JobStatus.DONE and done.run_id != first.run_id
    assert done.selection is not None
    assert done.selection.model_dump() == {"kind": "favourites", "files": 2}
    assert (done.files_total, done.files_done) == (2, 2)
    assert done.delivered is not None and done.delivered.files_delivered == len(files)
    status = run("status", job_id, "--endpoint-url", endpoint)
    assert "this run develops 2 files (the clients' favourites)" in " ".join(
        status.stdout.split()
    ), status.stdout

    after = _delivered(studio, job_id)
    assert after.keys() == before.keys()
    for key, was in before.items():
        name = key.split("/", 1)[0]
        now = after[key]
        if name in picked:
            assert now["run"] == done.run_id and now["key"] != was["key"], key
        else:
            # The very object it delivered: same key, bytes and ETag, from the first run.
            assert (now["key"], now["etag"], now["bytes"], now["run"]) == (
                was["key"],
                was["etag"],
                was["bytes"],
                first.run_id,
            ), key
    served_after = _served(link)
    for key, body in served_before.items():
        if key.split("/", 1)[0] not in picked:
            assert served_after[key] == body, key
    # The run's manifest says which files it developed, and still lists every file; the
    # download-all ZIPs hold every file, not only the two.
    manifest = studio.manifest(job_id)
    assert manifest["selection"] == {"kind": "favourites", "files": 2}
    s3 = studio.target.client("s3")
    for archive in done.delivered.archives.values():
        body = s3.get_object(Bucket=studio.target.processed_bucket, Key=archive.key)["Body"]
        with zipfile.ZipFile(io.BytesIO(body.read())) as zipped:
            assert len(zipped.namelist()) == len(files), zipped.namelist()

    # A name the job does not have is refused before anything starts.
    refused = run("reprocess", job_id, "--files", "nope.dng", "--endpoint-url", endpoint)
    assert refused.returncode != 0 and "nope.dng" in refused.stderr, refused.stderr
    assert studio.jobs.get(job_id).run_id == done.run_id


def test_a_subset_run_stopped_midway_loses_nothing_delivered(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    files = make_demo_shoot(tmp_path / "shoot", count=5, width=1600, height=1067)
    job_id = studio.upload(files)
    first = studio.wait(job_id, timeout=240)
    assert first.status is JobStatus.DONE, first.model_dump()
    share = requests.post(
        f"{cloud.api_url}/jobs/{job_id}/shares", json={"proofing": True}, timeout=30
    )
    link = share.json()["url"]
    before = _delivered(studio, job_id)
    served_before = _served(link)

    subset = sorted(p.name for p in files)[:4]
    started = requests.post(
        f"{cloud.api_url}/jobs/{job_id}/reprocess",
        json={"files": subset, "recipe": {"exposure": {"compensation_ev": 1.5}}},
        timeout=30,
    )
    assert started.status_code == 202, started.text
    arn = started.json()["execution_arn"]
    run_id = keys.run_id(arn)
    wait_for(
        lambda: any(
            r.run_id == run_id and r.status is FileStatus.DONE for r in studio.jobs.files(job_id)
        ),
        180,
    )
    cloud.client("stepfunctions").stop_execution(executionArn=arn, error="Studio.Cancelled")
    failed = studio.wait(job_id, timeout=HEARTBEAT_SECONDS * 6, since_execution=first.execution_arn)
    assert failed.status is JobStatus.FAILED, failed.model_dump()
    # Every file, in the subset or not, delivers the first run's objects, byte for byte.
    assert _delivered(studio, job_id) == before
    assert _served(link) == served_before
    # A client may still mark favourites meanwhile, and the next subset run delivers.
    name = subset[0]
    marked = requests.put(f"{link}/favourites/{quote(name, safe='')}", json={}, timeout=30)
    assert marked.status_code == 200, marked.text
    again = requests.post(
        f"{cloud.api_url}/jobs/{job_id}/reprocess", json={"files": "favourites"}, timeout=30
    )
    assert again.status_code == 202, again.text
    done = studio.wait(job_id, timeout=240, since_execution=arn)
    assert done.status is JobStatus.DONE, done.model_dump()
    after = _delivered(studio, job_id)
    assert {k for k, v in after.items() if v["run"] == done.run_id} == {
        f"{name}/{r}" for r in ("full", "web", "thumb")
    }
    assert all(after[k] == before[k] for k in before if not k.startswith(f"{name}/"))


def test_a_subset_run_of_several_shards_still_zips_every_file(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    from tests.integration.conftest import SHARD_SIZE

    count = SHARD_SIZE + 2
    files = make_demo_shoot(tmp_path / "shoot", count=count, width=300, height=200)
    job_id = studio.upload(files)
    first = studio.wait(job_id, timeout=300)
    assert first.status is JobStatus.DONE, first.model_dump()
    before = _delivered(studio, job_id)
    names = sorted(p.name for p in files)
    left = names[0]
    started = requests.post(
        f"{cloud.api_url}/jobs/{job_id}/reprocess", json={"files": names[1:]}, timeout=30
    )
    assert started.status_code == 202, started.text
    done = studio.wait(job_id, timeout=300, since_execution=first.execution_arn)
    assert done.status is JobStatus.DONE, done.model_dump()
    assert done.files_total == count - 1
    assert len(studio.jobs.shards(job_id, done.run_id or "")) == 2, "several shards"
    after = _delivered(studio, job_id)
    assert all(after[k] == before[k] for k in before if k.startswith(f"{left}/"))
    assert done.delivered is not None and done.delivered.archives
    s3 = studio.target.client("s3")
    for archive in done.delivered.archives.values():
        body = s3.get_object(Bucket=studio.target.processed_bucket, Key=archive.key)["Body"]
        with zipfile.ZipFile(io.BytesIO(body.read())) as zipped:
            assert len(zipped.namelist()) == count, zipped.namelist()
