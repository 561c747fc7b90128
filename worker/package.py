"""Packaging a run: one "download all" ZIP per rendition of what the client will be
delivered once the run is marked done."""

from __future__ import annotations

import struct
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from darkroom import keys
from darkroom.api.validation import same_on_every_disk
from darkroom.archive import (
    ArchiveError,
    Entry,
    LocalFile,
    MultipartWriter,
    Source,
    ZipStream,
    central_directory,
    read_ahead,
    write_central_directory,
    write_zip,
)
from darkroom.aws.clients import error_code
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.delivery import delivered_after
from darkroom.errors import DarkroomError
from darkroom.filenames import Naming, job_naming
from darkroom.jobs import Archive, ArchiveSegment, FileRecord, Output, Shard
from darkroom.observability import logger
from darkroom.recipes import Recipe
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

    When every shard of the run wrote its part of each ZIP as it developed (a
    ShardSegments), the ZIPs are those parts joined inside S3, which reads no rendition
    back; see `join_segments`. Otherwise (a shard failed twice, or could not write its
    parts), and for a rendition whose parts name two entries alike, every rendition is
    read back: the file items are read once to learn the renditions, then once per
    rendition, one ZIP at a time, its small renditions read a few ahead."""
    shards = jobs.shards(job_id, run)
    if shards and all(shard.segments is not None for shard in shards):
        joined = join_segments(
            job_id, run, shards, jobs=jobs, objects=objects, bucket=bucket, lost=lost
        )
        return {"archives": joined}
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
    names = job_naming(jobs.get(job_id))
    for record in jobs.files(job_id):
        output = archived_outputs(job_id, record, run).get(rendition)
        if output is None:
            continue
        stem = names.stem(record.name, record.seq, rendition)
        name = entry_name(record.name, PurePosixPath(output.key).suffix, taken, stem=stem)
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


def entry_name(file_name: str, suffix: str, taken: set[str], *, stem: str | None = None) -> str:
    """`<stem><suffix>` for the original `file_name` (or the recipe's filename template's
    `stem` for it), or `<stem> (n)<suffix>` with the smallest n from 2 that no earlier
    entry has (compared as a disk would); recorded in `taken`."""
    stem = stem or PurePosixPath(file_name).stem
    n = 1
    while True:
        name = f"{stem}{suffix}" if n == 1 else f"{stem} ({n}){suffix}"
        folded = same_on_every_disk(name)
        if folded not in taken:
            taken.add(folded)
            return name
        n += 1


# -- a shard's part of each ZIP, written as its files develop -------------------------
class ShardSegments:
    """One shard's part of each rendition's ZIP, streamed into S3 as its files develop,
    from the renditions still on the scratch disk: nothing is read back from S3 but what
    an earlier attempt or an earlier run made. A whole ZIP of the shard's entries per
    rendition; in a run of one shard (`final`) it is the run's ZIP itself.

    Entry names are given in file-name order over all the shard's files (`entry_name`),
    whichever of them develop and in whatever order they finish.

    Best effort, never the shard's failure: the first error aborts every part (logged),
    and the packager then reads the renditions back as it would without parts."""

    def __init__(
        self,
        job_id: str,
        run: str,
        shard: int,
        recipe: Recipe,
        records: Sequence[FileRecord],
        *,
        objects: Objects,
        bucket: str,
        final: bool,
        names: Naming | None = None,
    ) -> None:
        self._job_id, self._run, self._shard = job_id, run, shard
        self._naming = names or Naming(None, job_id, None)
        self._seqs = {r.name: r.seq for r in records}
        self._objects, self._bucket, self._final = objects, bucket, final
        self._records = list(records)
        self._names: dict[str, dict[str, str]] = {}
        self._taken: dict[str, set[str]] = {}
        for rendition in recipe.renditions:
            taken: set[str] = set()
            suffix = f".{rendition.extension}"
            self._names[rendition.name] = {
                r.name: entry_name(
                    r.name, suffix, taken, stem=self._naming.stem(r.name, r.seq, rendition.name)
                )
                for r in self._records
            }
            self._taken[rendition.name] = taken
        self._open: dict[str, tuple[MultipartWriter, ZipStream]] = {}
        self._streamed: set[str] = set()
        self.failed = False

    def add_developed(self, file_name: str, rendered: Mapping[str, Path]) -> None:
        """A file this attempt developed: its renditions, from the scratch disk."""
        if self.failed:
            return
        try:
            for rendition, path in rendered.items():
                self._add(rendition, file_name, path.suffix, LocalFile(path))
            self._streamed.add(file_name)
        except Interrupted:
            raise
        except Exception:
            self._give_up()

    def finish(self, lost: threading.Event) -> dict[str, ArchiveSegment] | None:
        """Add what the shard delivers but did not develop now (an earlier attempt's
        files, earlier runs' renditions of files that failed), then complete each part.
        The parts by rendition; None when they could not be written."""
        if self.failed:
            return None
        try:
            for record in self._records:
                if record.name in self._streamed:
                    continue
                for rendition, output in archived_outputs(self._job_id, record, self._run).items():
                    if lost.is_set():
                        raise Interrupted("the execution stopped waiting for this worker")
                    suffix = PurePosixPath(output.key).suffix
                    with self._objects.reading(self._bucket, output.key) as source:
                        self._add(rendition, record.name, suffix, source)
            return {rendition: self._close(rendition) for rendition in sorted(self._open)}
        except Interrupted:
            self.abort()
            raise
        except Exception:
            self._give_up()
            return None

    def abort(self) -> None:
        for writer, _ in self._open.values():
            writer.abort()
        self._open.clear()

    def _add(self, rendition: str, file_name: str, suffix: str, source: Source) -> None:
        if self.failed:
            raise ArchiveError("the shard's parts were given up")
        if rendition not in self._open:
            key = (
                keys.archive_key(self._job_id, self._run, rendition)
                if self._final
                else keys.archive_segment_key(self._job_id, self._run, rendition, self._shard)
            )
            writer = MultipartWriter(self._objects, self._bucket, key)
            writer.__enter__()
            self._open[rendition] = (writer, ZipStream(writer))
        _, stream = self._open[rendition]
        name = self._names.get(rendition, {}).get(file_name)
        if name is None or PurePosixPath(name).suffix != suffix:
            # A rendition the recipe no longer makes, or made in another format.
            stem = self._naming.stem(file_name, self._seqs.get(file_name), rendition)
            name = entry_name(
                file_name, suffix, self._taken.setdefault(rendition, set()), stem=stem
            )
        stream.add(name, source)

    def _close(self, rendition: str) -> ArchiveSegment:
        writer, stream = self._open.pop(rendition)
        data_bytes = stream.close()
        writer.__exit__(None, None, None)
        return ArchiveSegment(
            key=writer.key, bytes=writer.size, files=stream.count, data_bytes=data_bytes
        )

    def _give_up(self) -> None:
        logger.exception(
            "the shard's parts of the ZIPs were given up; the packager reads them back",
            extra={"job_id": self._job_id, "shard": self._shard},
        )
        self.failed = True
        self.abort()


# -- the run's ZIPs, joined from its shards' parts ------------------------------------
class NamesClash(DarkroomError):
    """Two shards' parts hold entries of one name (as a disk compares them)."""


class PartUnreadable(DarkroomError):
    """A shard's part is gone or is not the ZIP its shard item says it is."""


# A part deleted (by an attempt that joined it and then died before its callback), or
# shorter than its shard item says.
_PART_GONE = frozenset({"NoSuchKey", "404", "InvalidRange"})


def join_segments(
    job_id: str,
    run: str,
    shards: Sequence[Shard],
    *,
    jobs: JobStore,
    objects: Objects,
    bucket: str,
    lost: threading.Event,
) -> dict[str, Any]:
    """Each rendition's ZIP as its shards' parts joined in shard order: their entries
    copied inside S3 (UploadPartCopy; small ones read through), then one central
    directory of them all. Only the parts' central directories are read. A rendition
    whose parts clash on an entry name, or one of whose parts is gone or unreadable, is
    read back whole instead (`_package_rendition` names the entries across the whole
    run). The parts go once every ZIP is written."""
    renditions = sorted({r for shard in shards for r in shard.segments or {}})
    archives: dict[str, Any] = {}
    for rendition in renditions:
        parts = [s.segments[rendition] for s in shards if s.segments and rendition in s.segments]
        try:
            archive = _join(
                job_id, run, rendition, parts, objects=objects, bucket=bucket, lost=lost
            )
        except (NamesClash, PartUnreadable) as exc:
            logger.warning("the ZIP is read back whole", extra={"why": str(exc)})
            archive = _package_rendition(
                job_id, run, rendition, jobs=jobs, objects=objects, bucket=bucket, lost=lost
            )
        logger.info("archive written", extra={"job_id": job_id, **archive.model_dump()})
        archives[rendition] = archive.model_dump(mode="json")
    parts_keys = [p.key for s in shards for p in (s.segments or {}).values()]
    try:
        objects.delete_many(bucket, parts_keys)
    except Exception:
        logger.exception("the ZIPs' parts were not deleted", extra={"job_id": job_id})
    return archives


def _join(
    job_id: str,
    run: str,
    rendition: str,
    parts: Sequence[ArchiveSegment],
    *,
    objects: Objects,
    bucket: str,
    lost: threading.Event,
) -> Archive:
    key = keys.archive_key(job_id, run, rendition)
    infos: list[zipfile.ZipInfo] = []
    taken: set[str] = set()
    with MultipartWriter(objects, bucket, key) as out:
        for part in parts:
            if lost.is_set():
                raise Interrupted(f"the execution stopped waiting while {key} was written")
            entries = _part_entries(objects, bucket, part)
            for info in entries:
                folded = same_on_every_disk(info.filename)
                if folded in taken:
                    raise NamesClash(f"{key}: {info.filename!r} is in two shards' parts")
                taken.add(folded)
                info.header_offset += out.size
            with _part_gone(part):
                out.append_object(part.key, 0, part.data_bytes)
            infos.extend(entries)
        write_central_directory(out, infos)
    return Archive(key=key, bytes=out.size, files=len(infos))


@contextmanager
def _part_gone(part: ArchiveSegment) -> Iterator[None]:
    """S3 saying the part is not there (or shorter than recorded) is PartUnreadable;
    any other error stays what it is (a transient one fails the packaging, to retry)."""
    try:
        yield
    except ClientError as exc:
        if error_code(exc) in _PART_GONE:
            raise PartUnreadable(f"{part.key}: {exc}") from exc
        raise


def _part_entries(objects: Objects, bucket: str, part: ArchiveSegment) -> list[zipfile.ZipInfo]:
    """The part's entries, read from its central directory alone, each checked to lie
    within the entries' bytes its shard item recorded."""
    with _part_gone(part):
        tail = objects.read_range(bucket, part.key, part.data_bytes, part.bytes)
    try:
        entries = central_directory(tail, part.data_bytes)
    except (zipfile.BadZipFile, ValueError, struct.error, EOFError) as exc:
        raise PartUnreadable(f"{part.key}: not a ZIP's central directory ({exc})") from exc
    if len(entries) != part.files or any(
        not 0 <= e.header_offset < part.data_bytes for e in entries
    ):
        raise PartUnreadable(
            f"{part.key}: {len(entries)} entries, {part.files} recorded, or an entry lies "
            f"past its {part.data_bytes} bytes"
        )
    return entries
