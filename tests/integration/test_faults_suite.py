"""Jobs under faults, through the HTTP API on the local cloud: processes killed for real at
each step, a worker killed mid-run, races and hostile inputs. Each job must end terminal
or recover without a hand edit, and its originals keep their checksums throughout.

test_step_faults.py kills each step at one point; the kills here are the other points.
Lost submissions and stopped executions are in test_faults_endings.py.
"""

from __future__ import annotations

import hashlib
import json
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from darkroom import keys, names
from darkroom.api.client import ApiClient
from darkroom.cli.studio_client import StudioClient
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.local.cloud import LocalCloud
from darkroom.names import Function
from tests.harness import Studio, lease_of, wait_for
from tests.integration.conftest import HEARTBEAT_SECONDS
from tests.integration.test_step_faults import _crashed_states

pytestmark = pytest.mark.integration

TERMINAL = {"DONE", "DONE_WITH_ERRORS", "FAILED"}


@pytest.fixture(scope="module")
def client(cloud: LocalCloud) -> StudioClient:
    return StudioClient(ApiClient(cloud.api_url))


def _shoot(tmp_path: Path, count: int = 2, *, large: bool = False) -> list[Path]:
    # Larger frames take long enough to develop for a test to act mid-run.
    width, height = (2400, 1600) if large else (900, 600)
    return make_demo_shoot(tmp_path / "shoot", count=count, width=width, height=height)


def _assert_originals_intact(cloud: LocalCloud, job_id: str, files: list[Path]) -> None:
    s3 = cloud.client("s3")
    for path in files:
        stored = s3.get_object(Bucket=names.RAW_BUCKET, Key=keys.raw_key(job_id, path.name))
        body = stored["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(path.read_bytes()).digest(), (
            f"original {path.name} of {job_id} changed"
        )


def _ended(studio: Studio, client: StudioClient, job_id: str, arn: str, timeout: float) -> Any:
    """The job once terminal and the given execution over."""
    return wait_for(
        lambda: (
            (job := client.job(job_id))["status"] in TERMINAL
            and studio.executions.status(arn) != "RUNNING"
            and job
        ),
        timeout,
        poll=0.3,
    )


