"""Orchestration overhead of a RAW job on the embedded local cloud.

Runs jobs end to end and splits each job's wall time (manifest written -> job terminal)
into time spent developing RAW files (the worker's own per-file timings) and everything
else: S3 event, Lambda cold/warm starts, state transitions, instance boot, lease hand-over,
uploads, stop. Per-state time comes from the execution history.

    .venv/bin/python -m benchmarks.orchestration [--jobs 3] [--files 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.local.cloud import LocalCloud, LocalCloudConfig
from tests.harness import Studio, Target


def state_durations(history: list[dict]) -> dict[str, float]:
    """Seconds spent in each state, from StateEntered/StateExited pairs."""
    entered: dict[str, float] = {}
    spent: dict[str, float] = defaultdict(float)
    for event in history:
        when = event["timestamp"].timestamp()
        if details := event.get("stateEnteredEventDetails"):
            entered[details["name"]] = when
        elif details := event.get("stateExitedEventDetails"):
            spent[details["name"]] += when - entered.pop(details["name"], when)
    return dict(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--files", type=int, default=4)
    args = parser.parse_args()
    console = Console()

    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalCloud(LocalCloudConfig(port=0, state_dir=Path(tmp) / "cloud")) as cloud,
    ):
        studio = Studio(Target.local(cloud.endpoint_url))
        rows = []
        per_state: dict[str, list[float]] = defaultdict(list)
        for n in range(args.jobs):
            files = make_demo_shoot(Path(tmp) / f"shoot{n}", count=args.files)
            t0 = time.perf_counter()
            job_id = studio.upload(files)
            uploaded = time.perf_counter()
            job = studio.wait(job_id, timeout=600, poll=0.1)
            wall = time.perf_counter() - uploaded
            develop = sum(f["develop_seconds"] for f in studio.manifest(job_id)["files"])
            for state, seconds in state_durations(
                studio.executions.history(job.execution_arn or "")
            ).items():
                per_state[state].append(seconds)
            rows.append((job_id, str(job.status), uploaded - t0, wall, develop, wall - develop))

    table = Table(title=f"RAW job orchestration ({args.files} DNG files per job, local cloud)")
    for column in ("job", "status", "upload s", "job wall s", "developing s", "overhead s"):
        table.add_column(column, justify="right")
    for job_id, status, up, wall, develop, overhead in rows:
        table.add_row(
            job_id, status, f"{up:.2f}", f"{wall:.2f}", f"{develop:.2f}", f"{overhead:.2f}"
        )
    console.print(table)
    overheads = [r[5] for r in rows]
    console.print(
        f"orchestration overhead per job: median {statistics.median(overheads):.2f}s "
        f"(first job, cold: {overheads[0]:.2f}s)"
    )
    states = Table(title="median seconds per state")
    states.add_column("state")
    states.add_column("seconds", justify="right")
    for state, values in per_state.items():
        states.add_row(state, f"{statistics.median(values):.2f}")
    console.print(states)


if __name__ == "__main__":
    main()
