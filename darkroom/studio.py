"""What a studio does with a deployment: upload a shoot, watch it, reprocess, download.

Shared by the `darkroom` CLI and the integration tests; works against AWS (names from
the stack's outputs) or the embedded local cloud (its fixed names) alike.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from darkroom import keys, names, pipeline
from darkroom.aws.executions import Executions
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.jobs import Job
from darkroom.recipes import parse_recipe

RAW_EXTENSIONS = frozenset(
    [
        ".dng",
        ".cr2",
        ".cr3",
        ".crw",
        ".nef",
        ".nrw",
        ".arw",
        ".srf",
        ".sr2",
        ".raf",
        ".orf",
        ".rw2",
        ".pef",
        ".srw",
        ".kdc",
        ".dcr",
        ".mrw",
        ".3fr",
        ".fff",
        ".iiq",
        ".rwl",
        ".x3f",
        ".erf",
        ".mef",
        ".mos",
        ".gpr",
    ]
)


@dataclass(frozen=True)
class Target:
    """Where a deployment lives and what its resources are called."""

    session: boto3.session.Session
    endpoint_url: str | None
    raw_bucket: str
    processed_bucket: str
    jobs_table: str
    state_machine_arn: str

    @classmethod
    def local(cls, endpoint_url: str, region: str = "us-east-1") -> Target:
        from darkroom.local.cloud import state_machine_arn

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

    @classmethod
    def from_stack(
        cls, stack: str, profile: str | None = None, region: str | None = None
    ) -> Target:
        session = boto3.session.Session(profile_name=profile, region_name=region)
        outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in session.client("cloudformation")
            .describe_stacks(StackName=stack)["Stacks"][0]
            .get("Outputs", [])
        }
        try:
            return cls(
                session,
                None,
                outputs[names.Output.RAW_BUCKET],
                outputs[names.Output.PROCESSED_BUCKET],
                outputs[names.Output.JOBS_TABLE],
                outputs[names.Output.STATE_MACHINE_ARN],
            )
        except KeyError as exc:
            raise RuntimeError(
                f"stack {stack} has no output {exc}; is it a darkroom stack?"
            ) from exc

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]


def new_job_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def raw_files(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in RAW_EXTENSIONS
    )


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
        on_file: Callable[[Path], None] | None = None,
    ) -> str:
        """Upload every file, then the manifest: writing the manifest submits the job."""
        job_id = keys.validate_job_id(job_id or new_job_id())
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
            if on_file:
                on_file(path)
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

    def job(self, job_id: str) -> Job:
        return self.jobs.get(job_id)

    def current_state(self, execution_arn: str) -> str | None:
        """The state the execution is in (or last entered), from its history."""
        for event in reversed(self.executions.history(execution_arn)):
            details = event.get("stateEnteredEventDetails")
            if details:
                return str(details["name"])
        return None

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
            if job is not None and job.is_terminal and job.execution_arn != since_execution:
                return job
            if time.monotonic() > deadline:
                status = job.status if job else "not registered"
                raise TimeoutError(f"job {job_id} still {status} after {timeout:.0f}s")
            time.sleep(poll)

    def reprocess(self, job_id: str, recipe: Mapping[str, Any] | None = None) -> str:
        return pipeline.reprocess(job_id, self.executions, self.jobs, recipe)

    def manifest(self, job_id: str) -> dict[str, Any]:
        document = self.objects.get_json(
            self.target.processed_bucket, keys.processed_manifest_key(job_id)
        )
        assert isinstance(document, dict)
        return document

    def download(
        self, job_id: str, dest: Path, on_file: Callable[[Path], None] | None = None
    ) -> list[Path]:
        """Every rendition the job's manifest lists, as dest/<rendition>/<file>."""
        job = self.jobs.get(job_id)
        if not job.is_terminal or (job.status == "FAILED" and not job.manifest_key):
            raise RuntimeError(f"job {job_id} is {job.status}: nothing to download yet")
        paths = []
        for entry in self.manifest(job_id).get("files", []):
            for rendition, meta in entry.get("outputs", {}).items():
                path = dest / rendition / Path(meta["key"]).name
                self.objects.download(self.target.processed_bucket, meta["key"], path)
                paths.append(path)
                if on_file:
                    on_file(path)
        (dest / "manifest.json").write_bytes(
            self.target.client("s3")
            .get_object(
                Bucket=self.target.processed_bucket, Key=keys.processed_manifest_key(job_id)
            )["Body"]
            .read()
        )
        return paths
