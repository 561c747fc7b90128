"""The `darkroom` command as a user runs it, in processes of its own."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from PIL import Image

from darkroom.imaging.fixtures import make_demo_shoot, write_corrupt_raw

pytestmark = pytest.mark.integration
DARKROOM = [sys.executable, "-m", "darkroom.cli"]
# What makes rich draw live progress in a pipe, as it would in a terminal.
TERMINAL = {"FORCE_COLOR": "1", "TERM": "xterm-256color"}


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
    # As on a terminal, so the live view renders its frames into the captured output.
    result = run(
        "demo", "--count", "2", "--out", str(tmp_path / "out"), FORCE_COLOR="1", TERM="xterm"
    )
    assert result.returncode == 0, result.stdout + result.stderr + _kept_logs(result.stderr)
    shown = plain(result.stdout)
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
    assert "DONE" in shown
    assert "orchestration overhead" in shown
    assert str(job_dir.resolve()) in shown.replace("\n", "")
    # Live: the execution's state while the worker runs, and files still pending then.
    assert "WaitForWorker" in shown
    assert "PENDING" in shown


def test_demo_of_a_shoot_that_cannot_develop_exits_non_zero_naming_each_file(
    tmp_path: Path,
) -> None:
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    write_corrupt_raw(shoot / "A.dng", "truncated")
    write_corrupt_raw(shoot / "B.dng", "garbage")
    # A failed demo keeps its logs in a temporary folder: keep that one in tmp_path.
    result = run(
        "demo", "--input", str(shoot), "--out", str(tmp_path / "out"), TMPDIR=str(tmp_path)
    )
    assert result.returncode == 1, result.stdout + result.stderr
    text = result.stdout.replace("\n", " ")
    assert "status FAILED" in result.stdout
    assert "AllFilesFailed: none of the 2 files developed" in plain(result.stdout)
    assert "A.dng" in text and "B.dng" in text
    # Nothing was finished, so nothing is downloaded or presented as renditions.
    assert "renditions in" not in result.stdout
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "thumbnails"]
    assert "logs of every function and worker kept in" in result.stderr


def plain(text: str) -> str:
    """Terminal output without its colours and cursor moves."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


@dataclass
class LocalUp:
    endpoints: dict[str, str]  # the first line, JSON
    banner: list[str]  # the lines after it, up to "Ctrl-C stops it"


