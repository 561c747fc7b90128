"""What a file delivers: the job's pointer to its last finished run, resolved per file,
copied into each file item when the next run registers. Marking a run done writes the
job item alone, after one read of the file items."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from darkroom import keys, names, pipeline
from darkroom.aws.ddb_codec import from_item
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.delivery import resolved
from darkroom.jobs import (
    DeliveredRun,
    FileProgress,
    FileRecord,
    FileStatus,
    JobStatus,
    Output,
)
from tests.unit.test_pipeline_steps import EXEC_A, EXEC_B, PROCESSED, World, record_calls

EXEC_C = "arn:aws:states:us-east-1:123456789012:execution:m:c"
FILES = ("A.DNG", "B.DNG")


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield World()


def _web(job_id: str, execution: str, name: str) -> dict[str, Output]:
    return {
        "web": Output(key=keys.rendition_key(job_id, keys.run_id(execution), "web", name, "jpg"))
    }


def _run(world: World, job_id: str, execution: str, done: Mapping[str, bool | None]) -> None:
    """Register `execution` and record each file as developed (its rendition written),
    failed, or (None) skipped as its sidecar rejects it."""
    world.register(job_id, execution)
    world.jobs.transition(job_id, execution, JobStatus.STARTING)
    world.jobs.transition(job_id, execution, JobStatus.PROCESSING)
    for name, developed in done.items():
        if developed:
            outputs = _web(job_id, execution, name)
            world.s3.put_object(Bucket=PROCESSED, Key=outputs["web"].key, Body=b"jpg")
            progress = FileProgress(status=FileStatus.DONE, outputs=outputs)
        elif developed is None:
            progress = FileProgress(status=FileStatus.SKIPPED, notes={"sidecar": "rejected"})
        else:
            progress = FileProgress(status=FileStatus.FAILED, error_code="x", error=name)
        world.jobs.record_file(job_id, execution, name, progress)


def _mark_done(
    world: World, job_id: str, execution: str, *, jobs: JobStore | None = None
) -> dict[str, Any]:
    return pipeline.mark_done(
        job_id,
        execution,
        None,
        jobs=jobs or world.jobs,
        objects=world.objects,
        processed_bucket=PROCESSED,
    )


def _delivered(world: World, job_id: str) -> dict[str, tuple[str | None, dict[str, Output]]]:
    return {r.name: (r.delivered_run, r.delivered) for r in world.jobs.files(job_id)}


def _stored(world: World, job_id: str, name: str) -> FileRecord:
    """The file item as DynamoDB holds it, unresolved."""
    item = world.ddb.get_item(
        TableName="jobs",
        Key={names.JOB_ID: {"S": job_id}, names.SORT_KEY: {"S": names.FILE_ITEM_PREFIX + name}},
        ConsistentRead=True,
    )["Item"]
    return FileRecord.model_validate(from_item(item))


def _missing(world: World, job_id: str) -> list[str]:
    """Delivered renditions whose object is gone."""
    there = {o["Key"] for o in world.objects.list(PROCESSED, keys.processed_prefix(job_id))}
    return [
        o.key for r in world.jobs.files(job_id) for o in r.delivered.values() if o.key not in there
    ]


# -- resolving, without AWS -------------------------------------------------------------
def test_a_file_delivers_the_pointers_run_only_while_its_attempt_is_that_runs_and_developed() -> (
    None
):
    earlier = {"web": Output(key="processed/j/a/web/A.jpg")}
    now = {"web": Output(key="processed/j/b/web/A.jpg")}
    pointer = DeliveredRun(run_id="b", finished_at="2026-01-02T00:00:00.000Z")
    developed = FileRecord(
        name="A.DNG",
        run_id="b",
        status=FileStatus.DONE,
        outputs=now,
        delivered_run="a",
        delivered=earlier,
        delivered_at="2026-01-01T00:00:00.000Z",
    )
    assert resolved(developed, pointer).model_dump() == {
        **developed.model_dump(),
        "delivered_run": "b",
        "delivered": {"web": now["web"].model_dump()},
        "delivered_at": "2026-01-02T00:00:00.000Z",
    }
    failed = developed.model_copy(update={"status": FileStatus.FAILED, "outputs": {}})
    pending = developed.model_copy(update={"run_id": "c", "status": FileStatus.PENDING})
    for record in (failed, pending):
        assert resolved(record, pointer) == record
    assert resolved(developed, None) == developed


# -- marking a run done -----------------------------------------------------------------
def test_marking_a_run_done_writes_no_file_item(world: World) -> None:
    world.upload("j1", *FILES, manifest={})
    _run(world, "j1", EXEC_A, {"A.DNG": True, "B.DNG": False})
    writes = record_calls(world, {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"})
    out = _mark_done(world, "j1", EXEC_A)
    assert (out["status"], out["files_delivered"]) == ("DONE_WITH_ERRORS", 1)
    assert [(op, params["Key"]["sk"]["S"]) for op, params in writes] == [
        ("UpdateItem", names.JOB_ITEM)
    ]
    job = world.jobs.get("j1")
    assert job.delivered is not None and job.delivered.run_id == "a"
    assert _delivered(world, "j1") == {
        "A.DNG": ("a", _web("j1", EXEC_A, "A.DNG")),
        "B.DNG": (None, {}),
    }
    assert world.jobs.file("j1", "A.DNG").delivered_at == job.delivered.finished_at  # type: ignore[union-attr]
    # The item still holds what it held: the pointer delivers it.
    assert _stored(world, "j1", "A.DNG").delivered == {}


def test_marking_done_reads_the_file_items_once(world: World) -> None:
    world.upload("j2", *FILES, manifest={})
    _run(world, "j2", EXEC_A, {"A.DNG": True, "B.DNG": True})
    _mark_done(world, "j2", EXEC_A)
    _run(world, "j2", EXEC_B, {"A.DNG": True, "B.DNG": False})
    queries = record_calls(world, {"Query"})
    assert _mark_done(world, "j2", EXEC_B)["files_delivered"] == 2
    # Two files fit one page: one query is one pass.
    assert len(queries) == 1


def test_a_file_failed_in_a_later_run_keeps_what_the_pointer_delivered_before(
    world: World,
) -> None:
    world.upload("j3", *FILES, manifest={})
    _run(world, "j3", EXEC_A, {"A.DNG": True, "B.DNG": True})
    _mark_done(world, "j3", EXEC_A)
    finished_a = world.jobs.file("j3", "B.DNG").delivered_at  # type: ignore[union-attr]
    _run(world, "j3", EXEC_B, {"A.DNG": True, "B.DNG": False})
    # Until run b finishes, both deliver run a's renditions.
    assert _delivered(world, "j3") == {n: ("a", _web("j3", EXEC_A, n)) for n in FILES}
    out = _mark_done(world, "j3", EXEC_B)
    assert (out["status"], out["files_delivered"]) == ("DONE_WITH_ERRORS", 2)
    after_b = {
        "A.DNG": ("b", _web("j3", EXEC_B, "A.DNG")),
        "B.DNG": ("a", _web("j3", EXEC_A, "B.DNG")),
    }
    assert _delivered(world, "j3") == after_b
    assert world.jobs.file("j3", "B.DNG").delivered_at == finished_a  # type: ignore[union-attr]
    # A run that fails outright moves nothing, and the next one starts from the same.
    _run(world, "j3", EXEC_C, {"A.DNG": False})
    pipeline.mark_failed("j3", EXEC_C, {"Error": "X", "Cause": "y"}, jobs=world.jobs)
    assert _delivered(world, "j3") == after_b
    assert _missing(world, "j3") == []


def test_a_file_rejected_in_a_later_run_delivers_nothing_once_that_run_is_done(
    world: World,
) -> None:
    world.upload("j9", *FILES, manifest={})
    _run(world, "j9", EXEC_A, {"A.DNG": True, "B.DNG": True})
    _mark_done(world, "j9", EXEC_A)
    # The photographer rejects B in Lightroom and the job is reprocessed.
    _run(world, "j9", EXEC_B, {"A.DNG": True, "B.DNG": None})
    assert _delivered(world, "j9")["B.DNG"] == ("a", _web("j9", EXEC_A, "B.DNG"))
    out = _mark_done(world, "j9", EXEC_B)
    assert (out["status"], out["files_delivered"]) == ("DONE", 1)
    assert _delivered(world, "j9")["B.DNG"][1] == {}
    # Its earlier renditions go with what nothing delivers any more.
    there = {o["Key"] for o in world.objects.list(PROCESSED, keys.processed_prefix("j9"))}
    assert _web("j9", EXEC_A, "B.DNG")["web"].key not in there


def test_registering_a_run_copies_the_delivered_renditions_into_each_file_item(
    world: World,
) -> None:
    world.upload("j4", *FILES, manifest={})
    _run(world, "j4", EXEC_A, {"A.DNG": True, "B.DNG": False})
    _mark_done(world, "j4", EXEC_A)
    finished_a = world.jobs.get("j4").delivered.finished_at  # type: ignore[union-attr]
    world.register("j4", EXEC_B)
    a, b = _stored(world, "j4", "A.DNG"), _stored(world, "j4", "B.DNG")
    assert (a.run_id, a.status, a.outputs) == ("b", FileStatus.PENDING, {})
    assert (a.delivered_run, a.delivered, a.delivered_at) == (
        "a",
        _web("j4", EXEC_A, "A.DNG"),
        finished_a,
    )
    assert (b.delivered_run, b.delivered) == (None, {})


def test_a_file_the_next_run_does_not_list_keeps_what_it_delivered(world: World) -> None:
    world.upload("j5", *FILES, manifest={})
    _run(world, "j5", EXEC_A, {"A.DNG": True, "B.DNG": True})
    _mark_done(world, "j5", EXEC_A)
    # B's original is gone: run b lists A alone, and B's item keeps run a's attempt.
    world.s3.delete_object(Bucket="raw-bucket", Key="raw/j5/B.DNG")
    _run(world, "j5", EXEC_B, {"A.DNG": True})
    assert _stored(world, "j5", "B.DNG").run_id == "a"
    assert _mark_done(world, "j5", EXEC_B)["files_delivered"] == 2
    assert _delivered(world, "j5") == {
        "A.DNG": ("b", _web("j5", EXEC_B, "A.DNG")),
        "B.DNG": ("a", _web("j5", EXEC_A, "B.DNG")),
    }
    assert _missing(world, "j5") == []


# -- a MarkDone that fails midway ---------------------------------------------------------
class _FailingOnce:
    def __init__(self) -> None:
        self.failed = False

    def fail(self) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("Lambda lost midway")


class _UploadFailingOnce(Objects, _FailingOnce):
    def __init__(self, s3: Any) -> None:
        Objects.__init__(self, s3)
        _FailingOnce.__init__(self)

    def upload(self, path: Path, bucket: str, key: str, content_type: str) -> None:
        self.fail()
        super().upload(path, bucket, key, content_type)


class _TransitionFailingOnce(JobStore, _FailingOnce):
    """The job's write fails once, before it is made or (`after`) once it is made."""

    def __init__(self, ddb: Any, *, after: bool) -> None:
        JobStore.__init__(self, "jobs", ddb)
        _FailingOnce.__init__(self)
        self.after = after

    def transition(self, *args: Any, **kwargs: Any) -> Any:
        if not self.after:
            self.fail()
        job = super().transition(*args, **kwargs)
        if self.after:
            self.fail()
        return job


