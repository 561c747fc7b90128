"""ZIPs of a run's renditions: the streaming writer, ZIP64, the multipart upload it
writes into, and packaging a run against moto's in-process mocks (no network)."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, closing, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from PIL import Image
from rich.console import Console

from darkroom import keys, names, pipeline
from darkroom.api.models import JobView
from darkroom.archive import (
    MIB,
    Entry,
    MultipartWriter,
    Source,
    ZipStream,
    _Read,
    central_directory,
    read_ahead,
    write_central_directory,
    write_zip,
)
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.aws.table import create_request
from darkroom.cli.view import panel
from darkroom.errors import TransientError
from darkroom.jobs import (
    Archive,
    ArchiveSegment,
    DeliveredRun,
    FileProgress,
    FileRecord,
    FileStatus,
    JobStatus,
    Output,
    Shard,
)
from darkroom.jobs import Job as JobModel
from tests.moto_config import offline_aws
from worker.interrupted import Interrupted
from worker.package import archived_outputs, entry_name, join_segments, package_run

BUCKET = "processed-bucket"
EXEC_A = "arn:aws:states:us-east-1:123456789012:execution:m:a"
EXEC_B = "arn:aws:states:us-east-1:123456789012:execution:m:b"
_EOCD64 = b"PK\x06\x06"  # ZIP64 end of central directory record
_EOCD64_LOCATOR = b"PK\x06\x07"


# -- the writer, in memory ------------------------------------------------------------
class Unseekable:
    """A write-only sink as zipfile sees an upload: tell, no seek."""

    def __init__(self, keep: bool = True) -> None:
        self.data = bytearray()
        self.size = 0
        self._keep = keep

    def write(self, data: bytes) -> int:
        if self._keep:
            self.data += data
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Bytes:
    body: bytes
    known_size: bool = True
    chunk: int = 1000

    @property
    def size(self) -> int | None:
        return len(self.body) if self.known_size else None

    @property
    def modified(self) -> datetime | None:
        return datetime(2026, 5, 1, 12, 30, 10, tzinfo=UTC)

    @property
    def chunks(self) -> Iterator[bytes]:
        return (self.body[i : i + self.chunk] for i in range(0, len(self.body), self.chunk))


def _entry(name: str, source: Source) -> Entry:
    def open_() -> AbstractContextManager[Source]:
        return nullcontext(source)

    return Entry(name, open_)


def _unzip_t(path: Path) -> None:
    """Info-ZIP's own check, where it is installed."""
    if shutil.which("unzip"):
        result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "No errors detected" in result.stdout


def test_a_zip_written_to_an_unseekable_sink_reads_back_whole(tmp_path: Path) -> None:
    bodies = {f"IMG_{i:04d}.jpg": bytes([i]) * (3000 + i) for i in range(5)}
    bodies["café.jpg"] = b"\xff\xd8" + b"x" * 10
    out = Unseekable()
    count = write_zip(out, [_entry(n, Bytes(b)) for n, b in bodies.items()])
    assert count == len(bodies)
    path = tmp_path / "a.zip"
    path.write_bytes(out.data)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert [i.filename for i in archive.infolist()] == list(bodies)
        for info in archive.infolist():
            assert archive.read(info) == bodies[info.filename]
            assert info.compress_type == zipfile.ZIP_STORED
            # Streamed: CRC and sizes follow the data (no seeking back).
            assert info.flag_bits & 0x08
            assert info.date_time == (2026, 5, 1, 12, 30, 10)
    _unzip_t(path)


def test_entries_of_unknown_size_get_zip64_headers_and_read_back(tmp_path: Path) -> None:
    bodies = {"a.jpg": b"a" * 70_000, "b.jpg": b"", "c.webp": bytes(range(256)) * 40}
    out = Unseekable()
    write_zip(out, [_entry(n, Bytes(b, known_size=False)) for n, b in bodies.items()])
    path = tmp_path / "z.zip"
    path.write_bytes(out.data)
    # Each local header carries a ZIP64 extra field (id 1) and each data descriptor
    # 8-byte sizes: 4 + 4 + 8 + 8 bytes after the signature PK\x07\x08.
    assert out.data.count(b"PK\x03\x04") == len(bodies)
    # Local headers that need version 4.5 (ZIP64), one per entry.
    assert out.data.count(b"PK\x03\x04\x2d\x00") == len(bodies)
    for name, body in bodies.items():
        descriptor = out.data.index(b"PK\x07\x08", out.data.index(name.encode()))
        crc, compressed, size = struct.unpack_from("<LQQ", out.data, descriptor + 4)
        assert (compressed, size) == (len(body), len(body))
        assert crc == zipfile.crc32(body)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert {i.filename: archive.read(i) for i in archive.infolist()} == bodies
    _unzip_t(path)


