"""The worker's job loop with in-memory stores: parallel development of a shard's files,
one file's failure, each file's record and the callback, heartbeats while it works,
transfers overlapping development, a bounded scratch disk, and nothing half-uploaded
left behind."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import PIL
import pytest

import darkroom
import worker.job
from darkroom import keys, recipes
from darkroom.aws.lease_store import Lease, LeaseState
from darkroom.aws.objects import ObjectStream
from darkroom.digests import recipe_sha256
from darkroom.imaging.develop import DevelopResult, develop_file
from darkroom.imaging.develop_processes import DevelopProcesses
from darkroom.imaging.fixtures import make_demo_shoot, write_corrupt_raw
from darkroom.imaging.fixtures.sidecars import darktable_xmp, lightroom_xmp
from darkroom.jobs import (
    Archive,
    ArchiveSegment,
    FileProgress,
    FileRecord,
    FileStatus,
    Job,
    JobStatus,
    Output,
    Shard,
)
from darkroom.recipes import Recipe
from darkroom.settings import WorkerSettings
from darkroom.sidecars import Sidecar
from worker.job import JobRunner

JOB = "20240101-000000-abcdef"
RUN = "20240101-000000-abcdef.rp-1"
EXECUTION = f"arn:aws:states:us-east-1:1:execution:m:{RUN}"
RAW, PROCESSED = "raw-bucket", "processed-bucket"
WEB_THUMB = {"renditions": [{"name": "web", "long_edge": 300}, {"name": "thumb", "long_edge": 100}]}


class Objects:
    """S3 as a dict of bucket/key -> local file; uploads of one key can be made to fail."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.json: dict[str, Any] = {}
        self.fail_uploads: set[str] = set()
        self.deleted: list[str] = []
        self.versions_read: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()
        self.uploads: dict[str, list[bytes]] = {}
        self.aborted: list[str] = []

    def _path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key

    def store(self, path: Path, bucket: str, key: str) -> None:
        target = self._path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)

    def download(self, bucket: str, key: str, dest: Path, *, version_id: str | None = None) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self.versions_read.append((key, version_id))
        shutil.copy(self._path(bucket, key), dest)
        return dest

    def upload(self, path: Path, bucket: str, key: str, content_type: str) -> None:
        if any(part in key for part in self.fail_uploads):
            raise OSError("connection reset")
        self.store(path, bucket, key)

    def put_json(self, bucket: str, key: str, document: Mapping[str, Any]) -> None:
        self.json[key] = json.loads(json.dumps(document))

    def delete(self, bucket: str, key: str) -> None:
        self.deleted.append(key)
        self._path(bucket, key).unlink(missing_ok=True)

    # Multipart uploads, enough for the ZIPs' parts: parts held in memory until complete.
    def start_parts(self, bucket: str, key: str, content_type: str) -> str:
        with self.lock:
            self.uploads[key] = []
        return key

    def put_part(self, bucket: str, key: str, upload_id: str, number: int, body: bytes) -> str:
        self.uploads[upload_id].append(bytes(body))
        return f"etag-{number}"

    def complete_parts(self, bucket: str, key: str, upload_id: str, etags: Any) -> None:
        target = self._path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"".join(self.uploads.pop(upload_id)))

    def abort_parts(self, bucket: str, key: str, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)
        self.aborted.append(key)

    @contextmanager
    def reading(self, bucket: str, key: str) -> Iterator[ObjectStream]:
        body = self._path(bucket, key).read_bytes()
        yield ObjectStream(size=len(body), modified=None, chunks=iter((body,)))

    def keys(self, bucket: str) -> list[str]:
        base = self.root / bucket
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


class Jobs:
    def __init__(
        self,
        job: Job,
        files: list[FileRecord],
        on_record: Callable[[str], None] | None = None,
    ) -> None:
        self.job = job
        self.records = files
        self.progress: dict[str, FileProgress] = {}
        self.transitions: list[JobStatus] = []
        self.on_record = on_record
        self.shard_item: Shard | None = None
        self.archives: dict[int, dict[str, Archive]] = {}
        self.segments: dict[int, dict[str, ArchiveSegment]] = {}

    def get(self, job_id: str) -> Job:
        return self.job

    def files(self, job_id: str) -> list[FileRecord]:
        return self.records

    def shard_files(self, job_id: str, run: str, shard: int, **_: Any) -> list[FileRecord]:
        return [r for r in self.records if r.run_id == run and r.shard == shard]

    def shard(self, job_id: str, run: str, shard: int) -> Shard | None:
        return self.shard_item

    def record_shard_archives(
        self, job_id: str, run: str, shard: int, archives: Mapping[str, Archive]
    ) -> None:
        self.archives[shard] = dict(archives)

    def record_shard_segments(
        self, job_id: str, run: str, shard: int, segments: Mapping[str, ArchiveSegment]
    ) -> None:
        self.segments[shard] = dict(segments)

    def transition(self, job_id: str, execution_arn: str, status: JobStatus, **_: Any) -> None:
        self.transitions.append(status)

    def record_file(self, job_id: str, arn: str, name: str, progress: FileProgress) -> bool:
        self.progress[name] = progress
        if self.on_record is not None:
            self.on_record(name)
        return True