def _developing(
    client: StudioClient,
    job_id: str,
    files_done: int = 0,
    *,
    running: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """The job once its worker has developed `files_done` files and not all of them.
    `running`: whether the run being waited for still runs (a reprocess, which the job
    shows only once it has registered); else the job must not have finished."""

    def check() -> dict[str, Any] | None:
        job = client.job(job_id)
        if running is None:
            assert job["status"] not in TERMINAL, f"job finished before the fault: {job}"
        else:
            assert running(), f"the run ended before the fault: {job}"
        ready = job["status"] == "PROCESSING" and job.get("instance_id")
        if ready and files_done <= job["files_done"] < job["files_total"]:
            return job
        return None

    return wait_for(check, 120, poll=0.05)


def _executions_of(studio: Studio, job_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in studio.executions.list()
        # An execution started by hand may carry any JSON, not only an object.
        if _job_id_of(json.loads(studio.executions.describe(e["executionArn"])["input"])) == job_id
    ]


def _job_id_of(execution_input: Any) -> Any:
    return execution_input.get("job_id") if isinstance(execution_input, dict) else None


# -- every step survives a crash of its own process ---------------------------------------
def test_each_step_retries_a_crash_at_the_points_the_step_fault_tests_leave_out(
    studio: Studio, cloud: LocalCloud, client: StudioClient, tmp_path: Path
) -> None:
    # RegisterJob once it has registered the job; the others before their handler runs:
    # a StartWorker that leased nothing, a WaitForWorker that handed no token over, a
    # StopWorker that stopped nothing.
    kills = [
        cloud.kill_next_invocation(Function.REGISTER_JOB, after_handler=True),
        cloud.kill_next_invocation(Function.START_WORKER),
        cloud.kill_next_invocation(Function.AWAIT_WORKER),
        cloud.kill_next_invocation(Function.STOP_WORKER),
    ]
    files = _shoot(tmp_path)
    job_id = client.upload(files)

    job = client.wait(job_id, timeout=240)
    assert all(kill.is_set() for kill in kills)
    assert job["status"] == "DONE", job
    assert (job["files_done"], job["attempt"], job["error"]) == (2, 1, None)
    arn = job["execution_arn"]
    wait_for(lambda: studio.executions.status(arn) == "SUCCEEDED", 30)
    assert _crashed_states(studio, arn) == [
        "RegisterJob",
        "StartWorker",
        "WaitForWorker",
        "StopWorker",
    ]
    assert lease_of(cloud)["state"] == "IDLE"
    _assert_originals_intact(cloud, job_id, files)


def test_a_worker_killed_mid_run_ends_the_job_and_one_reprocess_recovers_it(
    studio: Studio, cloud: LocalCloud, client: StudioClient, tmp_path: Path
) -> None:
    # Six large frames: a window to act in even when the develop processes are fast.
    files = _shoot(tmp_path, 6, large=True)
    job_id = client.upload(files)
    developing = _developing(client, job_id, files_done=1)
    assert cloud.instances is not None
    cloud.instances.kill(developing["instance_id"])

    job = _ended(studio, client, job_id, developing["execution_arn"], HEARTBEAT_SECONDS * 4)
    if job["status"] == "FAILED":
        assert job["error"] in {"WorkerTimedOut", "WorkerLost"}, job
        # As an operator would: once, with nothing edited by hand.
        arn = client.reprocess(job_id)
        job = _ended(studio, client, job_id, arn, 180)
    assert job["status"] == "DONE", job
    assert job["files_done"] == 6
    _assert_originals_intact(cloud, job_id, files)
    assert wait_for(lambda: lease_of(cloud)["state"] == "IDLE", 30)


# -- reprocess ----------------------------------------------------------------------------
def test_two_reprocess_calls_at_once_answer_202_and_409_and_the_accepted_recipe_is_run(
    studio: Studio, cloud: LocalCloud, client: StudioClient, tmp_path: Path
) -> None:
    files = _shoot(tmp_path)
    job_id = client.upload(files)
    first = client.wait(job_id, timeout=180)
    assert first["status"] == "DONE", first

    both_ready = threading.Barrier(2, timeout=30)
    answers: list[tuple[int, dict[str, Any]]] = []

    def reprocess(ev: float) -> None:
        body: dict[str, Any] = {"recipe": {"exposure": {"compensation_ev": ev}}}
        both_ready.wait()
        response = requests.post(f"{cloud.api_url}/jobs/{job_id}/reprocess", json=body, timeout=60)
        answers.append((response.status_code, {"ev": ev, **response.json()}))

    threads = [threading.Thread(target=reprocess, args=(ev,)) for ev in (1.5, -1.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (accepted_status, accepted), (refused_status, refused) = sorted(answers, key=lambda a: a[0])
    assert (accepted_status, refused_status) == (202, 409), answers
    assert refused["error"] == "conflict"

    arn = accepted["execution_arn"]
    job = _ended(studio, client, job_id, arn, 180)
    assert job["status"] == "DONE", job
    assert studio.executions.status(arn) == "SUCCEEDED"
    # The recipe of the call that was answered 202 is the one developed, not dropped.
    run_input = json.loads(studio.executions.describe(arn)["input"])
    assert run_input["recipe"]["exposure"]["compensation_ev"] == accepted["ev"]
    assert sorted(e["executionArn"] for e in _executions_of(studio, job_id)) == sorted(
        [first["execution_arn"], arn]
    )
    _assert_originals_intact(cloud, job_id, files)


# -- job ids and hostile inputs -----------------------------------------------------------
@pytest.mark.parametrize(
    "job_id",
    [
        "shoot-1.rp-20260102T030405678",  # another job's reprocess execution name
        "shoot-1\n",
        "shoot-1\r\n",
        "x" * 40 + "\n",
    ],
)
def test_a_job_id_that_could_name_another_execution_is_400(cloud: LocalCloud, job_id: str) -> None:
    body: dict[str, Any] = {"files": [{"name": "A.dng", "size": 10}], "job_id": job_id}
    response = requests.post(f"{cloud.api_url}/jobs", json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert "invalid job id" in response.json()["message"]


def _names(*names_: str) -> dict[str, Any]:
    return {"files": [{"name": n, "size": 10} for n in names_]}


def _recipe_of_unknown_keys(count: int) -> dict[str, Any]:
    return {**_names("A.dng"), "recipe": {f"unknown-{i}": 1 for i in range(count)}}


@pytest.mark.parametrize(
    ("method", "path", "body", "statuses"),
    [
        ("GET", "/jobs?limit=%C2%B2", None, {400}),  # limit=² (a digit to str.isdigit)
        ("POST", "/jobs", "[" * 100_000 + "]" * 100_000, {400}),
        ("POST", "/jobs", _recipe_of_unknown_keys(50_000), {400}),
        # Past the body limit before it is parsed.
        ("POST", "/jobs", _recipe_of_unknown_keys(200_000), {400, 413}),
        ("POST", "/jobs", _names("IMG_1.dng", "img_1.dng"), {400}),
        (
            "POST",
            "/jobs",
            _names(
                unicodedata.normalize("NFC", "café.dng"), unicodedata.normalize("NFD", "café.dng")
            ),
            {400},
        ),
    ],
    ids=[
        "superscript-limit",
        "nested-100000",
        "recipe-50000-unknown-keys",
        "recipe-200000-unknown-keys",
        "names-equal-up-to-case",
        "names-equal-up-to-unicode-form",
    ],
)
def test_hostile_inputs_get_a_short_4xx_never_a_500(
    cloud: LocalCloud, method: str, path: str, body: Any, statuses: set[int]
) -> None:
    data = body if isinstance(body, str) or body is None else json.dumps(body)
    response = requests.request(
        method,
        cloud.api_url + path,
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code in statuses, response.text[:500]
    assert len(response.content) < 4096, len(response.content)
    assert response.json()["message"]
