"""The local cloud run the IAM-call test checks, in a process of its own.

moto's backends are process-wide, and the integration tests keep a local cloud for the
whole session: a second cloud in the same process would collide with it. So the test
runs `python -m tests.infra.iam_run STATE_DIR WORK_DIR FUNCTION...` (the functions
EventBridge schedules) and reads what it leaves in STATE_DIR: the recorded calls and
RUN_FILE, what the test needs of the cloud to name its resources.

The run: a RAW job through the API end to end, a studio asset uploaded and a reprocess
that lays it as a watermark, a share opened and revoked,
a job that fails at registration, a thumbnail created and removed, each scheduled
function, every other API route once, and the worker's idle self-stop.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Final

import requests
from PIL import Image

from darkroom import keys, names
from darkroom.api.routes import ROUTES
from darkroom.cli.studio_client import ApiTarget, StudioClient
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.local.cloud import LocalCloud, LocalCloudConfig, state_machine_arn

RUN_FILE: Final = "run.json"
TERMINAL = {"DONE", "DONE_WITH_ERRORS", "FAILED"}


def exercise(cloud: LocalCloud, workdir: Path, scheduled: list[str]) -> None:
    make_demo_shoot(workdir / "shoot", count=2, width=240, height=160)
    studio = StudioClient.at(ApiTarget(cloud.api_url))
    job_id = studio.upload(sorted((workdir / "shoot").iterdir()), name="iam")
    # A thumbnail, made while the RAW job runs (nothing they share).
    s3 = cloud.client("s3")
    image = workdir / "thumb.png"
    Image.new("RGB", (64, 48), (200, 120, 40)).save(image)
    s3.upload_file(str(image), names.INPUT_BUCKET, "iam/thumb.png")
    first = studio.wait(job_id, timeout=120, poll=0.2)
    assert first["status"] == "DONE", first
    wait_for(lambda: thumbnail_count(s3) > 0)
    studio.jobs()
    # The reprocess lays the studio's watermark: the asset's upload, and its read.
    logo = workdir / "logo.png"
    Image.new("RGBA", (40, 20), (255, 255, 255, 128)).save(logo)
    studio.put_asset("logo", logo)
    execution = studio.reprocess(job_id, {"watermark": {"asset": "logo"}})
    wait_for(
        lambda: (
            (job := studio.job(job_id))["status"] in TERMINAL
            and job.get("execution_arn") == execution
        ),
        timeout=120,
    )
    share = studio.share(job_id, message="for the IAM run")
    page = studio.shared(share["url"])
    requests.get(share["url"], headers={"Accept": "text/html"}, timeout=30)
    # A download is counted on the share (UpdateItem ADD), a listing reads its index.
    requests.get(page["files"][0]["renditions"][0]["download_url"], timeout=30)
    studio.extend(job_id, share["share_id"], 3600)
    assert studio.shares(job_id)[0]["downloads"] == 1
    studio.revoke(job_id, share["share_id"])

    # A submission naming a file never uploaded fails at registration: MarkFailed runs.
    failing = keys.new_job_id()
    manifest = {"job_id": failing, "name": "missing", "files": [{"name": "gone.dng", "size": 1}]}
    s3.put_object(
        Bucket=names.RAW_BUCKET, Key=keys.raw_manifest_key(failing), Body=json.dumps(manifest)
    )
    sfn = cloud.client("stepfunctions")
    failed_run = f"{state_machine_arn(cloud.config.region)}:{failing}".replace(
        ":stateMachine:", ":execution:"
    )
    wait_for(lambda: execution_status(sfn, failed_run) not in (None, "RUNNING"))

    s3.delete_object(Bucket=names.INPUT_BUCKET, Key="iam/thumb.png")
    wait_for(lambda: thumbnail_count(s3) == 0)

    # What EventBridge schedules in AWS runs here once, as a scheduled event would.
    event = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    for function in scheduled:
        cloud.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    # A password-protected share unlocked: its attempt counter (UpdateItem ADD, then the
    # right password's refund) on the shares table.
    protected = studio.share(job_id, password="iam-run-password")
    unlocked = requests.post(
        f"{protected['url']}/unlock", json={"password": "iam-run-password"}, timeout=30
    )
    assert unlocked.status_code == 204, unlocked.text
    live = studio.share(job_id)
    sweep_routes(
        cloud.api_url,
        {"job_id": job_id, "share_id": live["share_id"], "token": live["token"], "name": "logo"},
    )
    # Started with no lease (as an operator might), the worker stops its own instance.
    instances = cloud.instances
    assert instances is not None
    (instance,) = cloud.instance_ids
    wait_for(lambda: instances.pid(instance) is None)
    boots = instances.boots.get(instance, 0)
    cloud.client("ec2").start_instances(InstanceIds=[instance])
    wait_for(lambda: instances.boots.get(instance, 0) > boots)
    wait_for(lambda: instances.pid(instance) is None)


def execution_status(sfn: Any, arn: str) -> str | None:
    try:
        return str(sfn.describe_execution(executionArn=arn)["status"])
    except sfn.exceptions.ExecutionDoesNotExist:
        return None


def thumbnail_count(s3: Any) -> int:
    listed = s3.list_objects_v2(Bucket=names.OUTPUT_BUCKET, Prefix="thumbnails/iam/")
    return int(listed.get("KeyCount", 0))


# The routes the run above calls on purpose; sweep_routes calls every other one.
EXERCISED = {
    "create_job",
    "submit_job",
    "get_job",
    "list_jobs",
    "reprocess_job",
    "put_asset",
    "create_share",
    "open_share",
    "list_shares",
    "extend_share",
    "revoke_share",
}


def sweep_routes(api_url: str, path_params: dict[str, str]) -> None:
    """Every route the run does not call on purpose, once, with the finished job and a
    live share, whatever it answers: a route added later is recorded too. Deletions
    last: they may erase the job."""
    assert {r.operation for r in ROUTES} >= EXERCISED, "a route the run calls was renamed"
    order = {"GET": 0, "DELETE": 2}
    routes = [r for r in ROUTES if r.operation not in EXERCISED]
    for route in sorted(routes, key=lambda r: order.get(r.method, 1)):
        path = route.path
        for name, value in path_params.items():
            path = path.replace("{" + name + "}", value)
        requests.request(route.method, f"{api_url.rstrip('/')}{path}", json={}, timeout=30)


def wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def main(argv: list[str]) -> int:
    state_dir, workdir, *scheduled = argv
    config = LocalCloudConfig(
        port=0,
        state_dir=Path(state_dir),
        pool_size=1,
        worker_heartbeat_interval_seconds=1.0,
        worker_poll_seconds=0.2,
        worker_idle_shutdown_seconds=2,
        record_calls=True,
    )
    with LocalCloud(config) as cloud:
        exercise(cloud, Path(workdir), scheduled)
        run = {
            "region": cloud.config.region,
            "instance_ids": cloud.instance_ids,
            "endpoints": cloud.endpoints(),
            "calls": str(cloud.calls_path),
            "share_cookie_secret_arn": cloud.share_cookie_secret_arn,
        }
    (Path(state_dir) / RUN_FILE).write_text(json.dumps(run))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
