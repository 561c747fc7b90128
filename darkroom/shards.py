"""A run split into shards: which files each shard develops, the order in which waiting
shards get a worker, a shard that failed twice, and the run's manifest built from the
file items once every shard is over.

The queue's order is pure (`priority`, `turn`); the rest takes its adapters as arguments.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from darkroom import keys, recipes
from darkroom.aws.executions import ENDED_STATUSES
from darkroom.aws.job_store import JobStore
from darkroom.aws.lease_store import Waiter
from darkroom.aws.objects import Objects
from darkroom.digests import recipe_sha256
from darkroom.errors import JobBusy
from darkroom.jobs import FileProgress, FileRecord, FileStatus, Job, JobStatus, utc_now
from darkroom.observability import logger


# -- which files a shard develops -------------------------------------------------
def shard_of(index: int, shard_size: int) -> int:
    """The shard of the file at `index` of the run's sorted file list."""
    return index // shard_size


# What an inline Map runs at once in AWS: the most shards a run develops side by side,
# however large the pool (5,000 files in shards of 200 are 25).
MAX_SHARDS_AT_ONCE = 40


def shards_at_once(shard_count: int, pool_size: int) -> int:
    """How many of a run's shards the Map runs at once: no more than the pool has
    instances, since a shard beyond that would only poll for one (each poll a Lambda
    invocation and a state transition); at least one."""
    return max(1, min(shard_count, pool_size, MAX_SHARDS_AT_ONCE))


def shard_list(file_count: int, shard_size: int) -> list[dict[str, int]]:
    """The Map's items: one per shard, at least one (a job has files)."""
    count = max(1, -(-file_count // shard_size))
    return [{"shard": shard} for shard in range(count)]


# -- the queue for workers -----------------------------------------------------------
def priority(waiter: Waiter) -> tuple[int, str, str]:
    """Every job's shard 0 before any job's shard 1, and so on; within a shard index,
    jobs in the order they were submitted. A big job's later shards thus never keep a
    job submitted after it from its first worker. Packaging (a negative shard) comes
    first: it is short, and it finishes a job."""
    return (waiter.shard, waiter.created_at, waiter.job_id)


def ahead_of(me: Waiter, waiters: Iterable[Waiter]) -> list[Waiter]:
    """The waiters that come before `me` (never `me` itself), best first."""
    mine = priority(me)
    others = (w for w in waiters if w.key != me.key and priority(w) < mine)
    return sorted(others, key=priority)


def turn(ahead: int, idle: int) -> bool:
    """Whether a waiter with `ahead` live waiters before it may take one of `idle`
    free instances: those before it take theirs first."""
    return ahead < idle


def live_ahead(
    me: Waiter,
    waiters: Sequence[Waiter],
    execution_status: Callable[[str], str] | None,
    forget: Callable[[Waiter], None],
) -> list[Waiter]:
    """The waiters before `me` whose executions still run; those of ended executions
    (aborted, timed out: their StartWorker will never come back) are forgotten."""
    live = []
    for waiter in ahead_of(me, waiters):
        if execution_status is not None and execution_status(waiter.execution_arn) in (
            ENDED_STATUSES
        ):
            forget(waiter)
            continue
        live.append(waiter)
    return live


# -- a shard that failed twice ---------------------------------------------------------
def fail_shard(
    job_id: str, execution_arn: str, shard: int, why: str, *, jobs: JobStore
) -> dict[str, Any]:
    """Mark FAILED, and count on the job, this run's files of `shard` still pending;
    the other shards' files are left to their workers. Idempotent: a repeat finds
    nothing pending."""
    _ensure_processing(job_id, execution_arn, jobs)
    run = keys.run_id(execution_arn)
    error = f"shard {shard}: worker lost twice: {why}"
    failed = 0
    for record in jobs.shard_files(job_id, run, shard):
        if record.status is not FileStatus.PENDING:
            continue
        progress = FileProgress(status=FileStatus.FAILED, error_code="shard_failed", error=error)
        if jobs.record_file(job_id, execution_arn, record.name, progress):
            failed += 1
    logger.warning("shard failed", extra={"job_id": job_id, "shard": shard, "files": failed})
    return {"shard": shard, "files_failed": failed}


def _ensure_processing(job_id: str, execution_arn: str, jobs: JobStore) -> Job:
    """A shard may fail before any worker got as far as PROCESSING; counting files
    needs the job there, by its legal steps."""
    job = jobs.get(job_id)
    if job.status is JobStatus.REGISTERED:
        job = jobs.transition(job_id, execution_arn, JobStatus.STARTING)
    if job.status is JobStatus.STARTING:
        job = jobs.transition(
            job_id, execution_arn, JobStatus.PROCESSING, set_fields={"started_at": utc_now()}
        )
    if job.status is not JobStatus.PROCESSING:
        raise JobBusy(f"job {job_id} is {job.status}; its shards are over")
    return job


# -- the run's manifest --------------------------------------------------------------
# Readers tell what a manifest can hold by it (none: version 1). Version 2 added each
# file's lineage (the original's version and SHA-256, the recipe's digest, the
# software, timings) and each rendition's SHA-256.
MANIFEST_VERSION = 2
# A file's lineage, as its item holds it: written to its entry only when recorded.
_LINEAGE = (
    "original_version",
    "original_sha256",
    "sidecar",
    "sidecar_version",
    "recipe_sha256",
    "software",
    "timings",
)


def manifest_entry(record: FileRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": record.name,
        "status": str(record.status),
        "shard": record.shard,
        "develop_seconds": round(record.develop_seconds or 0.0, 3),
    }
    entry.update({f: getattr(record, f) for f in _LINEAGE if getattr(record, f)})
    if record.outputs:
        entry["outputs"] = {
            rendition: output.model_dump(mode="json", exclude_none=True)
            for rendition, output in record.outputs.items()
        }
    if record.notes:
        entry["notes"] = dict(record.notes)
    if record.error:
        entry["error_code"] = record.error_code
        entry["error"] = record.error
    return entry


def write_manifest(
    job: Job,
    execution_arn: str,
    records: Iterable[FileRecord],
    *,
    objects: Objects,
    bucket: str,
    summary: Mapping[str, Any],
) -> str:
    """The run's manifest from the job's file items (`records`, read as they come, a
    page at a time) through a scratch file: memory stays flat whatever the number of
    files."""
    run = keys.run_id(execution_arn)
    key = keys.run_manifest_key(job.job_id, run)
    resolved = recipes.resolved(job.recipe)
    head = {
        **summary,
        "manifest_version": MANIFEST_VERSION,
        "execution_arn": execution_arn,
        "name": job.name,
        # As the job named it, and with every default: each file's recipe_sha256 is the
        # digest of the resolved one its worker developed with.
        "recipe": job.recipe,
        "recipe_resolved": resolved,
        "recipe_sha256": recipe_sha256(resolved),
        "started_at": job.started_at,
        "finished_at": utc_now(),
    }
    with tempfile.TemporaryDirectory(prefix="manifest-") as scratch:
        path = Path(scratch) / "manifest.json"
        with path.open("w", encoding="utf-8") as out:
            out.write(json.dumps(head, sort_keys=True)[:-1] + ', "files": [')
            first = True
            for record in records:
                if record.run_id != run:
                    continue
                out.write(("\n" if first else ",\n") + json.dumps(manifest_entry(record)))
                first = False
            out.write("\n]}\n")
        objects.upload(path, bucket, key, "application/json")
    return key
