"""Packaging a run: one "download all" ZIP per rendition of what the client will be
delivered once the run is marked done."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing
from functools import partial
from pathlib import PurePosixPath
from typing import Any

from darkroom import keys
from darkroom.api.validation import same_on_every_disk
from darkroom.archive import Entry, MultipartWriter, read_ahead, write_zip
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.delivery import delivered_after
from darkroom.jobs import Archive, FileRecord, Output
from darkroom.observability import logger
from worker.interrupted import Interrupted


def package_run(
    job_id: str,
    run: str,
    *,
    jobs: JobStore,
    objects: Objects,
    bucket: str,
    lost: threading.Event,
) -> dict[str, Any]:
    """Write `processed/<job>/<run>/<rendition>.zip` for each rendition some file will
    deliver: per file, this run's renditions if it developed the file, else what the
    file delivers now; files with nothing of a rendition are not in its ZIP.

    Entries are named as the client downloads them, `<original's stem>.<extension>`;
    two originals of one stem (A.CR2, A.dng: one name on macOS or Windows, whatever its
    case or Unicode form) are told apart in file-name order: the first keeps `A.jpg`,
    the next is `A (2).jpg`, and so on, per ZIP.

    `lost` (the task is over) stops it between entries and reads: the upload is aborted
    and Interrupted raised. Any failure aborts the upload being written, so a ZIP exists
    only whole; ZIPs of renditions finished before it stay, to be overwritten by the next
    attempt, which writes the same keys.

    The file items are read once to learn the renditions, then once per rendition: one
    ZIP is written at a time, its small renditions read a few ahead."""
    renditions = sorted(
        {r for record in jobs.files(job_id) for r in archived_outputs(job_id, record, run)}
    )
    archives: dict[str, Any] = {}
    for rendition in renditions:
        archive = _package_rendition(
            job_id, run, rendition, jobs=jobs, objects=objects, bucket=bucket, lost=lost
        )
        logger.info("archive written", extra={"job_id": job_id, **archive.model_dump()})
        archives[rendition] = archive.model_dump(mode="json")
    return {"archives": archives}


def _package_rendition(
    job_id: str,
    run: str,
    rendition: str,
    *,
    jobs: JobStore,
    objects: Objects,
    bucket: str,
    lost: threading.Event,
) -> Archive:
    key = keys.archive_key(job_id, run, rendition)

    def check() -> None:
        if lost.is_set():
            raise Interrupted(f"the execution stopped waiting while {key} was written")

    entries = read_ahead(
        _entries(job_id, run, rendition, jobs=jobs, objects=objects, bucket=bucket)
    )
    with closing(entries), MultipartWriter(objects, bucket, key) as out:
        files = write_zip(out, entries, check=check)
    return Archive(key=key, bytes=out.size, files=files)


def _entries(
    job_id: str, run: str, rendition: str, *, jobs: JobStore, objects: Objects, bucket: str
) -> Iterator[Entry]:
    taken: set[str] = set()
    for record in jobs.files(job_id):
        output = archived_outputs(job_id, record, run).get(rendition)
        if output is None:
            continue
        name = entry_name(record.name, PurePosixPath(output.key).suffix, taken)
        yield Entry(name, partial(objects.reading, bucket, output.key), output.bytes)


def archived_outputs(job_id: str, record: FileRecord, run: str) -> dict[str, Output]:
    """What of the file goes into the ZIPs: what it will deliver, and only this job's
    objects, whatever its record says."""
    prefix = keys.processed_prefix(job_id)
    return {
        rendition: output
        for rendition, output in delivered_after(record, run).items()
        if output.key.startswith(prefix)
    }


def entry_name(file_name: str, suffix: str, taken: set[str]) -> str:
    """`<stem><suffix>` for the original `file_name`, or `<stem> (n)<suffix>` with the
    smallest n from 2 that no earlier entry has (compared as a disk would); recorded
    in `taken`."""
    stem = PurePosixPath(file_name).stem
    n = 1
    while True:
        name = f"{stem}{suffix}" if n == 1 else f"{stem} ({n}){suffix}"
        folded = same_on_every_disk(name)
        if folded not in taken:
            taken.add(folded)
            return name
        n += 1
