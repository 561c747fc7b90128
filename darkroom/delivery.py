"""What the client is delivered: switched per file when a run finishes, with the run's
"download all" ZIPs, and the renditions and ZIPs nothing delivers any more deleted after
the switch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from darkroom import keys
from darkroom.aws.objects import Objects
from darkroom.jobs import Archive, DeliveredRun, FileRecord, FileStatus, Output
from darkroom.observability import logger

if TYPE_CHECKING:  # the store resolves what it reads with this module
    from darkroom.aws.job_store import JobStore

# One conditional UpdateItem per file: a 5,000-file run switched one at a time takes
# about 40 s of round trips; 16 at once keeps it to a few seconds (boto3 clients are
# thread-safe, and a file item takes 1 WCU whatever the order).
SWITCH_THREADS = 16


def deliver_run(
    job_id: str,
    run: str,
    manifest_key: str,
    finished_at: str,
    *,
    jobs: JobStore,
    objects: Objects,
    bucket: str,
    archives: Mapping[str, Archive] | None = None,
) -> DeliveredRun:
    """Each file `run` developed is delivered from it; files it did not develop (failed
    in it, or not covered by it) keep what they had. Then what that superseded goes.

    `archives` are the run's ZIPs of what is delivered now (rendition -> ZIP; none when
    packaging failed): recorded on the delivered run. Earlier runs' ZIPs go with the
    rest of what is superseded, as they no longer match what is delivered.

    Idempotent: a file already switched is not switched again, and the deletion is
    worked out afresh from what is delivered."""
    records = []
    switches = []
    for record in jobs.files(job_id):
        if delivers_from(record, run):
            if record.delivered_run != run:
                switches.append(record)
            record = record.model_copy(update={"delivered_run": run, "delivered": record.outputs})
        records.append(record)
    if switches:
        with ThreadPoolExecutor(min(SWITCH_THREADS, len(switches))) as pool:
            # list(): the first failed switch raises here, and the retry redoes the rest.
            list(pool.map(lambda r: jobs.deliver_file(job_id, run, r.name, r.outputs), switches))
    archives = dict(archives or {})
    delete_superseded(objects, bucket, job_id, run, records, archives=archives.values())
    return DeliveredRun(
        run_id=run,
        finished_at=finished_at,
        manifest_key=manifest_key,
        files_delivered=sum(1 for r in records if r.delivered),
        archives=archives,
    )


def delivers_from(record: FileRecord, run: str) -> bool:
    """Whether the file switches to `run`'s renditions when `run` is marked done: its
    current attempt is that run's and developed."""
    return record.run_id == run and record.status is FileStatus.DONE


def delivered_after(record: FileRecord, run: str) -> Mapping[str, Output]:
    """What the file delivers once `run` is marked done: this run's renditions if it
    developed the file, else what the file delivers now (maybe nothing)."""
    return record.outputs if delivers_from(record, run) else record.delivered


def resolved(record: FileRecord, pointer: DeliveredRun | None) -> FileRecord:
    """The file as the client is delivered it, given the job's delivered run: that run's
    renditions if its attempt is the current one and developed the file. Otherwise what
    the item stores, which registration keeps right: only it replaces a file's attempt,
    and it copies the delivered renditions into the item as it does."""
    if pointer is None or not delivers_from(record, pointer.run_id):
        return record
    return record.model_copy(
        update={
            "delivered_run": record.run_id,
            "delivered": record.outputs,
            "delivered_at": pointer.finished_at,
        }
    )


def delete_superseded(
    objects: Objects,
    bucket: str,
    job_id: str,
    run: str,
    records: Iterable[FileRecord],
    *,
    archives: Iterable[Archive] = (),
) -> None:
    """Delete what no file delivers any more: renditions switched away from, failed
    runs' leftovers, manifests of runs that deliver nothing, earlier runs' ZIPs (only
    `run`'s, `archives`, match what is delivered). Best effort: what stays is only
    storage, and the next finished run tries again."""
    keep = {o.key for r in records for o in r.delivered.values()}
    keep |= {a.key for a in archives}
    keep |= {keys.run_manifest_key(job_id, r.delivered_run) for r in records if r.delivered_run}
    own = keys.run_prefix(job_id, run)
    try:
        stale = [
            key
            for obj in objects.list(bucket, keys.processed_prefix(job_id))
            if (key := obj["Key"]) not in keep and not key.startswith(own)
        ]
        failed = objects.delete_many(bucket, stale)
    except Exception:
        logger.exception("superseded renditions not deleted", extra={"job_id": job_id})
        return
    if failed:
        logger.warning(
            "some superseded renditions not deleted",
            extra={"job_id": job_id, "keys": list(failed[:20]), "count": len(failed)},
        )
    logger.info(
        "superseded renditions deleted", extra={"job_id": job_id, "count": len(stale) - len(failed)}
    )