class Callbacks:
    def __init__(self) -> None:
        self.succeeded: list[dict[str, Any]] = []
        self.failed: list[tuple[str, str]] = []

    def heartbeat(self, token: str) -> bool:
        return True

    def succeed(self, token: str, output: Mapping[str, Any]) -> None:
        self.succeeded.append(dict(output))

    def fail(self, token: str, error: str, cause: str) -> None:
        self.failed.append((error, cause))


class Leases:
    def beat(self, instance_id: str, execution_arn: str, *, shard: int = 0) -> None:
        pass


def run_job(
    tmp_path: Path,
    files: list[Path],
    objects: Objects | None = None,
    workers: int = 2,
    *,
    callbacks: Callbacks | None = None,
    leases: Leases | None = None,
    heartbeat_seconds: float = 30,
    on_record: Callable[[str], None] | None = None,
    file_timeout_seconds: float = 300,
    records: list[FileRecord] | None = None,
    shard: int = 0,
    shard_item: Shard | None = None,
    recipe: dict[str, Any] | None = None,
):
    objects = objects or Objects(tmp_path / "s3")
    for path in files:
        objects.store(path, RAW, keys.raw_key(JOB, path.name))
    jobs = Jobs(
        Job(
            job_id=JOB,
            name="Smith wedding",
            status=JobStatus.STARTING,
            files_total=len(files),
            recipe=recipe or WEB_THUMB,
        ),
        records or [FileRecord(name=p.name, run_id=RUN) for p in files],
        on_record,
    )
    jobs.shard_item = shard_item
    callbacks = callbacks or Callbacks()
    settings = WorkerSettings(
        raw_bucket=RAW,
        processed_bucket=PROCESSED,
        jobs_table="jobs",
        workers_table="workers",
        scratch_dir=tmp_path / "scratch",
        heartbeat_interval_seconds=heartbeat_seconds,
        develop_workers=workers,
        develop_file_timeout_seconds=file_timeout_seconds,
    )
    runner = JobRunner(
        settings,
        jobs=jobs,  # type: ignore[arg-type]
        leases=leases or Leases(),  # type: ignore[arg-type]
        objects=objects,  # type: ignore[arg-type]
        callbacks=callbacks,  # type: ignore[arg-type]
        instance_id="i-1",
        stopping=threading.Event(),
    )
    runner.run(
        Lease(
            instance_id="i-1",
            state=LeaseState.LEASED,
            job_id=JOB,
            execution_arn=EXECUTION,
            task_token="t",
            shard=shard,
        )
    )
    return objects, jobs, callbacks


@pytest.fixture(scope="module")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_demo_shoot(tmp_path_factory.mktemp("shoot"), count=4, width=480, height=320)


def test_every_file_develops_in_parallel_and_each_is_recorded_with_its_time(
    shoot: list[Path], tmp_path: Path
) -> None:
    objects, jobs, callbacks = run_job(tmp_path, shoot)
    assert callbacks.failed == []
    (output,) = callbacks.succeeded
    assert output == {
        "job_id": JOB,
        "run_id": RUN,
        "shard": 0,
        "files_developed": 4,
        "files_done": 4,
        "files_failed": 0,
        "files_skipped": 0,
    }
    # The shard writes no manifest: MarkDone writes the run's, from the file items.
    assert objects.json == {}
    assert set(jobs.progress) == {p.name for p in shoot}
    for progress in jobs.progress.values():
        assert progress.status is FileStatus.DONE
        assert progress.develop_seconds and progress.develop_seconds > 0
        assert set(progress.outputs) == {"web", "thumb"}
        assert progress.notes["white_balance"] == "camera"
        assert progress.notes["lens"].startswith("not corrected")
    assert len(objects.keys(PROCESSED)) == 8
    # Every rendition under the run's own prefix: an earlier run's are left as they are.
    assert all(k.startswith(keys.run_prefix(JOB, RUN)) for k in objects.keys(PROCESSED))
    # The scratch disk is left clean.
    assert not any(p.is_file() for p in (tmp_path / "scratch").rglob("*"))


