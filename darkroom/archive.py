"""ZIP archives of S3 objects, written into S3 as they are read: each entry streamed
from its object (small ones read a few ahead), the archive streamed into a multipart
upload. Memory stays flat whatever the number or size of the entries: a part's buffer,
a read chunk, the bounded read-ahead, and zipfile's few hundred bytes per entry for the
central directory."""

from __future__ import annotations

import zipfile
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from types import TracebackType
from typing import Protocol

from darkroom.aws.objects import Objects
from darkroom.errors import DarkroomError
from darkroom.observability import logger

ZIP_CONTENT_TYPE = "application/zip"
MIB = 1024 * 1024
PART_BYTES = 8 * MIB
MAX_PARTS = 10_000  # S3's limit per multipart upload
# Parts double in size every this many, so an upload reaches ~0.5 TB before S3's part
# limit while an ordinary archive holds one 8 MiB buffer.
_PARTS_PER_DOUBLING = 2_000
# Small entries are read this far ahead, a few at once: one GET at a time would make
# an archive of thousands of files as slow as thousands of round trips.
READ_AHEAD_THREADS = 8
READ_AHEAD_ENTRIES = 16
READ_AHEAD_BYTES = 16 * 1024 * 1024  # at most this much read ahead, whatever the count
READ_AHEAD_LARGEST = 4 * 1024 * 1024  # larger entries are streamed when their turn comes


class ArchiveError(DarkroomError):
    """An archive could not be written whole (nothing was left at its key)."""


class Source(Protocol):
    """An entry's bytes as they are read (darkroom.aws.objects.ObjectStream is one)."""

    @property
    def size(self) -> int | None: ...

    @property
    def modified(self) -> datetime | None: ...

    @property
    def chunks(self) -> Iterator[bytes]: ...


@dataclass(frozen=True)
class Entry:
    """One file of an archive: its name inside, and how to open its bytes (opened only
    when its turn comes, so one source is open at a time)."""

    name: str
    open: Callable[[], AbstractContextManager[Source]]
    size: int | None = None  # what it is expected to be, if known (for reading ahead)


@dataclass(frozen=True)
class _Read:
    size: int | None
    modified: datetime | None
    body: bytes

    @property
    def chunks(self) -> Iterator[bytes]:
        return iter((self.body,))


def _read(entry: Entry) -> _Read:
    with entry.open() as source:
        return _Read(source.size, source.modified, b"".join(source.chunks))