def test_past_65535_entries_the_end_of_central_directory_is_zip64(tmp_path: Path) -> None:
    count = 65_536
    body = Bytes(b"x")
    out = Unseekable()
    assert write_zip(out, (_entry(f"{i:05d}.jpg", body) for i in range(count))) == count
    # The ZIP64 end record and its locator sit before the classic end record, whose
    # entry count is saturated at 0xFFFF for readers without ZIP64.
    tail = bytes(out.data[-200:])
    eocd64 = tail.index(_EOCD64)
    assert tail.index(_EOCD64_LOCATOR) > eocd64
    (entries_total,) = struct.unpack_from("<Q", tail, eocd64 + 32)
    assert entries_total == count
    eocd = tail.rindex(b"PK\x05\x06")
    (classic_count,) = struct.unpack_from("<H", tail, eocd + 10)
    assert classic_count == 0xFFFF
    with zipfile.ZipFile(io.BytesIO(out.data)) as archive:
        names_read = archive.namelist()
    assert len(names_read) == count and names_read[-1] == f"{count - 1:05d}.jpg"
    path = tmp_path / "many.zip"
    path.write_bytes(out.data)
    _unzip_t(path)


def test_a_source_shorter_than_it_said_is_an_error() -> None:
    @dataclass(frozen=True)
    class Short(Bytes):
        @property
        def size(self) -> int | None:
            return len(self.body) + 1

    with pytest.raises(Exception, match="read 10 bytes of 11"):
        write_zip(Unseekable(), [_entry("a.jpg", Short(b"0123456789"))])


def _counted(opened: list[int], i: int, size: int | None, fail: bool = False) -> Entry:
    def open_() -> AbstractContextManager[Source]:
        opened.append(i)
        if fail:
            raise OSError(f"cannot read {i}")
        return nullcontext(Bytes(bytes([i]) * (size or 700)))

    return Entry(f"{i}.jpg", open_, size)


def _settle(opened: list[int], count: int) -> set[int]:
    deadline = time.monotonic() + 5
    while len(opened) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # and nothing more
    return set(opened)


def test_small_entries_are_read_ahead_in_order_within_bounds() -> None:
    opened: list[int] = []
    # Ten small entries, one too large to read ahead, one of unknown size, two small.
    sizes: list[int | None] = [100] * 10 + [600, None, 100, 100]
    entries = [_counted(opened, i, size) for i, size in enumerate(sizes)]
    ahead = read_ahead(entries, threads=2, most_entries=4, most_bytes=1000, largest=500)
    first = next(ahead)
    assert first.name == "0.jpg"
    assert _settle(opened, 4) == {0, 1, 2, 3}  # four ahead at most
    written = Unseekable()
    with closing(ahead):
        count = write_zip(written, [first, *ahead])
    assert count == len(sizes)
    with zipfile.ZipFile(io.BytesIO(written.data)) as archive:
        assert archive.namelist() == [f"{i}.jpg" for i in range(len(sizes))]
        for i, size in enumerate(sizes):
            assert archive.read(f"{i}.jpg") == bytes([i]) * (size or 700)
    assert sorted(opened) == list(range(len(sizes)))


def test_read_ahead_holds_at_most_its_byte_budget_and_streams_the_rest() -> None:
    opened: list[int] = []
    entries = [_counted(opened, i, size) for i, size in enumerate([100, 100, 100, 600, 100])]
    ahead = read_ahead(entries, threads=4, most_entries=10, most_bytes=250, largest=500)
    assert next(ahead).name == "0.jpg"
    assert _settle(opened, 2) == {0, 1}  # a third small one would pass 250 bytes
    names_seen = [e.name for e in ahead]
    assert names_seen == ["1.jpg", "2.jpg", "3.jpg", "4.jpg"]
    # The large entry is never read ahead: only opened by whoever writes it.
    assert 3 not in opened