def test_each_developed_file_records_its_lineage_for_the_manifest(
    shoot: list[Path], tmp_path: Path
) -> None:
    _, jobs, _ = run_job(tmp_path, shoot[:2])
    resolved = recipes.resolved(WEB_THUMB)
    for path in shoot[:2]:
        progress = jobs.progress[path.name]
        # The original's bytes as the worker read them, and the recipe with its defaults.
        assert progress.original_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert progress.recipe_sha256 == recipe_sha256(resolved)
        assert progress.software["darkroom"] == darkroom.__version__
        assert progress.software["libraw"].count(".") == 2
        assert progress.software["pillow"] == PIL.__version__
        assert set(progress.timings) == {"download", "decode", "render", "upload"}
        assert all(seconds >= 0 for seconds in progress.timings.values())
        for output in progress.outputs.values():
            uploaded = (tmp_path / "s3" / PROCESSED / output.key).read_bytes()
            assert output.sha256 == hashlib.sha256(uploaded).hexdigest()
            assert output.bytes == len(uploaded) and output.width and output.height


def test_a_file_whose_upload_fails_midway_records_no_lineage(
    shoot: list[Path], tmp_path: Path
) -> None:
    # Its web rendition went up, then S3 refused its thumbnail: no digest of either is
    # left to vouch for bytes that are not delivered.
    objects = Objects(tmp_path / "s3")
    objects.fail_uploads = {f"thumb/{shoot[0].stem}."}
    _, jobs, _ = run_job(tmp_path, shoot[:1], objects)
    progress = jobs.progress[shoot[0].name]
    assert (progress.status, progress.error_code) == (FileStatus.FAILED, "upload_failed")
    assert progress.outputs == {} and progress.original_sha256 is None
    assert progress.software == {} and progress.timings == {}
    assert objects.keys(PROCESSED) == []


def test_a_bad_file_fails_alone_with_its_code_and_reason(shoot: list[Path], tmp_path: Path) -> None:
    bad = write_corrupt_raw(tmp_path / "BROKEN.dng", "truncated")
    objects, jobs, callbacks = run_job(tmp_path, [shoot[0], bad, shoot[1]])
    (output,) = callbacks.succeeded
    assert (output["files_done"], output["files_failed"]) == (2, 1)
    progress = jobs.progress["BROKEN.dng"]
    assert progress.status is FileStatus.FAILED
    assert progress.error_code == "truncated"
    assert progress.error and progress.error.startswith("BROKEN.dng: ")
    assert not any("BROKEN" in key for key in objects.keys(PROCESSED))


def test_a_failed_upload_removes_that_files_other_renditions(
    shoot: list[Path], tmp_path: Path
) -> None:
    objects = Objects(tmp_path / "s3")
    stem = shoot[1].stem
    objects.fail_uploads = {f"thumb/{stem}."}
    objects, jobs, _ = run_job(tmp_path, shoot[:2], objects)
    assert jobs.progress[shoot[1].name].error_code == "upload_failed"
    # Its web rendition went up first and was taken down again: nothing half-done remains.
    assert not any(stem in key for key in objects.keys(PROCESSED))
    assert jobs.progress[shoot[0].name].status is FileStatus.DONE


def test_a_shard_of_bad_files_still_succeeds_with_its_counts(tmp_path: Path) -> None:
    # Its files carry their errors; MarkDone judges the run (AllFilesFailed) as a whole,
    # and a second attempt on another worker would fail them the same way.
    bad = [
        write_corrupt_raw(tmp_path / "B0.dng", "empty"),
        write_corrupt_raw(tmp_path / "B1.dng", "garbage"),
    ]
    _, jobs, callbacks = run_job(tmp_path, bad, workers=1)
    assert callbacks.failed == []
    (output,) = callbacks.succeeded
    assert (output["files_done"], output["files_failed"]) == (0, 2)
    assert {p.status for p in jobs.progress.values()} == {FileStatus.FAILED}


def test_a_shard_develops_only_its_own_pending_files(shoot: list[Path], tmp_path: Path) -> None:
    records = [
        FileRecord(name=shoot[0].name, run_id=RUN, shard=0),
        FileRecord(name=shoot[1].name, run_id=RUN, shard=1),
        FileRecord(name=shoot[2].name, run_id=RUN, shard=1),
        FileRecord(name=shoot[3].name, run_id=RUN, shard=2),
    ]
    objects, jobs, callbacks = run_job(tmp_path, shoot, records=records, shard=1)
    assert set(jobs.progress) == {shoot[1].name, shoot[2].name}
    (output,) = callbacks.succeeded
    assert (output["shard"], output["files_done"]) == (1, 2)
    assert {Path(k).stem for k in objects.keys(PROCESSED)} == {shoot[1].stem, shoot[2].stem}


