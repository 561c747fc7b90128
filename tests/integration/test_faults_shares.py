"""A share's links never go stale and a download never leaves half a file: on the local
cloud, a download whose GETs start failing midway is run again and ends complete, and
a reprocess in progress leaves every stable link serving what is delivered."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from darkroom import keys, names
from darkroom.api import client
from darkroom.api.client import TransferError
from darkroom.aws.job_store import JobStore
from darkroom.cli.studio_client import StudioClient
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.local.cloud import LocalCloud
from tests.integration.test_api import create, declared, put_with_curl, wait_done, worker_held

pytestmark = pytest.mark.integration

BRIGHTER = {"exposure": {"compensation_ev": 1.5}}


def _shared_job(api: str, tmp_path: Path, count: int) -> tuple[str, str]:
    """A finished job of `count` files, and a share link of it."""
    files = make_demo_shoot(tmp_path / "shoot", count=count, width=300, height=200)
    created = create(api, declared(files), name="faults").json()
    by_name = {p.name: p for p in files}
    for upload in created["uploads"]:
        assert put_with_curl(upload["url"], by_name[upload["name"]]) == 200
    job_id = created["job_id"]
    assert requests.post(f"{api}/jobs/{job_id}/submit", timeout=30).status_code == 202
    assert wait_done(api, job_id)["status"] == "DONE"
    share = requests.post(f"{api}/jobs/{job_id}/shares", json={}, timeout=30).json()
    return job_id, str(share["url"])


def _delivered(cloud: LocalCloud, job_id: str) -> dict[str, bytes]:
    """<rendition>/<stem><ext> -> the delivered rendition's bytes, as a download lays
    them out."""
    s3 = cloud.client("s3")
    found = {}
    for record in JobStore(names.JOBS_TABLE, cloud.client("dynamodb")).files(job_id):
        for rendition, output in record.delivered.items():
            path = f"{rendition}/{Path(record.name).stem}{Path(output.key).suffix}"
            body = s3.get_object(Bucket=names.PROCESSED_BUCKET, Key=output.key)["Body"].read()
            found[path] = body
    return found


def _on_disk(dest: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(dest)): p.read_bytes()
        for p in dest.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }


def test_an_interrupted_download_run_again_ends_complete_with_no_partial_file(
    cloud: LocalCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, link = _shared_job(cloud.api_url, tmp_path, 4)
    expected = _delivered(cloud, job_id)
    assert len(expected) == 12  # four files, three renditions each
    dest = tmp_path / "client"

    # After five files, every GET breaks off halfway through its body, as a dropped
    # connection would (its retries too).
    real = client._get_once
    fetched: list[Path] = []

    def breaking(url: str, path: Path, report: Callable[[int], None]) -> int:
        written = real(url, path, report)
        if len(fetched) < 5:
            fetched.append(path)
            return written
        with path.open("r+b") as partial:
            partial.truncate(written // 2)
        raise ConnectionResetError("connection reset mid-body")

    monkeypatch.setattr(client, "_get_once", breaking)
    with pytest.raises(TransferError, match="connection reset"):
        StudioClient.download_link(link, dest)
    on_disk = _on_disk(dest)
    complete = {k: v for k, v in on_disk.items() if not k.endswith(".part")}
    partial = [k for k in on_disk if k.endswith(".part")]
    assert len(complete) == 5, sorted(on_disk)
    # What is under a final name is whole: the broken one is only a ".part".
    assert all(expected[k] == v for k, v in complete.items())
    assert len(partial) == 1 and on_disk[partial[0]] != expected[partial[0].removesuffix(".part")]
    monkeypatch.undo()

    # Run again, as its client would: the command line, the link and the folder.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DARKROOM_"))}
    again = subprocess.run(
        [sys.executable, "-m", "darkroom.cli", "download", link, str(dest)],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert "12 files" in again.stdout and "(5 were there already)" in again.stdout, again.stdout
    assert _on_disk(dest) == expected, "every file whole, byte for byte, nothing partial"
    # A third run finds everything there.
    assert StudioClient.download_link(link, dest).skipped == 12


def _links(link: str) -> dict[str, str]:
    """Each rendition's stable link, by <file>/<rendition>, from every page."""
    found = {}
    cursor = None
    while True:
        page = requests.get(link, params={"cursor": cursor} if cursor else {}, timeout=30)
        assert page.status_code == 200, page.text
        document: dict[str, Any] = page.json()
        for f in document["files"]:
            for r in f["renditions"]:
                found[f"{f['name']}/{r['rendition']}"] = r["url"]
        cursor = document["next_cursor"]
        if cursor is None:
            return found


def _served(links: dict[str, str]) -> dict[str, tuple[str, bytes]]:
    """What each stable link serves now: the key it redirects to, and the bytes."""
    served = {}
    for name, url in links.items():
        redirect = requests.get(url, timeout=30, allow_redirects=False)
        assert redirect.status_code == 302, (name, redirect.text)
        location = redirect.headers["location"]
        key = requests.utils.unquote(location.split("?", 1)[0]).split("/processed/", 1)[1]
        got = requests.get(location, timeout=30)
        assert got.status_code == 200, name
        served[name] = ("processed/" + key, got.content)
    return served


def test_a_reprocess_in_progress_leaves_every_link_serving_what_is_delivered(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    api = cloud.api_url
    job_id, link = _shared_job(api, tmp_path, 3)
    links = _links(link)
    before = _served(links)
    first_run = job_id
    assert all(key.startswith(keys.run_prefix(job_id, first_run)) for key, _ in before.values())

    started = requests.post(f"{api}/jobs/{job_id}/reprocess", json={"recipe": BRIGHTER}, timeout=30)
    assert started.status_code == 202, started.text
    run = keys.run_id(started.json()["execution_arn"])
    # While its worker develops (held mid-job, so it surely has not finished), the
    # same links, and the pages, serve the first run's renditions.
    deadline = time.monotonic() + 120
    while True:
        view = requests.get(f"{api}/jobs/{job_id}", timeout=30).json()
        if view["status"] == "PROCESSING" and view["run_id"] == run and view["instance_id"]:
            break
        assert _served(links) == before
        assert time.monotonic() < deadline, view
        time.sleep(0.1)
    with worker_held(cloud, view["instance_id"]):
        assert _links(link) == links
        assert _served(links) == before
    finished = wait_done(api, job_id)
    assert (finished["status"], finished["run_id"]) == ("DONE", run), finished

    # Once it has finished, the very same links serve the new run's renditions.
    after = _served(links)
    assert _links(link) == links
    assert all(key.startswith(keys.run_prefix(job_id, run)) for key, _ in after.values())
    assert {k: body for k, (_, body) in after.items()} != {
        k: body for k, (_, body) in before.items()
    }
    delivered = _delivered(cloud, job_id)
    assert sorted(body for _, body in after.values()) == sorted(delivered.values())