@pytest.fixture
def local_up(tmp_path: Path) -> Iterator[LocalUp]:
    proc = subprocess.Popen(
        [*DARKROOM, "local", "up", "--port", "0", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "300"},
    )
    try:
        assert proc.stdout is not None
        first_line = proc.stdout.readline()
        banner: list[str] = []
        while not banner or "Ctrl-C" not in banner[-1]:
            line = proc.stdout.readline()
            if not line:
                break
            banner.append(line.rstrip("\n"))
        yield LocalUp(json.loads(first_line), banner)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_local_up_prints_its_endpoints_then_serves_a_whole_cli_session(
    local_up: LocalUp, tmp_path: Path
) -> None:
    endpoint = local_up.endpoints["AwsEndpointUrl"]
    assert endpoint.startswith("http://127.0.0.1:")
    api_url = local_up.endpoints["ApiUrl"]
    assert api_url.startswith("http://127.0.0.1:")
    # After the JSON line: how to point the AWS CLI and darkroom at it.
    assert any(f"aws --endpoint-url {endpoint} " in line for line in local_up.banner), (
        local_up.banner
    )
    assert any(f"DARKROOM_API_URL={api_url}" in line for line in local_up.banner)
    console_url = local_up.endpoints["ConsoleUrl"]
    assert console_url == f"{api_url}/console/"
    assert any(f"console: {console_url}" in line for line in local_up.banner)
    # Where its state is kept across restarts (a fresh directory: nothing saved yet).
    state = f"state in {(tmp_path / 'state').resolve()}"
    assert any(line.startswith(state) for line in local_up.banner), local_up.banner
    opened = run("console", "--no-browser", "--endpoint-url", endpoint)
    assert (opened.returncode, opened.stdout.strip()) == (0, console_url), opened.stderr
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        region_name="us-east-1",
    )
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert local_up.endpoints["RawBucketName"] in buckets

    # Upload, watch, status, reprocess and download, each a separate CLI process.
    shoot = tmp_path / "shoot"
    make_demo_shoot(shoot, count=2, width=800, height=533)
    uploaded = run("upload", str(shoot), "--endpoint-url", endpoint, **TERMINAL)
    assert uploaded.returncode == 0, uploaded.stderr
    job_id = uploaded.stdout.strip()
    # The transfer as a rich progress bar on stderr (stdout stays the job id alone).
    assert re.search(r"uploading 2/2 .* ([\d.]+)/\1 [kMG]?B ", plain(uploaded.stderr)), (
        uploaded.stderr
    )

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
    downloaded = run("download", job_id, str(dest), "--endpoint-url", endpoint, **TERMINAL)
    assert downloaded.returncode == 0, downloaded.stderr
    assert len(list((dest / "web").iterdir())) == 2
    assert json.loads((dest / "manifest.json").read_text())["files_done"] == 2
    # Two files, three renditions each.
    progress = plain(downloaded.stderr)
    assert re.search(r"downloading 6/6 .* ([\d.]+)/\1 [kMG]?B ", progress), downloaded.stderr

    # With no job id, status lists the recent jobs.
    listed = run("status", "--endpoint-url", endpoint)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if job_id in line]
    assert "DONE" in row and "2/2 (0 failed)" in row

    # A share link, revoked: its client is told so, with 410.
    shared = run("share", job_id, "--json", "--endpoint-url", endpoint)
    assert shared.returncode == 0, shared.stderr
    share = json.loads(shared.stdout)
    assert requests.get(share["url"], timeout=30).status_code == 200
    revoked = run("share", job_id, "--revoke", share["share_id"], "--endpoint-url", endpoint)
    assert revoked.returncode == 0, revoked.stderr
    assert f"share {share['share_id']} of job {job_id} revoked" in revoked.stderr
    gone = requests.get(share["url"], timeout=30)
    assert gone.status_code == 410 and "revoked" in gone.json()["message"]
    refused = run("download", share["url"], str(tmp_path / "client"))
    assert refused.returncode == 1
    assert "revoked" in refused.stderr

    # A link for 30 days with a note, said in words; listed with its counts; extended.
    made = run(
        "share", job_id, "--expires-in", "30d", "--message", "Enjoy!", "--endpoint-url", endpoint
    )
    assert made.returncode == 0, made.stderr
    assert "expires in 30 days" in made.stderr
    link = made.stdout.strip()
    assert requests.get(link, headers={"accept": "text/html"}, timeout=30).status_code == 200
    listed_shares = run("shares", job_id, "--json", "--endpoint-url", endpoint)
    assert listed_shares.returncode == 0, listed_shares.stderr
    (live,) = [s for s in json.loads(listed_shares.stdout) if s["state"] == "active"]
    assert (live["views"], live["downloads"], live["message"]) == (1, 0, "Enjoy!")
    extended = run("share", job_id, "--extend", "30d", "--endpoint-url", endpoint)
    assert extended.returncode == 0, extended.stderr
    # 60 days from the link's creation, a few seconds ago (a minute ago on a slow box).
    assert re.search(
        rf"share {live['share_id']} now expires in (60 days|59 days 23 hours) ", extended.stderr
    ), extended.stderr
    table = run("shares", job_id, "--endpoint-url", endpoint)
    (row,) = [line for line in table.stdout.splitlines() if live["share_id"] in line]
    assert "active" in row and "Enjoy!" in row
    too_long = run("share", job_id, "--expires-in", "100d", "--endpoint-url", endpoint)
    assert too_long.returncode == 2 and "Traceback" not in too_long.stderr
    assert "must be between 1 hour and 90 days; '100d' is 100 days" in too_long.stderr


