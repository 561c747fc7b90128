"""ZIP archives of S3 objects, written into S3 as they are read: each entry streamed
from its object (small ones read a few ahead), the archive streamed into a multipart
upload. Memory stays flat whatever the number or size of the entries: a part's buffer,
a read chunk, the bounded read-ahead, and zipfile's few hundred bytes per entry for the
central directory."""

from __future__ import annotations

import io
import zipfile
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Protocol

from darkroom.aws.objects import Objects
from darkroom.errors import DarkroomError
from darkroom.observability import logger

ZIP_CONTENT_TYPE = "application/zip"
MIB = 1024 * 1024
PART_BYTES = 8 * MIB
MAX_PARTS = 10_000  # S3's limit per multipart upload
# What S3 takes of a part but the last, and of one copied inside it (UploadPartCopy).
MIN_PART_BYTES = 5 * MIB
MAX_COPY_PART_BYTES = 5 * 1024 * MIB
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


@dataclass(frozen=True)
class LocalFile:
    """A file on this machine's disk as an entry's source (a rendition just rendered)."""

    path: Path
    chunk_bytes: int = MIB

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def modified(self) -> datetime:
        return datetime.fromtimestamp(self.path.stat().st_mtime, UTC)

    @property
    def chunks(self) -> Iterator[bytes]:
        with self.path.open("rb") as f:
            while chunk := f.read(self.chunk_bytes):
                yield chunk


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
    def key(self) -> str:
        return self._key

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

    def append_object(self, key: str, start: int, end: int) -> None:
        """Bytes [start, end) of another object of the bucket, appended: copied inside S3
        wherever they can make a part of their own, read through this buffer otherwise
        (a small range, or what tops up a part begun)."""
        while start < end:
            left = end - start
            if not self._buffer and left >= MIN_PART_BYTES:
                size = min(left, MAX_COPY_PART_BYTES)
                if 0 < left - size < MIN_PART_BYTES:
                    size = left - MIN_PART_BYTES  # what stays can still be copied
                self._copy(key, start, start + size)
            else:
                size = min(left, self._next_part_bytes() - len(self._buffer))
                self.write(self._objects.read_range(self._bucket, key, start, start + size))
            start += size

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

    def _copy(self, key: str, start: int, end: int) -> None:
        if self._state != "open" or self._upload_id is None:
            raise ValueError(f"s3://{self._bucket}/{self._key} is not open for writing")
        if len(self._etags) >= MAX_PARTS:
            raise ArchiveError(f"s3://{self._bucket}/{self._key} would need over {MAX_PARTS} parts")
        number = len(self._etags) + 1
        self._etags.append(
            self._objects.copy_part(
                self._bucket, self._key, self._upload_id, number, key, start, end
            )
        )
        self._written += end - start

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


class ZipStream:
    """A ZIP written to `out` (which need not be seekable) an entry at a time, as its
    entries become available.

    Stored, not deflated: the renditions are JPEG/WebP, which do not compress further,
    and storing costs no CPU. ZIP64 is used wherever the format needs it: an entry of
    unknown size or whose size is near 4 GiB gets ZIP64 headers (zipfile decides from
    the declared size), and the end records become ZIP64 past 65,535 entries or 4 GiB.

    `check` runs before each entry and each chunk; an exception from it (or from any
    read or write) leaves the archive unfinished: the caller's writer discards it.
    Not closed on an exception on purpose: closing writes the central directory of an
    archive that is being thrown away."""

    def __init__(self, out: _Writable, *, check: Callable[[], None] = lambda: None) -> None:
        self._out = out
        self._check = check
        self._zip = zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.count = 0

    def add(self, name: str, source: Source) -> None:
        self._check()
        info = zipfile.ZipInfo(name, date_time=_zip_time(source.modified))
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16  # rw-r--r-- once extracted
        if source.size is not None:
            info.file_size = source.size
        handle = self._zip.open(info, mode="w", force_zip64=source.size is None)
        written = 0
        for chunk in source.chunks:
            self._check()
            handle.write(chunk)
            written += len(chunk)
        if source.size is not None and written != source.size:
            raise ArchiveError(f"{name}: read {written} bytes of {source.size}; the source changed")
        handle.close()
        self.count += 1

    def close(self) -> int:
        """Write the central directory; where it begins (the entries' bytes before it)."""
        data_bytes = self._out.tell()
        self._zip.close()
        return data_bytes


def write_zip(
    out: _Writable, entries: Iterable[Entry], *, check: Callable[[], None] = lambda: None
) -> int:
    """Write `entries` as a ZIP to `out` (see ZipStream); how many entries."""
    archive = ZipStream(out, check=check)
    for entry in entries:
        with entry.open() as source:
            archive.add(entry.name, source)
    archive.close()
    return archive.count


def central_directory(tail: bytes, data_bytes: int) -> list[zipfile.ZipInfo]:
    """The entries of a ZIP from its tail alone: the bytes from `data_bytes`, where its
    central directory begins, to its end. Header offsets are the whole ZIP's."""
    # zipfile reads a ZIP with bytes before it (a self-extractor's stub) by shifting
    # every offset by what precedes it; here that is the entries it was not given.
    archive = zipfile.ZipFile(io.BytesIO(tail))
    infos = archive.infolist()
    for info in infos:
        info.header_offset += data_bytes
    return infos


def write_central_directory(out: _Writable, infos: list[zipfile.ZipInfo]) -> None:
    """End a ZIP whose entries `out` holds already (at the offsets `infos` name): its
    central directory and end records, ZIP64 wherever the offsets or count need it."""
    archive = zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
    archive.filelist = list(infos)
    archive.NameToInfo = {info.filename: info for info in infos}
    archive.close()


def _zip_time(moment: datetime | None) -> tuple[int, int, int, int, int, int]:
    # ZIP times are local-less DOS times from 1980 on; UTC is the least surprising.
    when = (moment or datetime.now(UTC)).astimezone(UTC)
    if when.year < 1980:
        return (1980, 1, 1, 0, 0, 0)
    return (when.year, when.month, when.day, when.hour, when.minute, when.second)