def test_a_blank_frame_fails_that_file_alone_as_blank_frame(
    shoot: list[Path], tmp_path: Path
) -> None:
    blank = write_corrupt_raw(tmp_path / "BLANK.dng", "blank")
    objects, jobs, callbacks = run_job(tmp_path, [shoot[0], blank, shoot[1]])
    assert callbacks.failed == []
    (output,) = callbacks.succeeded
    assert (output["files_done"], output["files_failed"]) == (2, 1)
    progress = jobs.progress["BLANK.dng"]
    assert progress.status is FileStatus.FAILED
    assert progress.error_code == "blank_frame"
    assert progress.error and progress.error.startswith("BLANK.dng: ")
    assert jobs.progress[shoot[0].name].status is FileStatus.DONE
    assert jobs.progress[shoot[1].name].status is FileStatus.DONE
    assert not any("BLANK" in key for key in objects.keys(PROCESSED))


def hang_on_hang(src: Path, out_dir: Path, recipe: Recipe, *, threads: int) -> DevelopResult:
    """develop_file, except that a file named HANG* never finishes (as a decoder spinning
    on a hostile file would); a develop process imports it by name."""
    if src.stem.startswith("HANG"):
        time.sleep(3600)
    return develop_file(src, out_dir, recipe, threads=threads)


def test_a_file_past_the_time_limit_fails_timeout_and_the_job_goes_on(
    shoot: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        worker.job, "DevelopProcesses", functools.partial(DevelopProcesses, develop=hang_on_hang)
    )
    hung = Path(shutil.copy(shoot[2], tmp_path / "HANG.dng"))
    objects, jobs, callbacks = run_job(
        tmp_path, [shoot[0], hung, shoot[1]], workers=1, file_timeout_seconds=3
    )
    (output,) = callbacks.succeeded
    assert (output["files_done"], output["files_failed"]) == (2, 1)
    entry = jobs.progress["HANG.dng"]
    assert entry.status is FileStatus.FAILED
    assert entry.error_code == "timeout"
    assert entry.error == (
        "HANG.dng: not developed within the 3 s limit per file; its decoder was stopped"
    )
    assert jobs.progress[shoot[1].name].status is FileStatus.DONE
    assert not any("HANG" in key for key in objects.keys(PROCESSED))


# -- heartbeats ----------------------------------------------------------------------------
BEATS_WANTED = 3


class CountingCallbacks(Callbacks):
    def __init__(self) -> None:
        super().__init__()
        self.heartbeats: list[str] = []

    def heartbeat(self, token: str) -> bool:
        self.heartbeats.append(token)
        return True


class CountingLeases(Leases):
    """Lease beats; `enough` is set once BEATS_WANTED have come in."""

    def __init__(self) -> None:
        self.beats: list[tuple[str, str]] = []
        self.enough = threading.Event()

    def beat(self, instance_id: str, execution_arn: str, *, shard: int = 0) -> None:
        self.beats.append((instance_id, execution_arn))
        if len(self.beats) >= BEATS_WANTED:
            self.enough.set()


class SlowObjects(Objects):
    """A download that lasts until the heartbeat has beaten a few times (or 10 s pass)."""

    def __init__(self, root: Path, leases: CountingLeases, callbacks: CountingCallbacks) -> None:
        super().__init__(root)
        self.leases = leases
        self.callbacks = callbacks
        self.seen_while_downloading: tuple[int, int] | None = None

    def download(self, bucket: str, key: str, dest: Path, **_: Any) -> Path:
        self.leases.enough.wait(timeout=10)
        self.seen_while_downloading = (len(self.callbacks.heartbeats), len(self.leases.beats))
        return super().download(bucket, key, dest)


def test_the_worker_heartbeats_the_task_and_its_lease_while_it_works(
    shoot: list[Path], tmp_path: Path
) -> None:
    callbacks, leases = CountingCallbacks(), CountingLeases()
    objects = SlowObjects(tmp_path / "s3", leases, callbacks)
    _, jobs, _ = run_job(
        tmp_path,
        shoot[:1],
        objects,
        workers=1,
        callbacks=callbacks,
        leases=leases,
        heartbeat_seconds=0.05,
    )
    assert jobs.progress[shoot[0].name].status is FileStatus.DONE
    (output,) = callbacks.succeeded
    assert output["files_done"] == 1
    # The beats came while the job was still downloading, not only at its start.
    assert objects.seen_while_downloading is not None
    task_beats, lease_beats = objects.seen_while_downloading
    assert task_beats >= BEATS_WANTED and lease_beats >= BEATS_WANTED
    # Every beat names this job's task token and this instance's lease for its execution.
    assert set(callbacks.heartbeats) == {"t"}
    assert set(leases.beats) == {("i-1", EXECUTION)}


