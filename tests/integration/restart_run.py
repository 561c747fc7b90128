"""One life of a persistent local cloud, in a process of its own.

moto's backends are process-wide and live as long as the process: a second cloud in the
process that ran the first would find the first's buckets still there, and the session
cloud of the integration tests may share the worker's process too. So
tests/integration/test_local_restart.py runs
`python -m tests.integration.restart_run PHASE STATE_DIR WORK_DIR PORT API_PORT` once per
life of the cloud, on the same state directory and ports (a share link names the API's
URL), and reads the facts each phase writes to WORK_DIR/<phase>.json.

- `first`: a job to DONE, a share link, then a second job stopped while PROCESSING.
- `second`: what came back (the first life's executions too), then a reprocess of the
  interrupted job.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import requests

from darkroom import keys, names
from darkroom.cli.studio_client import ApiTarget, StudioClient
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.local.cloud import LocalCloud, LocalCloudConfig, state_machine_arn


def raw_digests(cloud: LocalCloud, job_id: str) -> dict[str, str]:
    s3 = cloud.client("s3")
    listed = s3.list_objects_v2(Bucket=names.RAW_BUCKET, Prefix=keys.raw_prefix(job_id))
    return {
        o["Key"]: hashlib.sha256(
            s3.get_object(Bucket=names.RAW_BUCKET, Key=o["Key"])["Body"].read()
        ).hexdigest()
        for o in listed.get("Contents", [])
    }


def done_and_processing(studio: StudioClient, workdir: Path, big: int = 6) -> tuple[str, str]:
    """A small job to DONE, then one of `big` big files left PROCESSING: their ids."""
    make_demo_shoot(workdir / "small", count=2, width=240, height=160)
    done = studio.upload(sorted((workdir / "small").iterdir()), name="kept")
    assert studio.wait(done, timeout=180, poll=0.2)["status"] == "DONE"
    # Big enough that the worker is still developing when the cloud stops.
    make_demo_shoot(workdir / "big", count=big, width=2400, height=1600)
    interrupted = studio.upload(sorted((workdir / "big").iterdir()), name="interrupted")
    deadline = time.monotonic() + 120
    while (status := studio.job(interrupted)["status"]) != "PROCESSING":
        assert time.monotonic() < deadline and status not in ("DONE", "FAILED"), status
        time.sleep(0.1)
    return done, interrupted


def first(cloud: LocalCloud, studio: StudioClient, workdir: Path) -> dict[str, Any]:
    done, interrupted = done_and_processing(studio, workdir)
    share = studio.share(done)
    return {
        "done": done,
        "executions": _executions(cloud),
        "share_url": share["url"],
        "interrupted": interrupted,
        "status_at_stop": studio.job(interrupted)["status"],
        "raw": raw_digests(cloud, done) | raw_digests(cloud, interrupted),
    }


def second(cloud: LocalCloud, studio: StudioClient, workdir: Path) -> dict[str, Any]:
    before = json.loads((workdir / "first.json").read_text())
    assert cloud.restored is not None
    downloaded = studio.download(before["done"], workdir / "download").paths
    interrupted = studio.job(before["interrupted"])
    facts = {
        "restored_objects": cloud.restored.objects,
        "interrupted_on_start": cloud.interrupted,
        "done_status": studio.job(before["done"])["status"],
        "renditions": len(downloaded),
        "share_http": requests.get(before["share_url"], timeout=30).status_code,
        "raw": raw_digests(cloud, before["done"]) | raw_digests(cloud, before["interrupted"]),
        "interrupted_status": interrupted["status"],
        "interrupted_error": interrupted.get("error"),
        "interrupted_cause": interrupted.get("cause"),
        "executions": _executions(cloud),
        "succeeded": _executions(cloud, "SUCCEEDED"),
    }
    sfn = cloud.client("stepfunctions")
    stopped = sfn.describe_execution(executionArn=interrupted["execution_arn"])
    facts["interrupted_execution"] = [stopped["status"], stopped.get("error")]
    done_arn = studio.job(before["done"])["execution_arn"]
    history = sfn.get_paginator("get_execution_history").paginate(executionArn=done_arn)
    facts["done_history"] = [e["type"] for page in history for e in page["events"]]
    studio.reprocess(before["interrupted"])
    facts["reprocessed"] = studio.wait(
        before["interrupted"],
        timeout=300,
        poll=0.2,
        # Not the restored FAILED: the reprocess's own ending.
        since_execution=interrupted["execution_arn"],
    )["status"]
    return facts


def _executions(cloud: LocalCloud, status: str | None = None) -> dict[str, str]:
    """The state machine's executions by name, as any AWS client lists them."""
    query = {"stateMachineArn": state_machine_arn(cloud.config.region)}
    if status:
        query["statusFilter"] = status
    pages = cloud.client("stepfunctions").get_paginator("list_executions").paginate(**query)
    return {e["name"]: e["status"] for page in pages for e in page["executions"]}


PHASES = {"first": first, "second": second}


def main(argv: list[str]) -> int:
    phase, state_dir, workdir, port, api_port = argv
    config = LocalCloudConfig(
        port=int(port),
        api_port=int(api_port),
        state_dir=Path(state_dir),
        persist=True,
        pool_size=1,
        worker_heartbeat_interval_seconds=1.0,
        worker_poll_seconds=0.2,
        worker_idle_shutdown_seconds=3,
    )
    with LocalCloud(config) as cloud:
        facts = PHASES[phase](cloud, StudioClient.at(ApiTarget(cloud.api_url)), Path(workdir))
    (Path(workdir) / f"{phase}.json").write_text(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
