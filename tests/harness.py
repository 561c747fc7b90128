"""Direct AWS access to a running local cloud, for tests and benchmarks.

`Studio` submits a job the way the API does underneath (the files, then the manifest
that starts the pipeline, straight into the raw bucket) and reads what the pipeline
leaves behind: the job record, its executions, the processed manifest and renditions.
It skips the API's validation on purpose: tests use it to reach states the API refuses
and to watch the pipeline itself. The product's one way in is the API
(darkroom.cli.studio_client).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3
import requests

from darkroom import keys, names, pipeline
from darkroom.aws.executions import Executions
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.jobs import Job
from darkroom.local.cloud import LocalCloud, state_machine_arn
from darkroom.recipes import parse_recipe


@dataclass(frozen=True)
class Target:
    """Where a local cloud is and what its resources are called."""

    session: boto3.session.Session
    endpoint_url: str
    raw_bucket: str
    processed_bucket: str
    jobs_table: str
    state_machine_arn: str

    @classmethod
    def local(cls, endpoint_url: str, region: str = "us-east-1") -> Target:
        session = boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=region
        )
        return cls(
            session,
            endpoint_url,
            names.RAW_BUCKET,
            names.PROCESSED_BUCKET,
            names.JOBS_TABLE,
            state_machine_arn(region),
        )

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]


class Studio:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.objects = Objects(target.client("s3"))
        self.jobs = JobStore(target.jobs_table, target.client("dynamodb"))
        self.executions = Executions(target.state_machine_arn, target.client("stepfunctions"))

    def upload(
        self,
        files: Iterable[Path],
        *,
        job_id: str | None = None,
        name: str | None = None,
        recipe: Mapping[str, Any] | None = None,
    ) -> str:
        """Upload every file, then the manifest: writing the manifest submits the job."""
        job_id = keys.validate_job_id(job_id or keys.new_job_id())
        files = list(files)
        if not files:
            raise ValueError("no RAW files to upload")
        checked_recipe = parse_recipe(recipe).model_dump(mode="json") if recipe else None
        for path in files:
            self.objects.upload(
                path,
                self.target.raw_bucket,
                keys.raw_key(job_id, path.name),
                "application/octet-stream",
            )
        manifest: dict[str, Any] = {
            "job_id": job_id,
            "name": name or job_id,
            "files": [{"name": p.name, "size": p.stat().st_size} for p in files],
            "submitted_at": datetime.now(UTC).isoformat(),
        }
        if checked_recipe:
            manifest["recipe"] = checked_recipe
        self.objects.put_json(self.target.raw_bucket, keys.raw_manifest_key(job_id), manifest)
        return job_id

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        poll: float = 0.5,
        on_update: Callable[[Job | None], None] | None = None,
        since_execution: str | None = None,
    ) -> Job:
        """Poll until the job is terminal under an execution other than `since_execution`."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.jobs.find(job_id)
            if on_update:
                on_update(job)
            if (
                job is not None
                and job.is_terminal
                and job.execution_arn != since_execution
                and not self._execution_running(job.execution_arn)
            ):
                return job
            if time.monotonic() > deadline:
                status = job.status if job else "not registered"
                raise TimeoutError(f"job {job_id} still {status} after {timeout:.0f}s")
            time.sleep(poll)

    def _execution_running(self, execution_arn: str | None) -> bool:
        # MarkDone writes the terminal status a moment before its execution ends; the job
        # is finished only when the workflow is (the console would still show it running).
        if not execution_arn:
            return False
        return self.executions.status(execution_arn) == "RUNNING"

    def reprocess(self, job_id: str, recipe: Mapping[str, Any] | None = None) -> str:
        return pipeline.reprocess(job_id, self.executions, self.jobs, recipe)

    def manifest(self, job_id: str) -> dict[str, Any]:
        """The manifest of the job's current run."""
        job = self.jobs.get(job_id)
        key = job.manifest_key or keys.run_manifest_key(job_id, job.run_id or "")
        document = self.objects.get_json(self.target.processed_bucket, key)
        assert isinstance(document, dict)
        return document

    def download(self, job_id: str, dest: Path) -> list[Path]:
        """Every delivered rendition of the job, as dest/<rendition>/<file>."""
        paths = []
        for record in self.jobs.files(job_id):
            for rendition, output in record.delivered.items():
                path = dest / rendition / Path(output.key).name
                self.objects.download(self.target.processed_bucket, output.key, path)
                paths.append(path)
        if not paths:
            raise RuntimeError(f"job {job_id}: nothing delivered to download")
        return paths


def leases_of(cloud: LocalCloud) -> list[dict[str, Any]]:
    """Each pool instance's lease, in the pool's order; a never-used instance has no
    row, which is idle too."""
    leases = []
    for instance in cloud.instance_ids:
        item = (
            cloud.client("dynamodb")
            .get_item(
                TableName=names.WORKERS_TABLE,
                Key={"instance_id": {"S": instance}},
                ConsistentRead=True,
            )
            .get("Item", {"instance_id": {"S": instance}, "state": {"S": "IDLE"}})
        )
        leases.append({k: next(iter(v.values())) for k, v in item.items()})
    return leases


def lease_of(cloud: LocalCloud) -> dict[str, Any]:
    """The pool's one lease in use (the first, if several are), else the first idle one:
    its state is "IDLE" only when the whole pool is idle."""
    leases = leases_of(cloud)
    return next((lease for lease in leases if lease["state"] != "IDLE"), leases[0])


T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], timeout: float, poll: float = 0.2) -> T:
    """The predicate's first truthy value, asked every `poll` seconds for `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(poll)
    raise AssertionError(f"condition not met within {timeout}s")


def finished_job(api: str, workdir: Path, count: int = 2, *, name: str = "Private shoot") -> str:
    """A job of `count` demo frames created and uploaded through the API (its presigned
    PUTs), submitted and developed to DONE by the local worker: its id."""
    files = make_demo_shoot(workdir / "shoot", count=count, width=600, height=400)
    created = requests.post(
        f"{api}/jobs",
        json={"name": name, "files": [{"name": p.name, "size": p.stat().st_size} for p in files]},
        timeout=30,
    ).json()
    for upload, path in zip(created["uploads"], files, strict=True):
        with path.open("rb") as body:
            assert requests.put(upload["url"], data=body, timeout=60).status_code == 200
    job_id = str(created["job_id"])
    assert requests.post(f"{api}/jobs/{job_id}/submit", timeout=30).status_code == 202

    def done() -> bool:
        return bool(requests.get(f"{api}/jobs/{job_id}", timeout=30).json()["status"] == "DONE")

    wait_for(done, timeout=240, poll=0.5)
    return job_id


def share_link(api: str, job_id: str, **options: Any) -> str:
    """A new share of the job (`options` as the route takes them): its link."""
    share = requests.post(f"{api}/jobs/{job_id}/shares", json=options, timeout=30)
    assert share.status_code == 201, share.text
    return str(share.json()["url"])