# -- transfers, development and the scratch disk ------------------------------------------
TRANSFER_SECONDS = 0.03  # long enough for a transfer to be seen alongside a develop


@dataclass(frozen=True)
class Span:
    what: str  # "download", "upload" or "develop"
    stem: str
    start: float
    end: float

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


class TimedObjects(Objects):
    """Transfers that take a moment, each noted with its file and when it ran; and which
    files are on the scratch disk: from their download until the job records them."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.spans: list[Span] = []
        self.on_scratch: set[str] = set()
        self.most_on_scratch = 0

    def _timed(self, what: str, stem: str, transfer: Callable[[], Any]) -> None:
        start = time.monotonic()
        time.sleep(TRANSFER_SECONDS)
        transfer()
        with self.lock:
            self.spans.append(Span(what, stem, start, time.monotonic()))

    def download(self, bucket: str, key: str, dest: Path, **_: Any) -> Path:
        with self.lock:
            self.on_scratch.add(dest.name)
            self.most_on_scratch = max(self.most_on_scratch, len(self.on_scratch))
        self._timed(
            "download", dest.stem, lambda: super(TimedObjects, self).download(bucket, key, dest)
        )
        return dest

    def upload(self, path: Path, bucket: str, key: str, content_type: str) -> None:
        self._timed(
            "upload",
            Path(key).stem,
            lambda: super(TimedObjects, self).upload(path, bucket, key, content_type),
        )

    def finished(self, name: str) -> None:
        with self.lock:
            self.on_scratch.discard(name)


def record_develops(monkeypatch: pytest.MonkeyPatch) -> list[Span]:
    """The job's real develop processes, noting when each file's development ran: it ends when
    its result arrives and lasted as long as the developer measured."""
    spans: list[Span] = []

    class TimedProcesses(DevelopProcesses):
        def submit(
            self,
            src: Path,
            out_dir: Path,
            recipe: Recipe,
            sidecar: Sidecar | None = None,
            *,
            watermark: Path | None = None,
        ) -> Future[Any]:
            future = super().submit(src, out_dir, recipe, sidecar, watermark=watermark)

            def done(f: Future[Any]) -> None:
                end = time.monotonic()
                if not f.cancelled() and f.exception() is None:
                    seconds = f.result().decode_seconds + f.result().render_seconds
                    spans.append(Span("develop", Path(src).stem, end - seconds, end))

            future.add_done_callback(done)
            return future

    monkeypatch.setattr(worker.job, "DevelopProcesses", TimedProcesses)
    return spans


def copies(shoot: list[Path], directory: Path, count: int) -> list[Path]:
    """`count` distinct files from the shoot's frames, for jobs longer than the pool."""
    directory.mkdir()
    return [
        Path(shutil.copy(shoot[i % len(shoot)], directory / f"F{i:02d}.dng")) for i in range(count)
    ]