def test_a_read_ahead_error_surfaces_when_its_entry_is_opened() -> None:
    opened: list[int] = []
    entries = [_counted(opened, 0, 100), _counted(opened, 1, 100, fail=True)]
    with closing(read_ahead(entries)) as ahead, pytest.raises(OSError, match="cannot read 1"):
        write_zip(Unseekable(), ahead)


def test_entry_names_take_the_originals_stem_and_tell_equal_stems_apart() -> None:
    taken: set[str] = set()
    assert entry_name("A.CR2", ".jpg", taken) == "A.jpg"
    assert entry_name("A.dng", ".jpg", taken) == "A (2).jpg"
    # One name on macOS or Windows: case and Unicode form do not tell files apart.
    assert entry_name("a.NEF", ".jpg", taken) == "a (3).jpg"
    assert entry_name("A (2).ARW", ".jpg", taken) == "A (2) (2).jpg"
    assert entry_name("IMG_0001.CR3", ".webp", taken) == "IMG_0001.webp"
    assert entry_name("café.dng", ".jpg", taken) == "café.jpg"
    assert entry_name("cafe\u0301.CR2", ".jpg", taken) == "cafe\u0301 (2).jpg"


# -- the multipart upload, against moto -------------------------------------------------
@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    offline_aws(monkeypatch)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _open_uploads(objects: Objects) -> list[dict[str, Any]]:
    return objects.open_uploads(BUCKET, "")


def _exists(s3: Any, key: str) -> bool:
    return bool(s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("KeyCount"))