def read_ahead(
    entries: Iterable[Entry],
    *,
    threads: int = READ_AHEAD_THREADS,
    most_entries: int = READ_AHEAD_ENTRIES,
    most_bytes: int = READ_AHEAD_BYTES,
    largest: int = READ_AHEAD_LARGEST,
) -> Generator[Entry, None, None]:
    """`entries` in their order, the small ones (size known, at most `largest`) read
    whole in threads while earlier ones are written: at most `most_entries` and
    `most_bytes` ahead. A read's error surfaces when its entry is opened.

    Close the iterator if it is left before its end: reads in flight are waited for,
    queued ones cancelled (entries handed out but not opened yet can then not be)."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="read-ahead")
    window: deque[tuple[Entry, Future[_Read] | None]] = deque()
    ahead = 0

    def ready() -> Entry:
        nonlocal ahead
        entry, read = window.popleft()
        if read is None:
            return entry
        ahead -= entry.size or 0
        return Entry(entry.name, partial(_opened, read), entry.size)

    try:
        for entry in entries:
            small = entry.size is not None and entry.size <= largest
            while window and (
                len(window) >= most_entries or (small and ahead + (entry.size or 0) > most_bytes)
            ):
                yield ready()
            if small:
                window.append((entry, pool.submit(_read, entry)))
                ahead += entry.size or 0
            else:
                window.append((entry, None))
        while window:
            yield ready()
    except BaseException:  # closed early (GeneratorExit) or failed
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    # Every read belongs to an entry handed out, maybe not opened yet: let them finish.
    pool.shutdown(wait=False)


def _opened(read: Future[_Read]) -> AbstractContextManager[Source]:
    return nullcontext(read.result())


class MultipartWriter:
    """A write-only file over an S3 multipart upload: writes are buffered to a part's
    size and uploaded; leaving the `with` block completes the object, or aborts the
    upload if an exception is leaving it, so an object exists at `key` only whole.

    It has `tell` but no `seek`, on purpose: zipfile then writes each entry's CRC and
    sizes after its data (data descriptors) instead of seeking back over what was sent.
    Parts may be smaller than S3's 5 MiB only in tests that never complete them."""

    def __init__(
        self,
        objects: Objects,
        bucket: str,
        key: str,
        *,
        part_bytes: int | None = None,
        content_type: str = ZIP_CONTENT_TYPE,
    ) -> None:
        self._objects = objects
        self._bucket = bucket
        self._key = key
        self._part_bytes = part_bytes or PART_BYTES
        self._content_type = content_type
        self._upload_id: str | None = None
        self._etags: list[str] = []
        self._buffer = bytearray()
        self._written = 0
        self._state = "open"  # -> "complete" | "aborted"

    @property
    def size(self) -> int:
        """Bytes written so far (the whole object's, once complete)."""
        return self._written

    def __enter__(self) -> MultipartWriter:
        self._upload_id = self._objects.start_parts(self._bucket, self._key, self._content_type)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.abort()
            return
        try:
            self._complete()
        except BaseException:
            self.abort()
            raise

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._state == "aborted":
            # zipfile's handles close when collected, after an abort: drop what they send.
            return len(data)
        if self._state != "open" or self._upload_id is None:
            raise ValueError(f"s3://{self._bucket}/{self._key} is not open for writing")
        self._buffer += data
        self._written += len(data)
        if len(self._buffer) >= self._next_part_bytes():
            self._send()
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        """Parts go when full: flushing sends nothing (S3 refuses small parts but the last)."""

    def close(self) -> None:
        """Discard, unless complete: only leaving the `with` block completes the object."""
        self.abort()

    def abort(self) -> None:
        """Drop the upload and its parts. Best effort: the bucket's lifecycle rule aborts
        what is left of an upload whose abort failed."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._buffer = bytearray()
        if self._upload_id is None:
            return
        try:
            self._objects.abort_parts(self._bucket, self._key, self._upload_id)
        except Exception:
            logger.exception("could not abort a multipart upload", extra={"key": self._key})

    def _next_part_bytes(self) -> int:
        return self._part_bytes * 2 ** (len(self._etags) // _PARTS_PER_DOUBLING)

    def _send(self) -> None:
        if len(self._etags) >= MAX_PARTS:
            raise ArchiveError(f"s3://{self._bucket}/{self._key} would need over {MAX_PARTS} parts")
        assert self._upload_id is not None
        # Handed over, not copied: the buffer is never touched again.
        body, self._buffer = self._buffer, bytearray()
        number = len(self._etags) + 1
        self._etags.append(
            self._objects.put_part(self._bucket, self._key, self._upload_id, number, body)
        )

    def _complete(self) -> None:
        if self._buffer or not self._etags:
            self._send()  # the last part, which may be small
        assert self._upload_id is not None
        self._objects.complete_parts(self._bucket, self._key, self._upload_id, self._etags)
        self._state = "complete"


class _Writable(Protocol):
    def write(self, data: bytes) -> int: ...

    def tell(self) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def write_zip(
    out: _Writable, entries: Iterable[Entry], *, check: Callable[[], None] = lambda: None
) -> int:
    """Write `entries` as a ZIP to `out`, which need not be seekable; how many entries.

    Stored, not deflated: the renditions are JPEG/WebP, which do not compress further,
    and storing costs no CPU. ZIP64 is used wherever the format needs it: an entry of
    unknown size or whose size is near 4 GiB gets ZIP64 headers (zipfile decides from
    the declared size), and the end records become ZIP64 past 65,535 entries or 4 GiB.

    `check` runs before each entry and each chunk; an exception from it (or from any
    read or write) ends the archive unfinished: the caller's writer discards it.
    """
    # Not a `with`: on an exception, closing would write the central directory of an
    # archive that is being thrown away.
    archive = zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
    count = 0
    for entry in entries:
        check()
        with entry.open() as source:
            info = zipfile.ZipInfo(entry.name, date_time=_zip_time(source.modified))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16  # rw-r--r-- once extracted
            if source.size is not None:
                info.file_size = source.size
            handle = archive.open(info, mode="w", force_zip64=source.size is None)
            written = 0
            for chunk in source.chunks:
                check()
                handle.write(chunk)
                written += len(chunk)
            if source.size is not None and written != source.size:
                raise ArchiveError(
                    f"{entry.name}: read {written} bytes of {source.size}; the source changed"
                )
            handle.close()
        count += 1
    archive.close()
    return count


def _zip_time(moment: datetime | None) -> tuple[int, int, int, int, int, int]:
    # ZIP times are local-less DOS times from 1980 on; UTC is the least surprising.
    when = (moment or datetime.now(UTC)).astimezone(UTC)
    if when.year < 1980:
        return (1980, 1, 1, 0, 0, 0)
    return (when.year, when.month, when.day, when.hour, when.minute, when.second)
