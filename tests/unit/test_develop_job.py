"""The worker's job loop with in-memory stores: parallel development, one file's failure,
the manifest and the callback, and nothing half-uploaded left behind."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from darkroom import keys
from darkroom.aws.lease_store import Lease, LeaseState
from darkroom.imaging.fixtures import make_demo_shoot, write_corrupt_raw
from darkroom.jobs import FileProgress, FileStatus, Job, JobStatus
from darkroom.settings import WorkerSettings
from worker.job import JobRunner

JOB = "20240101-000000-abcdef"
RAW, PROCESSED = "raw-bucket", "processed-bucket"
WEB_THUMB = {"renditions": [{"name": "web", "long_edge": 300}, {"name": "thumb", "long_edge": 100}]}


class Objects:
    """S3 as a dict of bucket/key -> local file; uploads of one key can be made to fail."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.json: dict[str, Any] = {}
        self.fail_uploads: set[str] = set()
        self.deleted: list[str] = []
        self.lock = threading.Lock()

    def _path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / key

    def download(self, bucket: str, key: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self._path(bucket, key), dest)
        return dest

    def upload(self, path: Path, bucket: str, key: str, content_type: str) -> None:
        if any(part in key for part in self.fail_uploads):
            raise OSError("connection reset")
        target = self._path(bucket, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)

    def put_json(self, bucket: str, key: str, document: Mapping[str, Any]) -> None:
        self.json[key] = json.loads(json.dumps(document))

    def delete(self, bucket: str, key: str) -> None:
        self.deleted.append(key)
        self._path(bucket, key).unlink(missing_ok=True)

    def keys(self, bucket: str) -> list[str]:
        base = self.root / bucket
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


class Jobs:
    def __init__(self, job: Job) -> None:
        self.job = job
        self.progress: dict[str, FileProgress] = {}
        self.transitions: list[JobStatus] = []

    def get(self, job_id: str) -> Job:
        return self.job

    def transition(self, job_id: str, execution_arn: str, status: JobStatus, **_: Any) -> None:
        self.transitions.append(status)

    def record_file(self, job_id: str, arn: str, name: str, progress: FileProgress) -> None:
        self.progress[name] = progress


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
    def beat(self, instance_id: str, execution_arn: str) -> None:
        pass


def run_job(tmp_path: Path, files: list[Path], objects: Objects | None = None, workers: int = 2):
    objects = objects or Objects(tmp_path / "s3")
    for path in files:
        objects.upload(path, RAW, keys.raw_key(JOB, path.name), "application/octet-stream")
    jobs = Jobs(Job(JOB, JobStatus.STARTING, files=tuple(p.name for p in files), recipe=WEB_THUMB))
    callbacks = Callbacks()
    settings = WorkerSettings(
        raw_bucket=RAW,
        processed_bucket=PROCESSED,
        jobs_table="jobs",
        workers_table="workers",
        scratch_dir=tmp_path / "scratch",
        heartbeat_interval_seconds=30,
        develop_workers=workers,
    )
    runner = JobRunner(
        settings,
        jobs=jobs,  # type: ignore[arg-type]
        leases=Leases(),  # type: ignore[arg-type]
        objects=objects,  # type: ignore[arg-type]
        callbacks=callbacks,  # type: ignore[arg-type]
        instance_id="i-1",
        stopping=threading.Event(),
    )
    runner.run(
        Lease("i-1", LeaseState.LEASED, job_id=JOB, execution_arn="arn:exec:1", task_token="t")
    )
    return objects, jobs, callbacks


@pytest.fixture(scope="module")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_demo_shoot(tmp_path_factory.mktemp("shoot"), count=4, width=480, height=320)


def test_every_file_develops_in_parallel_and_the_manifest_lists_them_in_order(
    shoot: list[Path], tmp_path: Path
) -> None:
    objects, jobs, callbacks = run_job(tmp_path, shoot)
    assert callbacks.failed == []
    (output,) = callbacks.succeeded
    assert output == {
        "job_id": JOB,
        "files_total": 4,
        "files_done": 4,
        "files_failed": 0,
        "manifest_key": keys.processed_manifest_key(JOB),
    }
    manifest = objects.json[keys.processed_manifest_key(JOB)]
    assert [f["name"] for f in manifest["files"]] == [p.name for p in shoot]
    for entry in manifest["files"]:
        assert entry["status"] == "DONE"
        assert entry["develop_seconds"] > 0
        assert set(entry["outputs"]) == {"web", "thumb"}
    assert set(jobs.progress) == {p.name for p in shoot}
    assert len(objects.keys(PROCESSED)) == 8
    # The scratch disk is left clean.
    assert not any(p.is_file() for p in (tmp_path / "scratch").rglob("*"))


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


def test_nothing_developed_fails_the_task_with_all_files_failed(tmp_path: Path) -> None:
    bad = [
        write_corrupt_raw(tmp_path / "B0.dng", "empty"),
        write_corrupt_raw(tmp_path / "B1.dng", "garbage"),
    ]
    objects, _, callbacks = run_job(tmp_path, bad, workers=1)
    assert callbacks.succeeded == []
    ((error, cause),) = callbacks.failed
    assert error == "AllFilesFailed"
    assert "none of the 2 files" in cause
    assert objects.json[keys.processed_manifest_key(JOB)]["files_failed"] == 2