def test_a_multipart_writer_sends_full_parts_and_completes_the_object(s3: Any) -> None:
    objects = Objects(s3)
    payload = bytes(range(256)) * (12 * MIB // 256)
    sent: list[int] = []

    class Counting(Objects):
        def put_part(self, *args: Any) -> str:
            sent.append(len(args[4]))
            return super().put_part(*args)

    with MultipartWriter(Counting(s3), BUCKET, "out.bin", part_bytes=5 * MIB) as out:
        for i in range(0, len(payload), MIB):
            out.write(payload[i : i + MIB])
    # Two parts of S3's minimum and the rest as the last part.
    assert sent == [5 * MIB, 5 * MIB, 2 * MIB]
    assert out.size == len(payload)
    answer = s3.get_object(Bucket=BUCKET, Key="out.bin")
    assert answer["ContentType"] == "application/zip"
    assert answer["Body"].read() == payload
    assert _open_uploads(objects) == []


def test_a_multipart_writer_aborts_on_an_error_and_leaves_nothing(s3: Any) -> None:
    objects = Objects(s3)
    out = MultipartWriter(objects, BUCKET, "out.bin", part_bytes=5 * MIB)
    with pytest.raises(RuntimeError, match="midway"), out:
        out.write(b"x" * (6 * MIB))  # one part sent
        raise RuntimeError("midway")
    assert not _exists(s3, "out.bin")
    assert _open_uploads(objects) == []
    # What zipfile's handles may still write once collected is dropped.
    assert out.write(b"late") == 4


def test_memory_stays_flat_whatever_the_number_of_entries() -> None:
    """Peak Python allocations while 50 and 500 entries of 256 KiB go through the writer
    into a multipart upload (parts discarded): only zipfile's small per-entry record
    grows with the count."""

    class Discard(Objects):
        def __init__(self) -> None:
            self.parts = 0

        def start_parts(self, bucket: str, key: str, content_type: str) -> str:
            return "upload"

        def put_part(self, *args: Any) -> str:
            self.parts += 1
            return f"etag-{self.parts}"

        def complete_parts(self, *args: Any) -> None:
            pass

    chunk = b"\xab" * (64 * 1024)

    @dataclass(frozen=True)
    class Generated:
        size: int | None = 256 * 1024
        modified: datetime | None = None

        @property
        def chunks(self) -> Iterator[bytes]:
            return (chunk for _ in range(4))

    def peak(count: int) -> int:
        tracemalloc.start()
        try:
            with MultipartWriter(Discard(), BUCKET, "k", part_bytes=8 * MIB) as out:
                write_zip(out, (_entry(f"{i:05d}.jpg", Generated()) for i in range(count)))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(50), peak(500)
    # One part's buffer (8 MiB) and a chunk, whatever the count.
    assert large < 12 * MIB
    assert large - small < 1 * MIB, (small, large)


# -- packaging a run ---------------------------------------------------------------------
class Job:
    """A job of five files delivered by run "a", then reprocessed by run "b"."""

    def __init__(self, s3: Any, ddb: Any) -> None:
        ddb.create_table(**create_request(names.JOBS_SCHEMA, "jobs"))
        self.s3 = s3
        self.jobs = JobStore("jobs", ddb)
        self.objects = Objects(s3)
        self.job_id = "j1"
        self.bodies: dict[str, bytes] = {}
        files = ["A.CR2", "A.dng", "B.dng", "C.dng", "D.dng"]
        self._run(EXEC_A, files, {"A.CR2": 2, "A.dng": 2, "B.dng": 2, "C.dng": 2})
        self.mark_done(EXEC_A, None)
        # Run b: A.CR2 and D develop (C with the web rendition only), B fails, A.dng is
        # not reached (still pending): A.dng and B keep run a's.
        self._run(EXEC_B, files, {"A.CR2": 2, "C.dng": 1, "D.dng": 2, "B.dng": 0})

    def _run(self, execution: str, files: list[str], done: dict[str, int]) -> None:
        self.jobs.register(
            job_id=self.job_id, execution_arn=execution, files=files, name=None, recipe=None
        )
        self.jobs.transition(self.job_id, execution, JobStatus.STARTING)
        self.jobs.transition(self.job_id, execution, JobStatus.PROCESSING)
        run = keys.run_id(execution)
        for name, renditions in done.items():
            if renditions == 0:
                progress = FileProgress(status=FileStatus.FAILED, error_code="x", error="x")
            else:
                outputs = {}
                for rendition in ("web", "thumb")[:renditions]:
                    key = keys.rendition_key(self.job_id, run, rendition, name, "jpg")
                    self.bodies[key] = _jpeg(f"{run}/{rendition}/{name}")
                    self.s3.put_object(Bucket=BUCKET, Key=key, Body=self.bodies[key])
                    # The worker records each rendition's size; an older record may not
                    # (its ZIP entry is then streamed, not read ahead).
                    size = len(self.bodies[key]) if rendition == "web" else None
                    outputs[rendition] = Output(key=key, content_type="image/jpeg", bytes=size)
                progress = FileProgress(status=FileStatus.DONE, outputs=outputs)
            self.jobs.record_file(self.job_id, execution, name, progress)

    def mark_done(self, execution: str, package: dict[str, Any] | None) -> dict[str, Any]:
        return pipeline.mark_done(
            self.job_id,
            execution,
            package,
            jobs=self.jobs,
            objects=self.objects,
            processed_bucket=BUCKET,
        )

    def package(self, objects: Objects | None = None, lost: threading.Event | None = None) -> Any:
        return package_run(
            self.job_id,
            "b",
            jobs=self.jobs,
            objects=objects or self.objects,
            bucket=BUCKET,
            lost=lost or threading.Event(),
        )

    def body(self, run: str, rendition: str, name: str) -> bytes:
        return self.bodies[keys.rendition_key(self.job_id, run, rendition, name, "jpg")]

    def zip(self, rendition: str) -> dict[str, bytes]:
        answer = self.s3.get_object(
            Bucket=BUCKET, Key=keys.archive_key(self.job_id, "b", rendition)
        )
        with zipfile.ZipFile(io.BytesIO(answer["Body"].read())) as archive:
            assert archive.testzip() is None
            return {i.filename: archive.read(i) for i in archive.infolist()}


def _jpeg(seed: str) -> bytes:
    image = Image.effect_noise((64, 48), 40 + len(seed) % 50).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, comment=seed.encode())
    return out.getvalue()


