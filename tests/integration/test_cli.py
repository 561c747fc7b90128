"""The `darkroom` command as a user runs it, in processes of its own."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from PIL import Image

from darkroom.imaging.fixtures import make_demo_shoot

pytestmark = pytest.mark.integration
DARKROOM = [sys.executable, "-m", "darkroom.cli"]


def run(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DARKROOM, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160", **env},
    )


def _kept_logs(stderr: str) -> str:
    """A failed demo keeps its function and worker logs; show them in the failure."""
    match = re.search(r"kept in (\S+)", stderr.replace("\n", ""))
    if not match or not Path(match.group(1)).is_dir():
        return ""
    return "".join(
        f"\n--- {log.name}\n{log.read_text(errors='replace')[-4000:]}"
        for log in sorted(Path(match.group(1)).glob("*.log"))
    )


def test_demo_ends_with_a_finished_job_and_its_renditions_on_disk(tmp_path: Path) -> None:
    result = run("demo", "--count", "2", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout + result.stderr + _kept_logs(result.stderr)
    out = tmp_path / "out"
    (job_dir,) = (p for p in out.iterdir() if p.name != "thumbnails")
    # The ordinary images' thumbnails from the S3 -> Lambda path, one folder per image.
    thumbnails = sorted((out / "thumbnails").rglob("256.*"))
    assert len(thumbnails) >= 4, sorted(out.rglob("*"))
    for rendition in ("web", "thumb", "full"):
        files = sorted((job_dir / rendition).iterdir())
        assert len(files) == 2
        for path in files:
            with Image.open(path) as image:
                image.verify()
    assert "DONE" in result.stdout
    assert "orchestration overhead" in result.stdout
    assert str(job_dir.resolve()) in result.stdout.replace("\n", "")


@pytest.fixture
def local_up(tmp_path: Path) -> Iterator[dict[str, str]]:
    proc = subprocess.Popen(
        [*DARKROOM, "local", "up", "--port", "0", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first_line = proc.stdout.readline()
        yield json.loads(first_line)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_local_up_prints_endpoints_as_json_and_any_aws_client_works(
    local_up: dict[str, str], tmp_path: Path
) -> None:
    endpoint = local_up["AwsEndpointUrl"]
    assert endpoint.startswith("http://127.0.0.1:")
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        region_name="us-east-1",
    )
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert local_up["RawBucketName"] in buckets

    # Upload, watch, status, reprocess and download, each a separate CLI process.
    shoot = tmp_path / "shoot"
    make_demo_shoot(shoot, count=2, width=800, height=533)
    uploaded = run("upload", str(shoot), "--endpoint-url", endpoint)
    assert uploaded.returncode == 0, uploaded.stderr
    job_id = uploaded.stdout.strip()

    watched = run("watch", job_id, "--endpoint-url", endpoint)
    assert watched.returncode == 0, watched.stdout + watched.stderr

    status = run("status", job_id, "--json", "--endpoint-url", endpoint)
    summary = json.loads(status.stdout)
    assert summary["status"] == "DONE"
    assert summary["files_done"] == 2

    again = run("reprocess", job_id, "--wait", "--endpoint-url", endpoint)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (
        json.loads(run("status", job_id, "--json", "--endpoint-url", endpoint).stdout)["attempt"]
        == 2
    )

    dest = tmp_path / "download"
    downloaded = run("download", job_id, str(dest), "--endpoint-url", endpoint)
    assert downloaded.returncode == 0, downloaded.stderr
    assert len(list((dest / "web").iterdir())) == 2
    assert json.loads((dest / "manifest.json").read_text())["files_done"] == 2


def test_commands_fail_clearly_on_bad_input(local_up: dict[str, str], tmp_path: Path) -> None:
    endpoint = local_up["AwsEndpointUrl"]
    (tmp_path / "empty").mkdir()
    empty = run("upload", str(tmp_path / "empty"), "--endpoint-url", endpoint)
    assert empty.returncode == 2
    assert "no RAW files" in empty.stderr
    missing = run("status", "no-such-job", "--endpoint-url", endpoint)
    assert missing.returncode == 1
    assert "not found" in missing.stderr
