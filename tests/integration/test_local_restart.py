"""A persistent local cloud stopped and started again: what it held is still there, and
a job the stop interrupted comes back FAILED, to be reprocessed (not left PROCESSING).

Each life of the cloud runs in a process of its own (tests/integration/restart_run.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from darkroom.local import snapshot
from tests.conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _life(phase: str, state_dir: Path, workdir: Path, ports: tuple[int, int]) -> dict[str, Any]:
    command = [sys.executable, "-m", "tests.integration.restart_run", phase, str(state_dir)]
    result = subprocess.run(
        [*command, str(workdir), *map(str, ports)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"the {phase} life failed:\n{result.stderr[-4000:]}"
    return dict(json.loads((workdir / f"{phase}.json").read_text()))


@pytest.fixture(scope="module")
def lives(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("restart-state")
    workdir = tmp_path_factory.mktemp("restart-work")
    # The same ports both times: a share link names the API's URL.
    ports = (_free_port(), _free_port())
    first = _life("first", state_dir, workdir, ports)
    assert snapshot.current(state_dir) is not None
    return first, _life("second", state_dir, workdir, ports)


def test_what_the_cloud_held_survives_a_restart(lives: Any) -> None:
    first, second = lives
    assert second["done_status"] == "DONE"
    assert second["renditions"] > 0
    assert second["share_http"] == 200
    assert second["raw"] == first["raw"] and first["raw"]
    assert second["restored_objects"] >= len(first["raw"])


def test_a_job_the_stop_interrupted_comes_back_failed_and_reprocesses(lives: Any) -> None:
    first, second = lives
    assert first["status_at_stop"] == "PROCESSING"
    assert second["interrupted_on_start"] == [first["interrupted"]]
    assert second["interrupted_status"] == "FAILED"
    assert second["interrupted_error"] == "ExecutionEnded"
    assert snapshot.INTERRUPTED_CAUSE in second["interrupted_cause"]
    assert second["reprocessed"] == "DONE"


def test_the_first_lifes_executions_are_still_listed_described_and_read(lives: Any) -> None:
    first, second = lives
    # Every one the first life had, with the status it ended in; the one the stop
    # interrupted ended with it.
    for name, status in first["executions"].items():
        assert second["executions"][name] == ("ABORTED" if status == "RUNNING" else status)
    assert (
        set(second["succeeded"]) == {n for n, s in first["executions"].items() if s == "SUCCEEDED"}
        and second["succeeded"]
    )
    assert second["interrupted_execution"] == ["ABORTED", snapshot.INTERRUPTED_ERROR]
    assert second["done_history"][0] == "ExecutionStarted"
    assert second["done_history"][-1] == "ExecutionSucceeded"