@pytest.fixture
def job(s3: Any) -> Job:
    return Job(s3, boto3.client("dynamodb", region_name="us-east-1"))


def test_a_run_is_packaged_as_what_it_will_deliver_one_zip_per_rendition(job: Job) -> None:
    result = job.package()
    web, thumb = job.zip("web"), job.zip("thumb")
    assert web == {
        "A.jpg": job.body("b", "web", "A.CR2"),  # developed in this run
        "A (2).jpg": job.body("a", "web", "A.dng"),  # not reached: what it delivers
        "B.jpg": job.body("a", "web", "B.dng"),  # failed in this run: what it delivers
        "C.jpg": job.body("b", "web", "C.dng"),
        "D.jpg": job.body("b", "web", "D.dng"),  # failed before, developed now
    }
    # C's run-b renditions have no thumbnail: C is not in that ZIP.
    assert thumb == {
        "A.jpg": job.body("b", "thumb", "A.CR2"),
        "A (2).jpg": job.body("a", "thumb", "A.dng"),
        "B.jpg": job.body("a", "thumb", "B.dng"),
        "D.jpg": job.body("b", "thumb", "D.dng"),
    }
    for rendition, files in (("web", 5), ("thumb", 4)):
        key = keys.archive_key("j1", "b", rendition)
        size = job.s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
        assert result["archives"][rendition] == {"key": key, "bytes": size, "files": files}
        Archive.model_validate(result["archives"][rendition])
    assert _open_uploads(job.objects) == []
    # A second packaging (a retried step) writes the same keys, the same content.
    assert job.package()["archives"].keys() == result["archives"].keys()
    assert job.zip("web") == web


def test_only_the_jobs_own_objects_go_into_its_zips() -> None:
    record = FileRecord(
        name="A.dng",
        run_id="b",
        status=FileStatus.FAILED,
        delivered_run="a",
        delivered={
            "web": Output(key="processed/j1/a/web/A.jpg"),
            "thumb": Output(key="processed/j2/a/thumb/A.jpg"),  # another job's
        },
    )
    assert archived_outputs("j1", record, "b") == {"web": record.delivered["web"]}