def test_commands_fail_clearly_on_bad_input(local_up: LocalUp, tmp_path: Path) -> None:
    endpoint = local_up.endpoints["AwsEndpointUrl"]
    (tmp_path / "empty").mkdir()
    empty = run("upload", str(tmp_path / "empty"), "--endpoint-url", endpoint)
    assert empty.returncode == 2
    assert "no RAW files" in empty.stderr
    missing = run("status", "no-such-job", "--endpoint-url", endpoint)
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    # A bad recipe is refused before anything is sent, naming the field.
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps({"renditions": [{"name": "web", "quality": 500}]}))
    make_demo_shoot(tmp_path / "shoot", count=1, width=300, height=200)
    for command in (["reprocess", "no-such-job"], ["upload", str(tmp_path / "shoot")]):
        bad = run(*command, "--recipe", str(recipe), "--endpoint-url", endpoint)
        assert bad.returncode == 2, (command, bad.stdout, bad.stderr)
        assert "recipe.renditions[0].quality" in plain(bad.stderr), (command, bad.stderr)
    assert requests.get(f"{local_up.endpoints['ApiUrl']}/jobs", timeout=30).json()["jobs"] == []


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """stderr with no traceback, unwrapped: rich folds a long line at the width."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return " ".join(result.stderr.split())


def test_cloud_commands_say_what_to_do_without_a_traceback(
    local_up: LocalUp, tmp_path: Path
) -> None:
    endpoint = local_up.endpoints["AwsEndpointUrl"]
    # An unknown job: watch fails at once (it would wait its whole timeout).
    watched = run("watch", "no-such-job", "--endpoint-url", endpoint, timeout=60)
    assert watched.returncode == 1
    assert "job no-such-job not found; `darkroom status` lists the recent jobs" in one_line(watched)

    # A RAW whose name holds square brackets, next to a file upload does not take.
    shoot = tmp_path / "shoot"
    make_demo_shoot(shoot, count=1, width=300, height=200)
    (original,) = shoot.glob("*.dng")
    original.rename(shoot / "IMG_[red]_0001.dng")
    (shoot / "notes.txt").write_text("call the bride")
    uploaded = run("upload", str(shoot), "--endpoint-url", endpoint)
    assert uploaded.returncode == 0, uploaded.stderr
    assert "skipping notes.txt (not a camera RAW file)" in one_line(uploaded)
    job_id = uploaded.stdout.strip()

    # Before it has finished, download says to wait for it, not to "share" it.
    early = run("download", job_id, str(tmp_path / "early"), "--endpoint-url", endpoint)
    if early.returncode != 0:  # it may have finished already on a fast machine
        assert early.returncode == 1
        assert f"job {job_id} is still" in one_line(early)
        assert f"wait for it with `darkroom watch {job_id}`, then download" in one_line(early)

    assert run("watch", job_id, "--endpoint-url", endpoint).returncode == 0
    # The file's name as it is, the run's recipe, and the job id whole at 80 columns.
    shown = run("status", job_id, "--endpoint-url", endpoint, COLUMNS="80")
    assert shown.returncode == 0, shown.stderr
    assert "IMG_[red]_0001.dng" in shown.stdout
    assert "web 2048px jpeg q90" in " ".join(shown.stdout.split())
    listed = run("status", "--endpoint-url", endpoint, COLUMNS="80")
    assert job_id in listed.stdout, listed.stdout
    whole = json.loads(run("status", job_id, "--json", "--endpoint-url", endpoint).stdout)
    assert whole["recipe"]["renditions"][0]["name"] == "web"


def test_download_of_a_running_job_says_to_wait_for_it(local_up: LocalUp, tmp_path: Path) -> None:
    endpoint = local_up.endpoints["AwsEndpointUrl"]
    api = local_up.endpoints["ApiUrl"]
    # Declared, not uploaded yet: as unfinished as a job can be, and stays so.
    created = requests.post(
        f"{api}/jobs", json={"files": [{"name": "A.dng", "size": 10}]}, timeout=30
    ).json()
    job_id = created["job_id"]
    refused = run("download", job_id, str(tmp_path / "out"), "--endpoint-url", endpoint)
    assert refused.returncode == 1
    said = one_line(refused)
    assert f"job {job_id} is still CREATED: nothing to download yet" in said
    assert f"wait for it with `darkroom watch {job_id}`, then download" in said
    assert "shared" not in said
