"""Pool instances of the local cloud: one worker process per running instance."""

from __future__ import annotations

import time
from pathlib import Path

from darkroom.local.workers import WorkerProcesses

# Stands in for `python -m worker`: takes half a second to exit after SIGTERM, as a
# worker finishing its last log lines does.
SLOW_TO_STOP = """#!/bin/sh
trap 'sleep 0.5; exit 0' TERM
while true; do sleep 0.05; done
"""


def test_a_start_right_after_a_stop_boots_a_fresh_worker(tmp_path: Path) -> None:
    fake_python = tmp_path / "fake-python"
    fake_python.write_text(SLOW_TO_STOP)
    fake_python.chmod(0o755)
    workers = WorkerProcesses(tmp_path / "state", {}, python=str(fake_python))
    try:
        workers.on_start("i-1")
        time.sleep(0.2)  # let the shell install its trap
        first = workers.pid("i-1")
        workers.on_stop("i-1")
        workers.on_start("i-1")  # the next job's StartWorker, while the old one exits
        second = workers.pid("i-1")
        assert first is not None and second is not None and second != first
        assert workers.boots["i-1"] == 2
    finally:
        workers.close()


def test_starting_a_running_instance_boots_nothing(tmp_path: Path) -> None:
    fake_python = tmp_path / "fake-python"
    fake_python.write_text(SLOW_TO_STOP)
    fake_python.chmod(0o755)
    workers = WorkerProcesses(tmp_path / "state", {}, python=str(fake_python))
    try:
        workers.on_start("i-1")
        workers.on_start("i-1")
        assert workers.boots["i-1"] == 1
    finally:
        workers.close()
