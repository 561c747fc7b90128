"""A deploy replaces the state machine's definition and every function's code at once,
but an execution started before it keeps running on the definition it started with: its
Task states send the previous definition's payloads to the new handlers. This runs a job
through the previous committed ASL (as git has it) with today's handlers."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from darkroom import names
from darkroom.cli.studio_client import raw_files
from darkroom.jobs import FileStatus, JobStatus
from darkroom.local.cloud import LocalCloud, function_arn
from darkroom.workflow import ASL_NAME, placeholders, render_definition
from tests.harness import Studio, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ASL = f"workflows/{ASL_NAME}"


def previous_asl() -> tuple[str, str]:
    """(commit, text) of the ASL as committed before its latest change."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git history of the checkout (the previous ASL comes from it)")
    log = subprocess.run(
        ["git", "log", "-n", "2", "--format=%H", "--", ASL],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    commits = log.stdout.split()
    if log.returncode != 0 or len(commits) < 2:
        pytest.skip("the history holds no earlier version of the ASL (a shallow clone?)")
    shown = subprocess.run(
        ["git", "show", f"{commits[1]}:{ASL}"], cwd=REPO, capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    return commits[1], shown.stdout


def states_of(definition: dict) -> set[str]:
    found: set[str] = set()
    for name, state in definition["States"].items():
        found.add(name)
        inners = [state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])]
        for inner in inners:
            if inner:
                found |= states_of(inner)
    return found


def test_a_job_on_the_previous_definition_finishes_on_todays_handlers(
    studio: Studio, cloud: LocalCloud, shoot: Path
) -> None:
    commit, template = previous_asl()
    region = cloud.config.region
    wanted = placeholders(template)
    gone = wanted - names.ASL_FUNCTION_PLACEHOLDERS.keys()
    # A function the old definition calls must outlive the deploy that drops it.
    assert not gone, f"the ASL of {commit[:8]} calls functions that no longer exist: {gone}"
    previous = render_definition(
        {
            placeholder: function_arn(function, region)
            for placeholder, function in names.ASL_FUNCTION_PLACEHOLDERS.items()
            if placeholder in wanted
        },
        template=template,
    )
    sfn = cloud.client("stepfunctions")
    arn = studio.target.state_machine_arn
    current = sfn.describe_state_machine(stateMachineArn=arn)["definition"]
    assert previous != current, "the previous ASL is this one"

    job_id = studio.upload(raw_files(shoot), name="started before a deploy")
    assert studio.wait(job_id, timeout=180).status is JobStatus.DONE
    # The reprocess an operator started just before the deploy: on the old definition.
    sfn.update_state_machine(stateMachineArn=arn, definition=previous)
    try:
        execution = sfn.start_execution(
            stateMachineArn=arn,
            name=f"{job_id}-before-deploy",
            input=json.dumps({"job_id": job_id}),
        )["executionArn"]
    finally:
        # The deploy lands while it runs.
        sfn.update_state_machine(stateMachineArn=arn, definition=current)
    ended = wait_for(
        lambda: (d := sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d,
        timeout=180,
    )
    assert ended["status"] == "SUCCEEDED", (ended.get("error"), ended.get("cause"))
    entered = {
        e["stateEnteredEventDetails"]["name"]
        for e in sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        if "stateEnteredEventDetails" in e
    }
    assert entered and entered <= states_of(json.loads(template)), "ran the previous ASL"
    job = studio.jobs.get(job_id)
    assert job.status is JobStatus.DONE and job.attempt == 2
    files = list(studio.jobs.files(job_id))
    assert files and all(f.status is FileStatus.DONE for f in files)
