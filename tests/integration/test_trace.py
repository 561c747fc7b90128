"""`darkroom trace` on the local cloud: a developed job's manifest records each file's
lineage, trace verifies every rendition through the API's presigned GETs, reports one
overwritten in S3 as tampered, and one whose GET breaks off midway as unverified."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from darkroom import keys, names
from darkroom.api import client
from darkroom.api.client import ApiClient
from darkroom.cli.studio_client import StudioClient
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.jobs import JobStatus
from darkroom.lineage import Verdict
from darkroom.local.cloud import LocalCloud
from tests.harness import Studio

pytestmark = pytest.mark.integration
RENDITIONS = ("full", "thumb", "web")


@pytest.fixture(scope="module")
def developed(
    cloud: LocalCloud, studio: Studio, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, list[Path]]:
    files = make_demo_shoot(tmp_path_factory.mktemp("shoot"), count=3, width=600, height=400)
    job_id = studio.upload(files, name="trace")
    assert studio.wait(job_id, timeout=300).status is JobStatus.DONE
    return job_id, files


def _trace_cli(cloud: LocalCloud, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
    return subprocess.run(
        [sys.executable, "-m", "darkroom.cli", "trace", *args, "--api-url", cloud.api_url],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "250"},
        timeout=180,
    )


def test_the_manifest_records_each_files_lineage(
    cloud: LocalCloud, studio: Studio, developed: tuple[str, list[Path]]
) -> None:
    job_id, files = developed
    manifest = studio.manifest(job_id)
    assert manifest["recipe_resolved"]["renditions"][0]["quality"] == 90
    s3 = cloud.client("s3")
    for path, entry in zip(sorted(files), manifest["files"], strict=True):
        assert entry["name"] == path.name
        # The original as uploaded: its S3 version and its bytes' digest.
        head = s3.head_object(Bucket=names.RAW_BUCKET, Key=keys.raw_key(job_id, path.name))
        assert entry["original_version"] == head["VersionId"]
        assert entry["original_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["recipe_sha256"] == manifest["recipe_sha256"]
        assert set(entry["software"]) >= {"darkroom", "libraw", "pillow"}
        assert set(entry["timings"]) == {"download", "decode", "render", "upload"}
        assert sorted(entry["outputs"]) == list(RENDITIONS)
        for output in entry["outputs"].values():
            body = s3.get_object(Bucket=names.PROCESSED_BUCKET, Key=output["key"])["Body"].read()
            assert output["sha256"] == hashlib.sha256(body).hexdigest()
            assert output["bytes"] == len(body) and output["width"] and output["height"]


def test_trace_verifies_every_rendition_then_reports_one_overwritten_as_tampered(
    cloud: LocalCloud, studio: Studio, developed: tuple[str, list[Path]]
) -> None:
    job_id, files = developed
    clean = _trace_cli(cloud, job_id, "--json")
    assert clean.returncode == 0, clean.stderr + clean.stdout
    document = json.loads(clean.stdout)
    assert document["counts"]["ok"] == len(files) * len(RENDITIONS)
    assert {r["verdict"] for f in document["files"] for r in f["renditions"]} == {"ok"}
    shown = _trace_cli(cloud, job_id)
    assert shown.returncode == 0, shown.stderr
    assert f"{len(files) * len(RENDITIONS)} renditions: {len(files) * 3} ok" in shown.stdout

    # Someone with access to the bucket replaces one delivered rendition.
    victim = sorted(files)[0].name
    key = studio.manifest(job_id)["files"][0]["outputs"]["web"]["key"]
    cloud.client("s3").put_object(Bucket=names.PROCESSED_BUCKET, Key=key, Body=b"not it")
    tampered = _trace_cli(cloud, job_id, victim, "--json")
    assert tampered.returncode == 1, tampered.stderr
    (file,) = json.loads(tampered.stdout)["files"]
    verdicts = {r["rendition"]: r["verdict"] for r in file["renditions"]}
    assert verdicts == {"full": "ok", "thumb": "ok", "web": "tampered"}
    table = _trace_cli(cloud, job_id)
    assert table.returncode == 1 and "tampered" in table.stdout


def test_a_get_failing_midway_reports_that_file_unverified(
    cloud: LocalCloud, developed: tuple[str, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, files = developed
    victim = sorted(files)[-1].name
    real = client._chunks

    def breaking(url: str) -> Iterator[bytes]:
        # Every attempt at the victim's thumbnail breaks off halfway, as a dropped
        # connection would (its retries too).
        if f"/{victim.rsplit('.', 1)[0]}." in unquote(urlsplit(url).path) and "/thumb/" in url:
            body = b"".join(real(url))
            yield body[: len(body) // 2]
            raise ConnectionResetError("connection reset mid-body")
        yield from real(url)

    monkeypatch.setattr(client, "_chunks", breaking)
    traced = StudioClient(ApiClient(cloud.api_url)).trace(job_id, victim)
    (file,) = traced.files
    verdicts = {r.rendition: r for r in file.renditions}
    assert verdicts["thumb"].verdict is Verdict.UNVERIFIED
    assert "connection reset" in (verdicts["thumb"].reason or "")
    assert {verdicts[r].verdict for r in ("full", "web")} == {Verdict.OK}
    assert traced.unverified and not traced.failed


def test_trace_with_originals_hashes_each_raw_and_reports_a_lost_one_missing(
    cloud: LocalCloud, studio: Studio, tmp_path: Path
) -> None:
    files = make_demo_shoot(tmp_path / "shoot", count=2, width=600, height=400)
    job_id = studio.upload(files, name="originals")
    assert studio.wait(job_id, timeout=300).status is JobStatus.DONE
    s3 = cloud.client("s3")
    victim = sorted(files)[0].name
    key = keys.raw_key(job_id, victim)
    developed = s3.head_object(Bucket=names.RAW_BUCKET, Key=key)["VersionId"]
    # A later upload over the original makes a new version: the one developed stays,
    # and it is the one traced.
    s3.put_object(Bucket=names.RAW_BUCKET, Key=key, Body=b"uploaded over it")
    clean = _trace_cli(cloud, job_id, "--originals", "--json")
    assert clean.returncode == 0, clean.stderr + clean.stdout
    originals = {f["name"]: f["original"] for f in json.loads(clean.stdout)["files"]}
    assert {o["verdict"] for o in originals.values()} == {"ok"}
    assert (
        originals[victim]["served_sha256"]
        == hashlib.sha256(sorted(files)[0].read_bytes()).hexdigest()
    )
    shown = _trace_cli(cloud, job_id, "--originals")
    assert f"{2 * len(RENDITIONS)} renditions and 2 originals: {2 * 4} ok" in shown.stdout

    # The developed version itself deleted (a lifecycle rule, a hand in the console).
    s3.delete_object(Bucket=names.RAW_BUCKET, Key=key, VersionId=developed)
    lost = _trace_cli(cloud, job_id, victim, "--originals", "--json")
    assert lost.returncode == 1, lost.stderr + lost.stdout
    (file,) = json.loads(lost.stdout)["files"]
    assert (file["original"]["verdict"], file["original"]["reason"]) == (
        "missing",
        "the original is gone",
    )
    assert {r["verdict"] for r in file["renditions"]} == {"ok"}
