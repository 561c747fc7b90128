"""`darkroom local up` killed with -9 mid-job, then started again on the same state
directory: what the last save held is back (objects, a finished job, its execution and
history, through the same APIs an AWS client uses), the interrupted job and its
execution come back ended with the stop's cause, the worker the killed cloud left
running is ended, and no half-written save is loaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from darkroom import names
from darkroom.cli.studio_client import ApiTarget, StudioClient
from darkroom.local import snapshot
from darkroom.local.instances import pids_path
from tests.integration.restart_run import done_and_processing, raw_digests
from tests.integration.test_cli import DARKROOM
from tests.integration.test_local_restart import _free_port

pytestmark = pytest.mark.integration
SAVE_EVERY = 2


class Up:
    def __init__(self, state_dir: Path, ports: tuple[int, int]) -> None:
        self.proc = subprocess.Popen(
            [
                *DARKROOM,
                *("local", "up", "--state-dir", str(state_dir), "--pool-size", "1"),
                *("--port", str(ports[0]), "--api-port", str(ports[1])),
                *("--save-every", str(SAVE_EVERY)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "300"},
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert first, self.proc.stderr.read() if self.proc.stderr else ""
        self.endpoints: dict[str, Any] = json.loads(first)
        assert "ApiUrl" in self.endpoints, first
        self.banner: list[str] = []
        while not self.banner or "Ctrl-C" not in self.banner[-1]:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.banner.append(line.rstrip("\n"))
        self.studio = StudioClient.at(ApiTarget(self.endpoints["ApiUrl"]))

    def client(self, service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoints["AwsEndpointUrl"],
            region_name=self.endpoints["Region"],
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=120)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended


def _saved(state_dir: Path) -> str:
    try:
        return (state_dir / snapshot.CURRENT).read_text()
    except FileNotFoundError:
        return ""


@pytest.fixture(scope="module")
def lives(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("kill-state")
    work = tmp_path_factory.mktemp("kill-work")
    ports = (_free_port(), _free_port())
    facts: dict[str, Any] = {"state_dir": state_dir}
    first = Up(state_dir, ports)
    try:
        studio = first.studio
        # Big enough to be still developing once a save has followed its start.
        done, interrupted = done_and_processing(studio, work, big=12)
        # A snapshot is named for the moment its save began: the kill comes after one
        # that began once the job was PROCESSING.
        processing = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        deadline = time.monotonic() + 60
        while _saved(state_dir) <= processing:
            assert time.monotonic() < deadline, "no save while running"
            time.sleep(0.1)
        assert studio.job(interrupted)["status"] == "PROCESSING"
        facts |= {
            "done": done,
            "interrupted": interrupted,
            "raw": raw_digests(first, done),  # type: ignore[arg-type]
            "executions_before": {
                e["name"]: e["status"]
                for e in first.client("stepfunctions").list_executions(
                    stateMachineArn=first.endpoints[names.Output.STATE_MACHINE_ARN]
                )["executions"]
            },
        }
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=30)
        facts["workers"] = [int(p) for p in pids_path(state_dir).read_text().split()]
        facts["workers_alive_after_kill"] = [p for p in facts["workers"] if _alive(p)]
    finally:
        first.stop()
    second = Up(state_dir, ports)
    try:
        facts["second"] = second
        yield facts
    finally:
        second.stop()


def test_what_the_last_save_held_survives_a_kill_9(lives: dict[str, Any]) -> None:
    second: Up = lives["second"]
    assert any("loaded" in line for line in second.banner), second.banner
    assert raw_digests(second, lives["done"]) == lives["raw"] and lives["raw"]  # type: ignore[arg-type]
    assert second.studio.job(lives["done"])["status"] == "DONE"


def test_the_job_a_kill_9_interrupted_comes_back_failed_with_its_cause(
    lives: dict[str, Any],
) -> None:
    second: Up = lives["second"]
    job = second.studio.job(lives["interrupted"])
    assert job["status"] == "FAILED"
    assert snapshot.INTERRUPTED_CAUSE in (job.get("cause") or "")
    assert any(lives["interrupted"] in line for line in second.banner), second.banner


def test_executions_are_listed_described_and_read_after_a_kill_9(lives: dict[str, Any]) -> None:
    second: Up = lives["second"]
    sfn = second.client("stepfunctions")
    machine = second.endpoints[names.Output.STATE_MACHINE_ARN]
    listed = {e["name"]: e for e in sfn.list_executions(stateMachineArn=machine)["executions"]}
    assert set(listed) == set(lives["executions_before"])
    done = next(e for e in listed.values() if e["name"].startswith(lives["done"]))
    interrupted = next(e for e in listed.values() if e["name"].startswith(lives["interrupted"]))
    assert done["status"] == "SUCCEEDED"
    failed = sfn.list_executions(stateMachineArn=machine, statusFilter="ABORTED")["executions"]
    assert [e["executionArn"] for e in failed] == [interrupted["executionArn"]]
    described = sfn.describe_execution(executionArn=interrupted["executionArn"])
    assert described["error"] == snapshot.INTERRUPTED_ERROR
    history = sfn.get_execution_history(executionArn=done["executionArn"], maxResults=1000)
    types = [e["type"] for e in history["events"]]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    # The console reads the same API.
    url = f"{second.endpoints['ConsoleUrl']}api/executions"
    console = requests.get(url, params={"status": "SUCCEEDED"}, timeout=30).json()
    assert done["executionArn"] in [e["executionArn"] for e in console["executions"]]


def test_a_kill_9_leaves_no_worker_behind_once_started_again(lives: dict[str, Any]) -> None:
    # The killed cloud's worker outlived it (a session of its own) ...
    assert lives["workers_alive_after_kill"], lives["workers"]
    # ... until the next start over the same state directory.
    assert not [p for p in lives["workers"] if _alive(p)]


def test_no_half_written_save_is_loaded(lives: dict[str, Any]) -> None:
    state_dir: Path = lives["state_dir"]
    live = snapshot.current(state_dir)
    assert live is not None and not live.name.startswith(".")
    manifest = json.loads((live / "manifest.json").read_text())
    assert manifest["format"] == snapshot.FORMAT
    # Every body the live snapshot names is whole on disk under its own name.
    for index in (live / "s3").glob("*.jsonl"):
        for line in index.read_text().splitlines():
            entry = json.loads(line)
            if "blob" in entry:
                assert (state_dir / snapshot.BLOBS / entry["blob"]).is_file()
