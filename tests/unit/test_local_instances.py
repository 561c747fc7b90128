"""Pool instances of the local cloud: one worker process per running instance."""

from __future__ import annotations

import time
from pathlib import Path

from darkroom.local.instances import LocalInstances

# Stands in for `python -m worker`: takes half a second to exit after SIGTERM, as a
# worker finishing its last log lines does.
SLOW_TO_STOP = """#!/bin/sh
trap 'sleep 0.5; exit 0' TERM
while true; do sleep 0.05; done
"""


def _instances_booting(tmp_path: Path, script: str) -> LocalInstances:
    """Local instances whose `python -m worker` is the given shell script."""
    fake_python = tmp_path / "fake-python"
    fake_python.write_text(script)
    fake_python.chmod(0o755)
    return LocalInstances(tmp_path / "state", {}, python=str(fake_python))


def test_a_start_right_after_a_stop_boots_a_fresh_worker(tmp_path: Path) -> None:
    instances = _instances_booting(tmp_path, SLOW_TO_STOP)
    try:
        instances.on_start("i-1")
        time.sleep(0.2)  # let the shell install its trap
        first = instances.pid("i-1")
        instances.on_stop("i-1")
        instances.on_start("i-1")  # the next job's StartWorker, while the old one exits
        second = instances.pid("i-1")
        assert first is not None and second is not None and second != first
        assert instances.boots["i-1"] == 2
    finally:
        instances.close()


def test_starting_a_running_instance_boots_nothing(tmp_path: Path) -> None:
    instances = _instances_booting(tmp_path, SLOW_TO_STOP)
    try:
        instances.on_start("i-1")
        instances.on_start("i-1")
        assert instances.boots["i-1"] == 1
    finally:
        instances.close()


# Stands in for `python -m worker`: says which scratch directory it was given, then idles.
REPORTS_ITS_SCRATCH = """#!/bin/sh
echo "scratch=$DARKROOM_SCRATCH_DIR"
trap 'exit 0' TERM
while true; do sleep 0.05; done
"""


def _scratch_reports(log: Path, count: int) -> list[str]:
    """The scratch dirs the worker processes reported, once `count` boots have written."""
    deadline = time.monotonic() + 10
    while True:
        lines = [
            line.removeprefix("scratch=")
            for line in (log.read_text().splitlines() if log.exists() else [])
            if line.startswith("scratch=")
        ]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def test_an_instances_scratch_directory_survives_a_stop_and_start(tmp_path: Path) -> None:
    instances = _instances_booting(tmp_path, REPORTS_ITS_SCRATCH)
    try:
        instances.on_start("i-1")
        log = instances.log_path("i-1")
        assert len(_scratch_reports(log, 1)) == 1  # booted (and past its first line)
        scratch = instances.scratch_dir("i-1")
        (scratch / "jobs").mkdir()
        (scratch / "jobs" / "left-over.dng").write_bytes(b"raw")
        instances.on_stop("i-1")
        instances.on_start("i-1")
        assert instances.boots["i-1"] == 2
        assert (scratch / "jobs" / "left-over.dng").read_bytes() == b"raw"
        # Both boots were handed the one directory, as an EBS volume stays attached.
        assert _scratch_reports(log, 2) == [str(scratch)] * 2
    finally:
        instances.close()


def test_a_start_ends_the_workers_a_killed_cloud_left_and_nothing_else(tmp_path: Path) -> None:
    import subprocess

    from darkroom.local.instances import pids_path, reap_orphans

    state = tmp_path / "state"
    instances = _instances_booting(tmp_path, SLOW_TO_STOP)
    instances.on_start("i-1")
    orphan = instances.pid("i-1")
    # A process that took a recorded pid's place: not this state directory's worker.
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        with pids_path(state).open("a") as pids:
            pids.write(f"{stranger.pid}\n")
        assert orphan is not None
        # The cloud that booted it is gone (no close): the next start finds it running.
        assert reap_orphans(state) == [orphan]
        assert stranger.poll() is None
        assert not pids_path(state).exists()
        assert reap_orphans(state) == []
    finally:
        stranger.kill()
        stranger.wait()
        instances.close()