def test_a_lost_task_aborts_the_zip_and_leaves_nothing(job: Job) -> None:
    lost = threading.Event()
    reads = 0

    class LosingMidway(Objects):
        def reading(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            if reads == 2:
                lost.set()  # while the second entry is being read
            return super().reading(*args, **kwargs)

    with pytest.raises(Interrupted):
        job.package(LosingMidway(job.s3), lost)
    assert not _exists(job.s3, keys.archive_key("j1", "b", "web"))
    assert not _exists(job.s3, keys.archive_key("j1", "b", "thumb"))
    assert _open_uploads(job.objects) == []


@pytest.mark.parametrize("failing", ["put_part", "complete_parts"])
def test_a_failing_upload_aborts_the_zip(job: Job, failing: str) -> None:
    def fail(*args: Any) -> None:
        raise TransientError("S3: SlowDown")

    broken = Objects(job.s3)
    setattr(broken, failing, fail)
    with pytest.raises(TransientError):
        job.package(broken)
    assert not _exists(job.s3, keys.archive_key("j1", "b", "thumb"))
    assert _open_uploads(job.objects) == []
    # The renditions are untouched.
    for key, body in job.bodies.items():
        assert job.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body


def test_delivery_records_the_runs_zips_and_deletes_earlier_runs_ones(job: Job) -> None:
    old = keys.archive_key("j1", "a", "web")
    job.s3.put_object(Bucket=BUCKET, Key=old, Body=b"run a's zip")
    package = job.package()
    assert job.mark_done(EXEC_B, package)["archives"] == ["thumb", "web"]
    archives = {r: Archive.model_validate(a) for r, a in package["archives"].items()}
    delivered = job.jobs.get("j1").delivered
    assert delivered is not None and delivered.archives == archives
    left = {o["Key"] for o in job.objects.list(BUCKET, "processed/j1/")}
    assert old not in left
    assert {a.key for a in archives.values()} <= left
    # Every file's delivered rendition is still there, and what the ZIPs hold is it.
    delivered_keys = {o.key for r in job.jobs.files("j1") for o in r.delivered.values()}
    assert delivered_keys <= left
    assert set(job.zip("web").values()) == {
        job.bodies[o.key] for r in job.jobs.files("j1") for o in [r.delivered["web"]]
    }


# -- who shows the job ------------------------------------------------------------------
def test_the_job_view_and_status_panel_show_each_zip_briefly() -> None:
    web = Archive(key=keys.archive_key("j1", "b", "web"), bytes=12_345_678, files=120)
    thumb = Archive(key=keys.archive_key("j1", "b", "thumb"), bytes=987_654, files=119)
    job = JobModel(
        job_id="j1",
        status=JobStatus.DONE,
        files_total=120,
        files_done=120,
        run_id="b",
        attempt=2,
        delivered=DeliveredRun(
            run_id="b", files_delivered=120, archives={"web": web, "thumb": thumb}
        ),
    )
    view = JobView.of_job(job, []).model_dump(mode="json")
    assert view["delivered"]["archives"] == {
        "web": {"key": "processed/j1/b/web.zip", "bytes": 12_345_678, "files": 120},
        "thumb": {"key": "processed/j1/b/thumb.zip", "bytes": 987_654, "files": 119},
    }
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(panel(view, "j1"))
    text = console.export_text()
    assert "thumb ZIP 987.7 kB (119 files), web ZIP 12.3 MB (120 files)" in text
    # No ZIPs (packaging failed, or a run from before they existed): nothing shown.
    bare = job.model_copy(update={"delivered": DeliveredRun(run_id="b", files_delivered=1)})
    view = JobView.of_job(bare, []).model_dump(mode="json")
    assert "archives" not in view["delivered"]
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(panel(view, "j1"))
    assert "ZIP" not in console.export_text()


# -- a run's ZIPs joined from its shards' parts ---------------------------------------
def _part(objects: Objects, key: str, files: dict[str, bytes]) -> ArchiveSegment:
    """A shard's part as its worker writes it: a whole ZIP of its entries."""
    with MultipartWriter(objects, BUCKET, key) as out:
        stream = ZipStream(out)
        for name, body in files.items():
            stream.add(name, _Read(len(body), None, body))
        data_bytes = stream.close()
    return ArchiveSegment(key=key, bytes=out.size, files=stream.count, data_bytes=data_bytes)


class CopyCounting(Objects):
    def __init__(self, s3: Any) -> None:
        super().__init__(s3)
        self.copied: list[int] = []
        self.read: list[int] = []

    def copy_part(self, *args: Any) -> str:
        self.copied.append(args[-1] - args[-2])
        return super().copy_part(*args)

    def read_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        self.read.append(end - start)
        return super().read_range(bucket, key, start, end)


def test_a_zip_joined_from_shards_parts_holds_all_their_entries_copied_inside_s3(
    s3: Any,
) -> None:
    objects = CopyCounting(s3)
    big = bytes(range(256)) * (6 * MIB // 256)  # a part of its own: copied, not read
    bodies = [
        {"A.jpg": big, "B.jpg": b"b" * 1000},
        {"C.jpg": b"c" * 2000},
        {"D.jpg": b"d" * 3000, "E.jpg": b"e" * 10},
    ]
    shards = []
    for n, files in enumerate(bodies):
        part = _part(objects, keys.archive_segment_key("j1", "b", "web", n), files)
        shards.append(Shard(run_id="b", first="x", last="y", files=2, segments={"web": part}))
    joined = join_segments(
        "j1", "b", shards, jobs=None, objects=objects, bucket=BUCKET, lost=threading.Event()
    )  # type: ignore[arg-type]
    key = keys.archive_key("j1", "b", "web")
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert joined["web"] == {"key": key, "bytes": len(body), "files": 5}
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.testzip() is None
        assert {i.filename: archive.read(i) for i in archive.infolist()} == {
            k: v for files in bodies for k, v in files.items()
        }
    # The large part's entries were copied inside S3; what is read is small.
    assert len(objects.copied) == 1 and objects.copied[0] > 6 * MIB
    assert sum(objects.read) < MIB
    # The parts are gone once the ZIP is whole.
    assert not _exists(s3, keys.archive_key("j1", "b", "web") + ".parts/")
    assert _open_uploads(objects) == []


def test_parts_that_name_an_entry_alike_are_joined_by_reading_the_run_back(job: Job) -> None:
    # Run b's A.CR2 and A.dng fell in different shards, each part naming its entry A.jpg.
    web_a = {"A.jpg": job.body("b", "web", "A.CR2")}
    web_b = {"A.jpg": job.body("a", "web", "A.dng")}
    shards = [
        Shard(
            run_id="b",
            first="A.CR2",
            last="A.CR2",
            files=1,
            segments={"web": _part(job.objects, keys.archive_segment_key("j1", "b", "web", n), w)},
        )
        for n, w in enumerate((web_a, web_b))
    ]
    joined = join_segments(
        "j1", "b", shards, jobs=job.jobs, objects=job.objects, bucket=BUCKET, lost=threading.Event()
    )
    assert joined["web"]["files"] == 5
    web = job.zip("web")
    assert web["A.jpg"] == job.body("b", "web", "A.CR2")
    assert web["A (2).jpg"] == job.body("a", "web", "A.dng")


class ReadCounting(Objects):
    def __init__(self, s3: Any) -> None:
        super().__init__(s3)
        self.opened: list[str] = []

    def reading(self, bucket: str, key: str) -> Any:
        self.opened.append(key)
        return super().reading(bucket, key)


@pytest.mark.parametrize("damage", ["deleted", "garbage", "cut short", "an entry less"])
def test_a_part_gone_or_damaged_is_not_joined_the_zip_is_read_back_whole(
    job: Job, damage: str
) -> None:
    web = {
        "A.jpg": job.body("b", "web", "A.CR2"),
        "A (2).jpg": job.body("a", "web", "A.dng"),
        "B.jpg": job.body("a", "web", "B.dng"),
    }
    rest = {"C.jpg": job.body("b", "web", "C.dng"), "D.jpg": job.body("b", "web", "D.dng")}
    parts = [
        _part(job.objects, keys.archive_segment_key("j1", "b", "web", n), files)
        for n, files in enumerate((web, rest))
    ]
    damaged = parts[1]
    if damage == "deleted":
        job.s3.delete_object(Bucket=BUCKET, Key=damaged.key)
    elif damage == "garbage":
        job.s3.put_object(Bucket=BUCKET, Key=damaged.key, Body=os.urandom(damaged.bytes))
    elif damage == "cut short":
        body = job.s3.get_object(Bucket=BUCKET, Key=damaged.key)["Body"].read()
        job.s3.put_object(Bucket=BUCKET, Key=damaged.key, Body=body[: damaged.bytes - 30])
    else:  # its shard item counts one entry more than the part holds
        parts[1] = damaged.model_copy(update={"files": damaged.files + 1})
    shards = [
        Shard(run_id="b", first="x", last="y", files=1, segments={"web": part}) for part in parts
    ]
    objects = ReadCounting(job.s3)
    joined = join_segments(
        "j1", "b", shards, jobs=job.jobs, objects=objects, bucket=BUCKET, lost=threading.Event()
    )
    # Read back from the renditions: every file the run delivers, none lost or doubled.
    assert sorted(objects.opened) == sorted(
        keys.rendition_key("j1", run, "web", name, "jpg")
        for run, name in [
            ("b", "A.CR2"),
            ("a", "A.dng"),
            ("a", "B.dng"),
            ("b", "C.dng"),
            ("b", "D.dng"),
        ]
    )
    assert joined["web"]["files"] == 5
    assert job.zip("web") == {**web, **rest}
    assert not _exists(job.s3, keys.archive_key("j1", "b", "web") + ".parts/")
    assert _open_uploads(job.objects) == []


def test_a_central_directory_past_4_gib_is_zip64_and_reads_back_from_its_tail() -> None:
    far = 5 * 1024 * MIB
    infos = []
    for n in range(3):
        info = zipfile.ZipInfo(f"{n}.jpg", date_time=(2024, 1, 1, 0, 0, 0))
        info.file_size = info.compress_size = 1000
        info.CRC = 0
        info.header_offset = far + n * 1100
        infos.append(info)
    sink = Unseekable()
    sink.size = far + 3 * 1100  # as if the entries were written before
    write_central_directory(sink, infos)
    assert _EOCD64 in sink.data and _EOCD64_LOCATOR in sink.data
    read = central_directory(bytes(sink.data), far + 3 * 1100)
    assert [(i.filename, i.header_offset, i.file_size) for i in read] == [
        (i.filename, i.header_offset, 1000) for i in infos
    ]


class RangeRecorder:
    """Objects as MultipartWriter.append_object uses them: what is copied, what is read."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, int]] = []

    def start_parts(self, *_: Any) -> str:
        return "u"

    def put_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes) -> str:
        self.ops.append(("part", len(body)))
        return str(number)

    def copy_part(self, *args: Any) -> str:
        self.ops.append(("copy", args[-1] - args[-2]))
        return "c"

    def read_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        return b"x" * (end - start)

    def complete_parts(self, *_: Any) -> None:
        pass


@pytest.mark.parametrize(
    ("before", "appended", "ops"),
    [
        # Nothing buffered: a range of a part's size or more is copied whole.
        (0, 6 * MIB, [("copy", 6 * MIB)]),
        # A small range is read through, and the last part sent as it is.
        (0, MIB, [("part", MIB)]),
        # A part begun is topped up from the range; the rest is copied.
        (MIB, 20 * MIB, [("part", 8 * MIB), ("copy", 13 * MIB)]),
        # ...unless the rest is too small to copy: then it is read through too.
        (MIB, 10 * MIB, [("part", 8 * MIB), ("part", 3 * MIB)]),
    ],
)
def test_appending_an_object_copies_what_can_be_a_part_and_reads_the_rest(
    before: int, appended: int, ops: list[tuple[str, int]]
) -> None:
    objects = RangeRecorder()
    with MultipartWriter(objects, BUCKET, "out.zip") as out:  # type: ignore[arg-type]
        out.write(b"x" * before)
        out.append_object("part.zip", 0, appended)
    assert objects.ops == ops
    assert out.size == before + appended


def test_a_copy_longer_than_s3_copies_leaves_a_rest_it_can_still_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("darkroom.archive.MAX_COPY_PART_BYTES", 8 * MIB)
    objects = RangeRecorder()
    with MultipartWriter(objects, BUCKET, "out.zip") as out:  # type: ignore[arg-type]
        out.append_object("part.zip", 0, 10 * MIB)
    # 8 + 2 would leave a part too small to copy; 5 + 5 copies both.
    assert objects.ops == [("copy", 5 * MIB), ("copy", 5 * MIB)]


def test_a_join_that_fails_midway_leaves_no_zip_and_its_parts_for_the_retry(s3: Any) -> None:
    class FailingOnce(CopyCounting):
        failed = False

        def read_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
            if key.endswith("000001.zip") and not self.failed:
                FailingOnce.failed = True
                raise TransientError("S3: SlowDown")
            return super().read_range(bucket, key, start, end)

    objects = FailingOnce(s3)
    shards = [
        Shard(
            run_id="b",
            first="x",
            last="y",
            files=1,
            segments={
                "web": _part(
                    objects, keys.archive_segment_key("j1", "b", "web", n), {f"{n}.jpg": b"j" * 99}
                )
            },
        )
        for n in range(2)
    ]
    key = keys.archive_key("j1", "b", "web")

    def join() -> dict[str, Any]:
        return join_segments(
            "j1", "b", shards, jobs=None, objects=objects, bucket=BUCKET, lost=threading.Event()
        )  # type: ignore[arg-type]

    with pytest.raises(TransientError):
        join()
    # Nothing half-written at the ZIP's key, no upload left open, every part still there.
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])
    assert key not in {o["Key"] for o in listed} and _open_uploads(objects) == []
    assert all(_exists(s3, s.segments["web"].key) for s in shards)  # type: ignore[index]
    assert join()["web"]["files"] == 2
    assert not any(_exists(s3, s.segments["web"].key) for s in shards)  # type: ignore[index]