@pytest.mark.parametrize("where", ["manifest upload", "before the job's write", "after it"])
def test_a_mark_done_failing_midway_then_retried_delivers_the_same_and_loses_nothing(
    world: World, where: str
) -> None:
    world.upload("j6", *FILES, manifest={})
    _run(world, "j6", EXEC_A, {"A.DNG": True, "B.DNG": True})
    _mark_done(world, "j6", EXEC_A)
    _run(world, "j6", EXEC_B, {"A.DNG": True, "B.DNG": False})
    objects, jobs = world.objects, world.jobs
    if where == "manifest upload":
        objects = _UploadFailingOnce(world.s3)
    else:
        jobs = _TransitionFailingOnce(world.ddb, after=where == "after it")

    def mark_done() -> dict[str, Any]:
        return pipeline.mark_done(
            "j6", EXEC_B, None, jobs=jobs, objects=objects, processed_bucket=PROCESSED
        )

    with pytest.raises(RuntimeError, match="midway"):
        mark_done()
    # Whatever the files deliver meanwhile is there to download.
    assert _missing(world, "j6") == []
    out = mark_done()
    assert (out["status"], out["files_delivered"]) == ("DONE_WITH_ERRORS", 2)
    assert _delivered(world, "j6") == {
        "A.DNG": ("b", _web("j6", EXEC_B, "A.DNG")),
        "B.DNG": ("a", _web("j6", EXEC_A, "B.DNG")),
    }
    assert _missing(world, "j6") == []
    # Run a's rendition of A, delivered no more, is gone.
    there = {o["Key"] for o in world.objects.list(PROCESSED, keys.processed_prefix("j6"))}
    assert _web("j6", EXEC_A, "A.DNG")["web"].key not in there


