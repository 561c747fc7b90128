"""What the client is delivered: the job item names the last finished run (its
`delivered` pointer), and each file delivers that run's renditions if the run developed
it, else what its item stores (an earlier run's, copied there when the next run
registered). Marking a run done is then one write, whatever the number of files; the
renditions and ZIPs nothing delivers any more are deleted after it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from darkroom import keys
from darkroom.aws.objects import Objects
from darkroom.jobs import Archive, DeliveredRun, FileRecord, FileStatus, Output
from darkroom.observability import logger


def delivers_from(record: FileRecord, run: str) -> bool:
    """Whether the file delivers `run`'s renditions once `run` is marked done: its
    current attempt is that run's and developed, or skipped (the photographer rejected it
    in its sidecar: it delivers nothing from then on, whatever an earlier run made)."""
    return record.run_id == run and record.status in _DECIDED


_DECIDED = frozenset({FileStatus.DONE, FileStatus.SKIPPED})


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


class Tally:
    """What marking `run` done delivers, counted from the job's file items (resolved) as
    they stream past once: how many files deliver something, and every object that must
    survive the deletion of what is superseded."""

    def __init__(self, job_id: str, run: str) -> None:
        self.job_id = job_id
        self.run = run
        self.files_delivered = 0
        self.keep: set[str] = set()

    def count(self, records: Iterable[FileRecord]) -> Iterator[FileRecord]:
        """`records`, each counted as it is handed on."""
        for record in records:
            self._add(record)
            yield record

    def _add(self, record: FileRecord) -> None:
        after = delivered_after(record, self.run)
        if after:
            self.files_delivered += 1
            self.keep.update(output.key for output in after.values())
        source = self.run if delivers_from(record, self.run) else record.delivered_run
        if source:
            self.keep.add(keys.run_manifest_key(self.job_id, source))

    def delivered(
        self, manifest_key: str, finished_at: str, archives: Mapping[str, Archive] | None
    ) -> DeliveredRun:
        """The job's pointer to the run, with its ZIPs (none when packaging failed)."""
        return DeliveredRun(
            run_id=self.run,
            finished_at=finished_at,
            manifest_key=manifest_key,
            files_delivered=self.files_delivered,
            archives=dict(archives or {}),
        )


def delete_superseded(
    objects: Objects,
    bucket: str,
    job_id: str,
    run: str,
    keep: Iterable[str],
    *,
    archives: Iterable[Archive] = (),
) -> None:
    """Delete what no file delivers any more once `run` is marked done, all but `keep`:
    renditions switched away from, failed runs' leftovers, manifests of runs that deliver
    nothing, earlier runs' ZIPs (only `run`'s, `archives`, match what is delivered).
    Nothing under `run`'s own folder goes, so it is not even listed. Uploads a worker
    that died left open under the job's folder are aborted: every run of the job is
    over, so none is still being written. Best effort: what stays is only storage (the
    bucket's lifecycle rule aborts uploads within days), and the next finished run tries
    again."""
    try:
        aborted = objects.abort_open_uploads(bucket, keys.processed_prefix(job_id))
    except Exception:
        logger.exception("abandoned uploads not aborted", extra={"job_id": job_id})
    else:
        if aborted:
            logger.info("abandoned uploads aborted", extra={"job_id": job_id, "count": aborted})
    kept = {*keep, *(a.key for a in archives)}
    own = keys.run_prefix(job_id, run)
    try:
        # Earlier runs' folders only: `run`'s own (every rendition it just made, the bulk
        # of the job's objects) is never listed.
        folders, direct = objects.folders(bucket, keys.processed_prefix(job_id))
        candidates = [
            *direct,
            *(
                o["Key"]
                for folder in folders
                if folder != own
                for o in objects.list(bucket, folder)
            ),
        ]
        stale = [key for key in candidates if key not in kept]
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
