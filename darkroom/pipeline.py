"""The RAW pipeline's steps: what each task Lambda does, minus the Lambda.

(Over 400 lines: every step of the state machine, so its contract reads in one place.)

Each function takes its adapters as arguments, so it runs the same against AWS, the
embedded local cloud, or test doubles.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from darkroom import delivery, formats, keys, shards, sidecars
from darkroom.aws.executions import ENDED_STATUSES, Executions
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.errors import (
    AllFilesFailed,
    InvalidJob,
    JobBusy,
    JobNotFound,
    StaleExecution,
)
from darkroom.jobs import (
    MAX_CAUSE_CHARS,
    Archive,
    DeliveryPolicy,
    Job,
    JobStatus,
    RunSelection,
    finished_status,
    stable_error_name,
    utc_now,
)
from darkroom.observability import logger
from darkroom.recipes import RecipeError, parse_recipe
from darkroom.s3_events import object_changes


# -- execution names --------------------------------------------------------------
def execution_name(job_id: str) -> str:
    """The first execution of a job is named after it, so a repeated event cannot start twice."""
    return keys.validate_job_id(job_id)


def reprocess_execution_name(job_id: str, when: datetime | None = None) -> str:
    """`<job_id>.rp-<UTC stamp to the millisecond>`. A job id has no ".", so this is never
    another job's first execution name, whatever id a client chooses."""
    stamp = (when or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%f")[:-3]
    return f"{keys.validate_job_id(job_id)}.rp-{stamp}"


# -- orchestrator -----------------------------------------------------------------
@dataclass(frozen=True)
class Started:
    job_id: str
    execution_arn: str
    started_now: bool


def manifest_job_ids(event: Mapping[str, Any], raw_bucket: str) -> list[str]:
    """Job ids of the submission manifests an S3 event carries (other keys are ignored)."""
    job_ids: list[str] = []
    for change in object_changes(event):
        if not change.created or change.bucket != raw_bucket:
            continue
        job_id = keys.job_id_from_manifest_key(change.key)
        if job_id and job_id not in job_ids:
            job_ids.append(job_id)
    return job_ids


def start_jobs(job_ids: Iterable[str], executions: Executions) -> list[Started]:
    started = []
    for job_id in job_ids:
        # The input is derived from the job id alone: a redelivered event then matches
        # the running execution exactly, which Step Functions treats as the same start.
        arn, now = executions.start(execution_name(job_id), {"job_id": job_id})
        logger.info("job execution", extra={"job_id": job_id, "execution": arn, "new": now})
        started.append(Started(job_id, arn, now))
    return started


# How long a claim may name an execution Step Functions does not know: the API function
# that claimed starts it within its own timeout (29 s) or never will.
CLAIM_GRACE_SECONDS = 60


def reprocess(
    job_id: str,
    executions: Executions,
    jobs: JobStore,
    recipe: Mapping[str, Any] | None = None,
    *,
    now: float | None = None,
    files: Sequence[str] | None = None,
    selection: str = "names",
) -> str:
    """Start a new execution for a finished job, as an operator would in the console.

    `files`: develop only these (checked by the caller to be the job's); the others keep
    what they deliver. `selection` says how they were chosen ("favourites" or "names"),
    which the run records.

    The job is claimed for that execution first, with one conditional write: of two
    concurrent calls one starts an execution and the other is JobBusy, rather than both
    starting one and the second failing at RegisterJob with its recipe dropped.

    A job whose execution ended without finishing it (aborted in the console, or timed
    out: no Catch runs then) is first marked FAILED, so it can be run again.
    """
    now = time.time() if now is None else now
    payload: dict[str, Any] = {"job_id": job_id, "reprocess": True}
    if recipe is not None:
        payload["recipe"] = parse_recipe(recipe).model_dump(mode="json")
    if files is not None:
        payload["files"] = sorted(set(files))
        payload["selection"] = selection
    job = jobs.get(job_id)
    if not job.is_terminal:
        ended = executions.status(job.execution_arn) if job.execution_arn else "RUNNING"
        if ended not in ENDED_STATUSES:
            raise JobBusy(f"job {job_id} is {job.status}; reprocess it once it has finished")
        try:
            fail_ended(job_id, str(job.execution_arn), ended, jobs)
        except StaleExecution:
            # Another reprocess got there first; its execution now owns the job.
            raise JobBusy(f"job {job_id} is being reprocessed already") from None
    name = reprocess_execution_name(job_id)
    arn = executions.arn_for(name)
    jobs.claim(job_id, arn, now=now, replacing=_dead_claim(job, executions, now))
    try:
        started, _ = executions.start(name, payload)
    except Exception:
        jobs.release_claim(job_id, arn)
        raise
    return started


def _dead_claim(job: Job, executions: Executions, now: float) -> str | None:
    """The job's claim if its execution will never register the job (it ended first, or
    was never started), so that a new claim may replace it; JobBusy if it still may."""
    if job.claimed_by is None:
        return None
    status = executions.status(job.claimed_by)
    starting = status == "MISSING" and now - (job.claimed_at or 0) < CLAIM_GRACE_SECONDS
    if starting or status not in ENDED_STATUSES:
        name = job.claimed_by.rsplit(":", 1)[-1]
        raise JobBusy(f"job {job.job_id} is being reprocessed already (execution {name})")
    logger.warning(
        "claim of an execution that never registered replaced",
        extra={"job_id": job.job_id, "execution": job.claimed_by, "status": status},
    )
    return job.claimed_by


def fail_ended(
    job_id: str,
    execution_arn: str,
    status: str,
    jobs: JobStore,
    *,
    error: str | None = None,
    cause: str | None = None,
) -> Job:
    """Mark FAILED (`ExecutionEnded`) a job whose execution ended without finishing it:
    stopped, timed out, or failed where no Catch runs. The one way a job is failed for
    its execution's ending, whoever notices (the ending reconciler, a reprocess).

    Conditional on that execution still owning the job; StaleExecution otherwise.
    """
    why = f"execution {execution_arn.rsplit(':', 1)[-1]} ended {status} before the job finished"
    told = ": ".join(part for part in (error, cause) if part)
    if told:
        why += f" ({told})"
    job = jobs.transition(
        job_id,
        execution_arn,
        JobStatus.FAILED,
        set_fields={"error": "ExecutionEnded", "cause": why, "finished_at": utc_now()},
    )
    logger.warning("stranded job marked failed", extra={"job_id": job_id, "why": why})
    return job


# -- RegisterJob ------------------------------------------------------------------
def register_job(
    execution_input: Mapping[str, Any],
    execution_arn: str,
    *,
    raw_bucket: str,
    jobs: JobStore,
    objects: Objects,
    heartbeat_seconds: int,
    timeout_seconds: int,
    shard_size: int = 200,
    pool_size: int = 1,
) -> dict[str, Any]:
    job_id = execution_input.get("job_id")
    if not isinstance(job_id, str):
        raise InvalidJob('execution input needs "job_id" (a string)')
    try:
        keys.validate_job_id(job_id)
    except ValueError as exc:
        raise InvalidJob(str(exc)) from exc

    manifest = _read_manifest(objects, raw_bucket, job_id)
    present = {
        name: obj
        for obj in objects.latest_versions(raw_bucket, keys.raw_prefix(job_id))
        if (name := keys.file_name_from_raw_key(job_id, obj["Key"])) is not None
    }
    declared = manifest.get("files")
    if declared:
        names = [f["name"] if isinstance(f, Mapping) else str(f) for f in declared]
        missing = sorted(set(names) - set(present))
        if missing:
            raise InvalidJob(f"job {job_id}: declared files not uploaded: {', '.join(missing)}")
        listed = names
    else:
        listed = list(present)
    # An XMP sidecar is not a file of the job: it changes how its RAW develops.
    paired, unpaired = sidecars.pair(listed, formats.is_raw)
    if unpaired:
        logger.warning("sidecars with no RAW of their name", extra={"sidecars": unpaired[:20]})
    files = sorted(name for name in listed if not sidecars.is_sidecar(name))
    if not files:
        raise InvalidJob(
            f"job {job_id} has no files under s3://{raw_bucket}/{keys.raw_prefix(job_id)}"
        )
    numbers = {name: seq for seq, name in enumerate(files, start=1)}
    files, selection = _run_files(job_id, files, execution_input)

    recipe_source = execution_input.get("recipe") or manifest.get("recipe")
    existing = jobs.find(job_id)
    if recipe_source is None and existing is not None:
        recipe_source = existing.recipe
    try:
        recipe = parse_recipe(recipe_source)
    except RecipeError as exc:
        raise InvalidJob(f"job {job_id}: {exc}") from exc

    policy = _delivery_policy(job_id, manifest.get("delivery"), existing)

    if existing is not None and execution_arn not in (existing.execution_arn, existing.claimed_by):
        # Started by hand (the console, {"job_id": ...}): claimed as the API's reprocess
        # claims, so a job that runs or is being reprocessed refuses it the same way.
        jobs.claim(job_id, execution_arn, now=time.time())
    run_files = set(files)
    shard_list = shards.shard_list(len(files), shard_size)
    job = jobs.register(
        job_id=job_id,
        execution_arn=execution_arn,
        files=files,
        name=manifest.get("name") or (existing.name if existing else None),
        recipe=recipe.model_dump(mode="json"),
        created_at=_timestamp(manifest.get("created_at")),
        versions={name: present[name].get("VersionId") for name in files},
        shards={name: shards.shard_of(i, shard_size) for i, name in enumerate(files)},
        packaged_by_shard=len(shard_list) == 1,
        delivery_policy=policy.model_dump(mode="json") if policy else None,
        sidecars={
            name: (sidecar, present[sidecar].get("VersionId"))
            for name, sidecar in paired.items()
            if name in run_files
        },
        numbers=numbers if selection is not None else None,
        selection=selection,
    )
    logger.info(
        "job registered", extra={"job_id": job_id, "files": len(files), "attempt": job.attempt}
    )
    return {
        "job_id": job_id,
        "file_count": len(files),
        "heartbeat_seconds": heartbeat_seconds,
        "timeout_seconds": timeout_seconds,
        "shards": shard_list,
        "shards_at_once": shards.shards_at_once(len(shard_list), pool_size),
        # The state machine skips the packager: the only shard's worker packages.
        "packaged_by_shard": len(shard_list) == 1,
    }


def _run_files(
    job_id: str, files: list[str], execution_input: Mapping[str, Any]
) -> tuple[list[str], RunSelection | None]:
    """The files this run develops: all of them, or the subset the execution names (a
    reprocess of favourites or of names), each of which must be one of the job's."""
    asked = execution_input.get("files")
    if asked is None:
        return files, None
    if not isinstance(asked, list) or not asked or not all(isinstance(n, str) for n in asked):
        raise InvalidJob(f'job {job_id}: "files" must be a non-empty list of file names')
    known = set(files)
    unknown = sorted(set(asked) - known)
    if unknown:
        raise InvalidJob(f"job {job_id}: not files of the job: {', '.join(unknown[:10])}")
    kind = execution_input.get("selection", "names")
    if kind not in ("favourites", "names"):
        raise InvalidJob(f'job {job_id}: "selection" must be "favourites" or "names"')
    chosen = sorted(set(asked))
    return chosen, RunSelection(kind=kind, files=len(chosen))


def _delivery_policy(job_id: str, source: Any, existing: Job | None) -> DeliveryPolicy | None:
    """Who the job is delivered to, as its creation declared it (the manifest's
    "delivery"); a reprocess keeps the job's."""
    if source is None:
        return existing.delivery_policy if existing else None
    try:
        return DeliveryPolicy.model_validate(source)
    except ValueError as exc:
        raise InvalidJob(f'job {job_id}: manifest.json has a bad "delivery": {exc}') from exc


def _timestamp(value: Any) -> str | None:
    """A moment as utc_now() writes it, or None: a hand-written manifest may hold anything,
    and a job's created_at orders the listing."""
    if not isinstance(value, str) or not value.endswith("Z"):
        return None
    try:
        datetime.fromisoformat(value[:-1])
    except ValueError:
        return None
    return value


def _read_manifest(objects: Objects, bucket: str, job_id: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        document = objects.get_json(bucket, keys.raw_manifest_key(job_id))
    except ClientError:
        return {}  # a hand-started execution may have no manifest; the listing decides
    except ValueError as exc:
        raise InvalidJob(f"job {job_id}: manifest.json is not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise InvalidJob(f"job {job_id}: manifest.json must be a JSON object")
    return document


# -- MarkDone / MarkFailed --------------------------------------------------------
def mark_done(
    job_id: str,
    execution_arn: str,
    package: Mapping[str, Any] | None,
    *,
    jobs: JobStore,
    objects: Objects,
    processed_bucket: str,
) -> dict[str, Any]:
    """Every shard is over: one pass over the file items writes the run's manifest and
    tallies what the run delivers; one write of the job then delivers it (the job's
    `delivered` names the run, with the packaging's ZIPs if packaging succeeded) as it
    takes its terminal status; superseded renditions go after. A run that developed no
    file at all fails AllFilesFailed instead.

    Idempotent: a retry, before or after the job's write, tallies the same delivery (a
    file resolves to what the run delivers either way) and finds nothing left to delete.
    Nothing is deleted before the job delivers the run, so a failure midway leaves every
    file delivering what it did."""
    job = jobs.get(job_id)
    status = finished_status(job.files_done, job.files_failed)
    if job.execution_arn != execution_arn:
        raise StaleExecution(
            f"job {job_id} now belongs to {job.execution_arn}, not {execution_arn}"
        )
    if job.status not in (JobStatus.PROCESSING, status):
        raise JobBusy(f"job {job_id} cannot go from {job.status} to {status}")
    run = keys.run_id(execution_arn)
    # The run finished when its shards were over; MarkDone's own pass is not the run's.
    now = utc_now()
    tally = delivery.Tally(job_id, run)
    manifest_key = _write_manifest(job, execution_arn, tally, jobs, objects, processed_bucket)
    if job.files_done == 0:
        raise AllFilesFailed(
            f"none of the {job.files_total} files developed; "
            f"see s3://{processed_bucket}/{manifest_key}"
        )
    delivered = tally.delivered(manifest_key, now, _archives(job_id, run, package, jobs))
    job = jobs.transition(
        job_id,
        execution_arn,
        status,
        set_fields={
            "finished_at": now,
            "manifest_key": manifest_key,
            "delivered": delivered.model_dump(mode="json", exclude_none=True),
        },
    )
    delivery.delete_superseded(
        objects, processed_bucket, job_id, run, tally.keep, archives=delivered.archives.values()
    )
    return {
        "job_id": job_id,
        "run_id": run,
        "status": str(job.status),
        "files_total": job.files_total,
        "files_done": job.files_done,
        "files_failed": job.files_failed,
        "files_delivered": delivered.files_delivered,
        "manifest_key": job.manifest_key,
        "archives": sorted(delivered.archives),
    }


def _write_manifest(
    job: Job,
    execution_arn: str,
    tally: delivery.Tally,
    jobs: JobStore,
    objects: Objects,
    bucket: str,
) -> str:
    """The run's manifest, with `tally` counting the same read of the file items."""
    run = keys.run_id(execution_arn)
    summary = {
        "job_id": job.job_id,
        "run_id": run,
        "files_total": job.files_total,
        "files_done": job.files_done,
        "files_failed": job.files_failed,
        "manifest_key": keys.run_manifest_key(job.job_id, run),
    }
    if job.selection is not None:
        # A run of some files: the manifest still lists every file, each with what it
        # delivers, and says which the run developed.
        summary["selection"] = job.selection.model_dump(mode="json")
    records = tally.count(jobs.files(job.job_id, delivered=job.delivered))
    return shards.write_manifest(
        job, execution_arn, records, objects=objects, bucket=bucket, summary=summary
    )


def _archives(
    job_id: str, run: str, package: Mapping[str, Any] | None, jobs: JobStore
) -> dict[str, Archive] | None:
    """The packaging's ZIPs: the packager's output, or {"shard": n} when the run's only
    shard's worker packaged it and recorded them on its shard item. None when packaging
    failed (the packager's Catch put an "error" there, or the shard recorded none): the
    run is delivered without them rather than not at all."""
    if package and "shard" in package:
        shard = jobs.shard(job_id, run, int(package["shard"]))
        if shard is not None and shard.archives is not None:
            return dict(shard.archives)
        package = {"error": f"shard {package['shard']} recorded no archives"}
    if not package or "error" in package:
        if package:
            logger.warning(
                "run delivered without archives", extra={"job_id": job_id, "why": package["error"]}
            )
        return None
    archives = package.get("archives") or {}
    return {rendition: Archive.model_validate(a) for rendition, a in archives.items()}


def mark_failed(
    job_id: str | None, execution_arn: str, error: Mapping[str, Any] | None, *, jobs: JobStore
) -> dict[str, str]:
    """Record the failure on the job (if this execution owns it) and name it stably.

    Returns {"Error", "Cause"}, the same shape as a Catch's output, for the Fail state.
    What is delivered stays as it was: a failed run switches nothing.
    """
    raw_error = str((error or {}).get("Error") or "")
    cause = _readable_cause(str((error or {}).get("Cause") or "the job failed without a cause"))
    cause = cause[:MAX_CAUSE_CHARS]
    name = stable_error_name(raw_error)
    if name == "WorkerTimedOut":
        cause = f"no heartbeat or result from the worker in time ({raw_error}): {cause}"
    if job_id:
        try:
            jobs.transition(
                job_id,
                execution_arn,
                JobStatus.FAILED,
                set_fields={"error": name, "cause": cause, "finished_at": utc_now()},
            )
        except (JobNotFound, StaleExecution) as exc:
            # Another execution owns the job (or it never existed): leave it alone.
            logger.info("failure not recorded on job", extra={"job_id": job_id, "why": str(exc)})
    return {"Error": name, "Cause": cause}


def fail_shard(
    job_id: str | None,
    execution_arn: str,
    shard: int,
    error: Mapping[str, Any] | None,
    *,
    jobs: JobStore,
) -> dict[str, Any]:
    """A shard's worker was lost twice: its pending files fail, the job goes on."""
    if not job_id:
        raise InvalidJob('execution input needs "job_id" (a string)')
    name = stable_error_name(str((error or {}).get("Error") or ""))
    cause = _readable_cause(str((error or {}).get("Cause") or "no cause given"))
    return shards.fail_shard(job_id, execution_arn, shard, f"{name}: {cause}", jobs=jobs)


def _readable_cause(cause: str) -> str:
    """A Lambda error's Cause is its whole error document; people need the message."""
    try:
        document = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(document, dict) and isinstance(document.get("errorMessage"), str):
        return document["errorMessage"]
    return cause