def test_marking_done_lists_only_earlier_runs_folders_for_what_they_left(world: World) -> None:
    world.upload("j9", *FILES, manifest={})
    _run(world, "j9", EXEC_A, {"A.DNG": True, "B.DNG": True})
    _mark_done(world, "j9", EXEC_A)
    _run(world, "j9", EXEC_B, {"A.DNG": True, "B.DNG": False})
    listed: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        listed.append(f"{params['Prefix']}{'|' if params.get('Delimiter') else ''}")

    world.s3.meta.events.register("provide-client-params.s3.ListObjectsV2", record)
    _mark_done(world, "j9", EXEC_B)
    # Run b's own renditions (most of a big job's objects) are never listed.
    assert listed == [f"{keys.processed_prefix('j9')}|", keys.run_prefix("j9", "a")]
    # What run b superseded went: run a's A.DNG; run a's B.DNG is still delivered.
    left = {o["Key"] for o in world.objects.list(PROCESSED, keys.processed_prefix("j9"))}
    assert _web("j9", EXEC_A, "A.DNG")["web"].key not in left
    assert _web("j9", EXEC_A, "B.DNG")["web"].key in left
    assert _missing(world, "j9") == []


def test_marking_done_aborts_the_uploads_a_dead_worker_left_open_under_its_job(
    world: World,
) -> None:
    world.upload("j10", *FILES, manifest={})
    _run(world, "j10", EXEC_A, {"A.DNG": True, "B.DNG": True})
    # A packager killed mid-ZIP, and a shard's worker killed mid-part; another job's
    # upload, still being written, is not this job's to abort.
    left = [
        keys.archive_key("j10", "a", "web"),
        keys.archive_segment_key("j10", "a", "web", 1),
        keys.archive_key("j11", "x", "web"),
    ]
    for key in left:
        world.s3.create_multipart_upload(Bucket=PROCESSED, Key=key)
    _mark_done(world, "j10", EXEC_A)
    assert [u["Key"] for u in world.objects.open_uploads(PROCESSED, "")] == [left[2]]
    assert _missing(world, "j10") == []