def test_transfers_run_while_other_files_develop(
    shoot: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    develops = record_develops(monkeypatch)
    objects = TimedObjects(tmp_path / "s3")
    files = copies(shoot, tmp_path / "in", 6)
    _, jobs, callbacks = run_job(tmp_path, files, objects, workers=2)
    assert callbacks.failed == []
    assert {p.status for p in jobs.progress.values()} == {FileStatus.DONE}
    assert {d.stem for d in develops} == {p.stem for p in files}
    overlapping = [
        (transfer, develop)
        for transfer in objects.spans
        for develop in develops
        if transfer.stem != develop.stem and transfer.overlaps(develop)
    ]
    assert overlapping, (objects.spans, develops)


def test_at_most_twice_the_pool_of_files_are_on_the_scratch_disk_at_once(
    shoot: list[Path], tmp_path: Path
) -> None:
    objects = TimedObjects(tmp_path / "s3")
    files = copies(shoot, tmp_path / "in", 7)
    workers = 1
    _, jobs, callbacks = run_job(
        tmp_path, files, objects, workers=workers, on_record=objects.finished
    )
    (output,) = callbacks.succeeded
    assert output["files_done"] == len(jobs.progress) == 7
    # worker/job.py keeps 2 files per developing process in flight: one developing, one
    # downloading or uploading.
    assert objects.most_on_scratch <= 2 * workers
    assert objects.most_on_scratch >= 2  # several files at once, not one after another
    assert objects.on_scratch == set()


# -- the execution ends mid-run ----------------------------------------------------------
class EndingCallbacks(Callbacks):
    """The task is over (its execution stopped) once `ended` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.ended = threading.Event()

    def heartbeat(self, token: str) -> bool:
        return not self.ended.is_set()


class SlowDownloads(Objects):
    def download(self, bucket: str, key: str, dest: Path, *, version_id: str | None = None) -> Path:
        time.sleep(0.5)
        return super().download(bucket, key, dest, version_id=version_id)


def test_a_worker_whose_execution_ended_stops_within_a_heartbeat_and_uploads_nothing_more(
    shoot: list[Path], tmp_path: Path
) -> None:
    callbacks = EndingCallbacks()
    objects = SlowDownloads(tmp_path / "s3")
    # One process, two files in flight: the first two download together; the execution
    # is stopped as the first is recorded, while the third starts downloading.
    started = time.monotonic()
    _, jobs, _ = run_job(
        tmp_path,
        shoot,
        objects,
        workers=1,
        callbacks=callbacks,
        heartbeat_seconds=0.05,
        on_record=lambda name: callbacks.ended.set(),
    )
    assert time.monotonic() - started < 5
    # Nothing reported: the task is gone, and the state machine has moved on.
    assert callbacks.succeeded == [] and callbacks.failed == []
    uploaded = {Path(key).stem for key in objects.keys(PROCESSED)}
    # Only files in flight when it ended went up; the rest were never developed.
    assert uploaded <= {shoot[0].stem, shoot[1].stem}, uploaded
    # The two in flight race to the develop pool: whichever was recorded first ended it.
    assert jobs.progress and set(jobs.progress) <= {shoot[0].name, shoot[1].name}
    # A file stopped midway is not recorded as failed: it stays pending, so the shard's
    # next attempt (the retry's token on the same lease) develops it.
    assert {p.status for p in jobs.progress.values()} == {FileStatus.DONE}, jobs.progress


def test_each_original_is_read_in_its_registered_version_and_recorded_files_are_not_redone(
    shoot: list[Path], tmp_path: Path
) -> None:
    earlier = FileProgress(
        status=FileStatus.DONE,
        outputs={"web": Output(key=keys.rendition_key(JOB, RUN, "web", shoot[0].name, "jpg"))},
    )
    records = [
        # Recorded by this run before its worker was taken over: not developed again.
        FileRecord(name=shoot[0].name, run_id=RUN, status=FileStatus.DONE, **_outputs(earlier)),
        FileRecord(name=shoot[1].name, run_id=RUN, original_version="v-1"),
        FileRecord(name=shoot[2].name, run_id=RUN),  # an unversioned bucket
        # Not this run's: another run covers it.
        FileRecord(name=shoot[3].name, run_id="an-earlier-run", status=FileStatus.DONE),
    ]
    objects, jobs, callbacks = run_job(tmp_path, shoot, records=records)
    assert callbacks.failed == []
    assert sorted(objects.versions_read) == [
        (keys.raw_key(JOB, shoot[1].name), "v-1"),
        (keys.raw_key(JOB, shoot[2].name), None),
    ]
    assert set(jobs.progress) == {shoot[1].name, shoot[2].name}
    assert callbacks.succeeded[0]["files_developed"] == 2


def _outputs(progress: FileProgress) -> dict[str, Any]:
    return {"outputs": progress.outputs}


# -- the run's only shard packages it ------------------------------------------------
def _only_shard(files: list[Path]) -> Shard:
    names = sorted(p.name for p in files)
    return Shard(run_id=RUN, first=names[0], last=names[-1], files=len(names), packages=True)


def _zip_names(objects: Objects, key: str) -> list[str]:
    path = objects.root / PROCESSED / key
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        return sorted(archive.namelist())


class CountingReads(Objects):
    """The fake S3, counting what is read back of the processed bucket."""

    def __init__(self, root: Path, *, fail_parts: bool = False) -> None:
        super().__init__(root)
        self.read_back: list[str] = []
        self.fail_parts = fail_parts

    @contextmanager
    def reading(self, bucket: str, key: str) -> Iterator[ObjectStream]:
        self.read_back.append(key)
        with super().reading(bucket, key) as stream:
            yield stream

    def start_parts(self, bucket: str, key: str, content_type: str) -> str:
        if self.fail_parts:
            raise OSError("S3 refused the multipart upload")
        return super().start_parts(bucket, key, content_type)


def test_the_only_shards_worker_writes_the_runs_zips_as_its_files_develop(
    shoot: list[Path], tmp_path: Path
) -> None:
    objects = CountingReads(tmp_path / "s3")
    _, jobs, callbacks = run_job(
        tmp_path, shoot[:3], objects=objects, shard_item=_only_shard(shoot[:3])
    )
    (output,) = callbacks.succeeded
    assert sorted(output["archives"]) == ["thumb", "web"]
    web = jobs.archives[0]["web"]
    assert web.key == keys.archive_key(JOB, RUN, "web") and web.files == 3
    # Written from the scratch disk as each file developed: nothing read back from S3.
    assert objects.read_back == []
    assert _zip_names(objects, web.key) == sorted(f"{p.stem}.jpg" for p in shoot[:3])
    assert jobs.segments == {} and objects.uploads == {}
    # Each file's renditions left the scratch disk once they were in the ZIPs.
    assert not any((tmp_path / "scratch").rglob("*.jpg"))


def test_zip_entries_take_the_recipes_filename_template(shoot: list[Path], tmp_path: Path) -> None:
    records = [FileRecord(name=p.name, run_id=RUN, seq=i) for i, p in enumerate(shoot[:3], 1)]
    objects, jobs, _ = run_job(
        tmp_path,
        shoot[:3],
        records=records,
        shard_item=_only_shard(shoot[:3]),
        recipe={**WEB_THUMB, "filename": "{job}-{seq}"},
    )
    web = jobs.archives[0]["web"]
    assert _zip_names(objects, web.key) == [f"Smith wedding-000{i}.jpg" for i in (1, 2, 3)]


def test_zips_that_cannot_be_written_as_files_develop_are_read_back_by_the_shards_worker(
    shoot: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded_before: list[int] = []

    def package_run(job_id: str, run: str, *, jobs: Jobs, **_: Any) -> dict[str, Any]:
        # Read back once every file of the run is recorded, never before.
        recorded_before.append(len(jobs.progress))
        zip_ = Archive(key=keys.archive_key(job_id, run, "web"), bytes=10, files=2)
        return {"archives": {"web": zip_.model_dump(mode="json")}}

    monkeypatch.setattr(worker.job.package, "package_run", package_run)
    objects = CountingReads(tmp_path / "s3", fail_parts=True)
    _, jobs, callbacks = run_job(
        tmp_path, shoot[:2], objects=objects, shard_item=_only_shard(shoot[:2])
    )
    assert recorded_before == [2]
    (output,) = callbacks.succeeded
    assert output["archives"]["web"]["files"] == 2 and output["files_done"] == 2
    # Recorded on the shard item, where MarkDone reads them.
    assert jobs.archives[0]["web"].key.endswith("/web.zip")


def test_packaging_that_fails_on_the_shards_worker_leaves_the_run_without_zips(
    shoot: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def package_run(*_: Any, **__: Any) -> dict[str, Any]:
        raise OSError("S3 said no")

    monkeypatch.setattr(worker.job.package, "package_run", package_run)
    objects = CountingReads(tmp_path / "s3", fail_parts=True)
    _, jobs, callbacks = run_job(
        tmp_path, shoot[:1], objects=objects, shard_item=_only_shard(shoot[:1])
    )
    # The shard itself succeeds: its files are developed and delivered, without ZIPs.
    (output,) = callbacks.succeeded
    assert output["archives"] is None and output["files_done"] == 1
    assert callbacks.failed == [] and jobs.archives == {}


def test_a_shard_of_several_writes_its_part_of_each_zip_for_the_packager(
    shoot: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    called: list[str] = []
    monkeypatch.setattr(worker.job.package, "package_run", lambda *a, **k: called.append("x"))
    names = sorted(p.name for p in shoot[:2])
    one_of_two = Shard(run_id=RUN, first=names[0], last=names[-1], files=2, packages=False)
    objects = CountingReads(tmp_path / "s3")
    _, jobs, callbacks = run_job(tmp_path, shoot[:2], objects=objects, shard_item=one_of_two)
    assert called == [] and "archives" not in callbacks.succeeded[0]
    part = jobs.segments[0]["web"]
    assert part.key == keys.archive_segment_key(JOB, RUN, "web", 0) and part.files == 2
    # A whole ZIP itself, whose entries end where its central directory begins.
    assert _zip_names(objects, part.key) == sorted(f"{Path(n).stem}.jpg" for n in names)
    with zipfile.ZipFile(objects.root / PROCESSED / part.key) as archive:
        assert archive.start_dir == part.data_bytes
    assert objects.read_back == []


def test_a_shards_second_attempt_puts_the_first_attempts_files_in_its_parts(
    shoot: list[Path], tmp_path: Path
) -> None:
    objects = CountingReads(tmp_path / "s3")
    # The first attempt developed shoot[0] and was lost: its renditions are in S3.
    earlier_key = keys.rendition_key(JOB, RUN, "web", shoot[0].name, "jpg")
    objects.store(shoot[0], PROCESSED, earlier_key)  # any bytes: the ZIP stores them
    records = [
        FileRecord(
            name=shoot[0].name,
            run_id=RUN,
            status=FileStatus.DONE,
            outputs={"web": Output(key=earlier_key)},
        ),
        FileRecord(name=shoot[1].name, run_id=RUN),
    ]
    names = sorted(p.name for p in shoot[:2])
    one_of_two = Shard(run_id=RUN, first=names[0], last=names[-1], files=2, packages=False)
    _, jobs, _ = run_job(
        tmp_path, shoot[:2], objects=objects, records=records, shard_item=one_of_two
    )
    assert set(jobs.progress) == {shoot[1].name}  # not developed twice
    assert objects.read_back == [earlier_key]  # read back: it is not on this disk
    assert jobs.segments[0]["web"].files == 2 and jobs.segments[0]["thumb"].files == 1
    web = _zip_names(objects, jobs.segments[0]["web"].key)
    assert web == sorted([f"{shoot[0].stem}.jpg", f"{shoot[1].stem}.jpg"])


# -- XMP sidecars -------------------------------------------------------------------------
def test_sidecars_are_honoured_a_reject_is_skipped_and_a_bad_one_fails_its_file_alone(
    shoot: list[Path], tmp_path: Path
) -> None:
    objects = Objects(tmp_path / "s3")
    sidecars = {
        shoot[0].name: ("DRM_0001.xmp", lightroom_xmp(rating=-1)),
        shoot[1].name: ("DRM_0002.dng.xmp", darktable_xmp(exposure=0.5, compressed=True)),
        shoot[2].name: ("DRM_0003.xmp", b"<x:xmpmeta broken"),
    }
    for xmp_name, data in sidecars.values():
        path = tmp_path / xmp_name
        path.write_bytes(data)
        objects.store(path, RAW, keys.raw_key(JOB, xmp_name))
    records = [
        FileRecord(
            name=p.name,
            run_id=RUN,
            sidecar=sidecars[p.name][0] if p.name in sidecars else None,
            sidecar_version="v-xmp" if p.name in sidecars else None,
        )
        for p in shoot
    ]
    objects, jobs, callbacks = run_job(tmp_path, shoot, objects, records=records)
    (output,) = callbacks.succeeded
    assert (output["files_done"], output["files_failed"], output["files_skipped"]) == (2, 1, 1)
    rejected = jobs.progress[shoot[0].name]
    assert rejected.status is FileStatus.SKIPPED and not rejected.outputs
    assert rejected.notes["sidecar"] == (
        "Lightroom: rated -1 (rejected) in DRM_0001.xmp; not developed"
    )
    # The reject cost no download of its RAW; every sidecar was read at its version.
    read = dict(objects.versions_read)
    assert keys.raw_key(JOB, shoot[0].name) not in read
    assert read[keys.raw_key(JOB, "DRM_0002.dng.xmp")] == "v-xmp"
    edited = jobs.progress[shoot[1].name]
    assert edited.status is FileStatus.DONE
    assert edited.notes["sidecar"] == "darktable: exposure +0.5 EV"
    broken = jobs.progress[shoot[2].name]
    assert broken.status is FileStatus.FAILED and broken.error_code == "sidecar_unreadable"
    assert broken.error is not None and "DRM_0003.xmp: sidecar is not valid XML" in broken.error
    assert jobs.progress[shoot[3].name].status is FileStatus.DONE


def test_a_sidecar_that_cannot_be_downloaded_fails_its_file_and_the_rest_go_on(
    shoot: list[Path], tmp_path: Path
) -> None:
    # The sidecar was registered, then lost from the bucket before the worker read it.
    records = [
        FileRecord(name=p.name, run_id=RUN, sidecar="DRM_0001.xmp" if i == 0 else None)
        for i, p in enumerate(shoot)
    ]
    _, jobs, callbacks = run_job(tmp_path, shoot, records=records)
    (output,) = callbacks.succeeded
    assert (output["files_done"], output["files_failed"]) == (3, 1)
    lost = jobs.progress[shoot[0].name]
    assert lost.error_code == "download_failed"
    assert lost.error is not None and "could not download DRM_0001.xmp" in lost.error
