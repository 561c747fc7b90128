"""A run in shards: which files each develops, the queue's order (pure), leases per
(execution, shard), a second attempt on another instance, a shard failing alone, and the
run's manifest written by MarkDone from the file items."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from moto import mock_aws

from darkroom import keys, pipeline, recipes, shards, worker_queue
from darkroom.aws.ddb_codec import to_item
from darkroom.aws.job_store import shard_key
from darkroom.aws.lease_store import PACKAGE_SHARD, LeaseState, LeaseTask, Waiter
from darkroom.aws.pool_instances import InstanceNotReady
from darkroom.digests import recipe_sha256
from darkroom.errors import AllFilesFailed, NoIdleWorker
from darkroom.jobs import Archive, FileProgress, FileStatus, JobStatus, Output, utc_now
from tests.unit.test_pipeline_steps import EXEC_A, EXEC_B, PROCESSED, World

EXEC_C = "arn:aws:states:us-east-1:123456789012:execution:m:c"


def _waiter(job: str, shard: int, created: str) -> Waiter:
    return Waiter(job_id=job, execution_arn=f"arn:{job}", shard=shard, created_at=created)


# -- the queue's order, without AWS ----------------------------------------------------
def test_every_jobs_first_shard_comes_before_any_jobs_second() -> None:
    big_1 = _waiter("big", 1, "2026-01-01T10:00:00.000Z")
    big_2 = _waiter("big", 2, "2026-01-01T10:00:00.000Z")
    small_0 = _waiter("small", 0, "2026-01-01T11:00:00.000Z")
    later_0 = _waiter("later", 0, "2026-01-01T12:00:00.000Z")
    packaging = _waiter("old", PACKAGE_SHARD, "2026-01-01T09:00:00.000Z")
    queue = [big_2, later_0, big_1, small_0, packaging]
    assert sorted(queue, key=shards.priority) == [packaging, small_0, later_0, big_1, big_2]
    # The small job submitted after the big one is ahead of the big one's later shards.
    assert shards.ahead_of(big_1, queue) == [packaging, small_0, later_0]
    assert shards.ahead_of(small_0, queue) == [packaging]


def test_within_a_shard_index_jobs_are_served_in_submission_order() -> None:
    first = _waiter("b-first", 0, "2026-01-01T10:00:00.000Z")
    second = _waiter("a-second", 0, "2026-01-01T10:00:01.000Z")
    assert shards.ahead_of(second, [first, second]) == [first]
    assert shards.ahead_of(first, [first, second]) == []


def test_a_waiter_takes_a_free_instance_only_when_those_ahead_have_theirs() -> None:
    assert shards.turn(ahead=0, idle=1)
    assert not shards.turn(ahead=1, idle=1)
    assert shards.turn(ahead=1, idle=2)
    assert not shards.turn(ahead=0, idle=0)


def test_waiters_of_ended_executions_are_forgotten_not_waited_for() -> None:
    me = _waiter("me", 1, "2026-01-01T12:00:00.000Z")
    gone = _waiter("gone", 0, "2026-01-01T10:00:00.000Z")
    alive = _waiter("alive", 0, "2026-01-01T11:00:00.000Z")
    forgotten: list[Waiter] = []
    statuses = {gone.execution_arn: "ABORTED", alive.execution_arn: "RUNNING"}
    live = shards.live_ahead(me, [gone, alive, me], statuses.__getitem__, forgotten.append)
    assert live == [alive] and forgotten == [gone]


def test_a_run_develops_as_many_shards_at_once_as_the_pool_has_instances() -> None:
    assert shards.shards_at_once(shard_count=25, pool_size=2) == 2
    assert shards.shards_at_once(shard_count=1, pool_size=8) == 1
    # However large the pool, no more than an inline Map runs at once.
    assert shards.shards_at_once(shard_count=300, pool_size=100) == 40


def test_files_are_split_in_sorted_order_into_shards_of_the_size() -> None:
    assert [shards.shard_of(i, 200) for i in (0, 199, 200, 599)] == [0, 0, 1, 2]
    assert shards.shard_list(600, 200) == [{"shard": 0}, {"shard": 1}, {"shard": 2}]
    assert shards.shard_list(601, 200)[-1] == {"shard": 3}
    assert shards.shard_list(1, 200) == [{"shard": 0}]


# -- against moto's mocks ----------------------------------------------------------------
@pytest.fixture
def pool2() -> Iterator[World]:
    with mock_aws():
        yield World(pool_size=2)


def _registered(world: World, job_id: str, execution: str, count: int, size: int) -> dict:
    world.upload(job_id, *(f"F{i:03d}.DNG" for i in range(count)), manifest={})
    return world.register(job_id, execution, shard_size=size)


def test_register_assigns_each_file_its_shard_and_lists_the_shards(pool2: World) -> None:
    result = _registered(pool2, "j1", EXEC_A, 5, 2)
    assert result["shards"] == [{"shard": 0}, {"shard": 1}, {"shard": 2}]
    # Several shards: the packager packages the run once they are all over.
    assert result["packaged_by_shard"] is False
    assert result["shards_at_once"] == 2  # the pool's two instances
    run = keys.run_id(EXEC_A)
    assert not any(pool2.jobs.shard("j1", run, s).packages for s in range(3))  # type: ignore[union-attr]
    assert [(r.name, r.shard) for r in pool2.jobs.files("j1")] == [
        ("F000.DNG", 0),
        ("F001.DNG", 0),
        ("F002.DNG", 1),
        ("F003.DNG", 1),
        ("F004.DNG", 2),
    ]


def test_a_shards_worker_reads_only_its_own_files_not_the_whole_jobs(pool2: World) -> None:
    _registered(pool2, "j1", EXEC_A, 5, 2)
    run = keys.run_id(EXEC_A)
    scanned: list[int] = []
    pool2.ddb.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: scanned.append(parsed["ScannedCount"])
    )
    assert [r.name for r in pool2.jobs.shard_files("j1", run, 1)] == ["F002.DNG", "F003.DNG"]
    # One Query of the shard's key range: its two items, not the job's five.
    assert scanned == [2]
    assert [r.name for r in pool2.jobs.shard_files("j1", run, 2)] == ["F004.DNG"]


def test_a_run_registered_without_shard_items_still_finds_each_shards_files(
    pool2: World,
) -> None:
    _registered(pool2, "j1", EXEC_A, 5, 2)
    for shard in range(3):
        pool2.ddb.delete_item(TableName="jobs", Key=to_item(shard_key("j1", shard)))
    run = keys.run_id(EXEC_A)
    assert [r.name for r in pool2.jobs.shard_files("j1", run, 1)] == ["F002.DNG", "F003.DNG"]
    # Another run's bounds are not this run's.
    assert list(pool2.jobs.shard_files("j1", keys.run_id(EXEC_B), 1)) == []


def test_shards_of_one_run_hold_a_lease_each_and_each_release_frees_only_its_own(
    pool2: World,
) -> None:
    _registered(pool2, "j2", EXEC_A, 4, 2)
    first = pool2.start("j2", EXEC_A, shard=0)["instance_id"]
    second = pool2.start("j2", EXEC_A, shard=1)["instance_id"]
    assert first != second
    assert pool2.start("j2", EXEC_A, shard=1)["instance_id"] == second  # retried: same
    # A later shard finds the job STARTING (or PROCESSING) and is content with it.
    pool2.jobs.transition("j2", EXEC_A, JobStatus.PROCESSING)
    assert pool2.start("j2", EXEC_A, shard=1)["instance_id"] == second
    worker_queue.await_worker(first, EXEC_A, "token-0", leases=pool2.leases, shard=0)
    with pytest.raises(Exception, match="shard 1"):
        worker_queue.await_worker(first, EXEC_A, "token-x", leases=pool2.leases, shard=1)

    out = worker_queue.stop_worker(EXEC_A, None, leases=pool2.leases, pool=pool2.pool, shard=0)
    assert out["instance_ids"] == [first]
    assert {lease.instance_id for lease in pool2.leases.held_by(EXEC_A)} == {second}
    # The failure path frees whatever is left.
    out = worker_queue.stop_worker(EXEC_A, None, leases=pool2.leases, pool=pool2.pool)
    assert out["instance_ids"] == [second]
    assert all(lease.state is LeaseState.IDLE for lease in pool2.leases.all())


def test_a_second_attempt_takes_another_instance_than_the_first(pool2: World) -> None:
    _registered(pool2, "j3", EXEC_A, 2, 2)
    lost = pool2.start("j3", EXEC_A)["instance_id"]
    worker_queue.stop_worker(EXEC_A, None, leases=pool2.leases, pool=pool2.pool, shard=0)
    again = pool2.start("j3", EXEC_A, avoid=lost)["instance_id"]
    assert again != lost


def test_a_big_jobs_later_shard_waits_behind_a_small_job_submitted_after_it(
    pool2: World,
) -> None:
    _registered(pool2, "big", EXEC_A, 6, 2)  # created first
    pool2.start("big", EXEC_A, shard=0)
    pool2.start("big", EXEC_A, shard=1)
    with pytest.raises(NoIdleWorker):
        pool2.start("big", EXEC_A, shard=2)
    _registered(pool2, "small", EXEC_B, 1, 2)
    with pytest.raises(NoIdleWorker):
        pool2.start("small", EXEC_B, shard=0)
    assert [(w.job_id, w.shard) for w in pool2.leases.waiters()] == [("big", 2), ("small", 0)] or [
        (w.job_id, w.shard) for w in pool2.leases.waiters()
    ] == [("small", 0), ("big", 2)]
    # An instance frees: the big job's third shard asks first, but the small job's
    # first shard is ahead of it.
    worker_queue.stop_worker(EXEC_A, None, leases=pool2.leases, pool=pool2.pool, shard=0)
    with pytest.raises(NoIdleWorker):
        pool2.start("big", EXEC_A, {EXEC_B: "RUNNING"}, shard=2)
    small = pool2.start("small", EXEC_B, {EXEC_A: "RUNNING"})["instance_id"]
    assert [(w.job_id, w.shard) for w in pool2.leases.waiters()] == [("big", 2)]
    # The next free instance goes to the big job's shard.
    worker_queue.stop_worker(EXEC_B, small, leases=pool2.leases, pool=pool2.pool, shard=0)
    assert pool2.start("big", EXEC_A, {EXEC_B: "SUCCEEDED"}, shard=2)["instance_id"] == small
    assert pool2.leases.waiters() == []


def test_a_shard_whose_instance_is_still_stopping_keeps_its_place_in_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with mock_aws():
        pool1 = World(pool_size=1)
        _registered(pool1, "j1", EXEC_A, 4, 2)
        start = pool1.pool.start
        stopping = [True]

        def still_stopping(instance_id: str) -> None:
            if stopping.pop() if stopping else False:
                raise InstanceNotReady(f"{instance_id}: IncorrectInstanceState (stopping)")
            start(instance_id)

        monkeypatch.setattr(pool1.pool, "start", still_stopping)
        with pytest.raises(NoIdleWorker, match="stopping"):
            pool1.start("j1", EXEC_A, {EXEC_A: "RUNNING"}, shard=0)
        # Shard 1 finds the instance idle, but shard 0 is ahead of it.
        with pytest.raises(NoIdleWorker):
            pool1.start("j1", EXEC_A, {EXEC_A: "RUNNING"}, shard=1)
        assert pool1.start("j1", EXEC_A, {EXEC_A: "RUNNING"}, shard=0)["instance_id"]
        assert [w.shard for w in pool1.leases.waiters()] == [1]


def test_a_waiter_whose_execution_ended_holds_nobody_up(pool2: World) -> None:
    _registered(pool2, "busy", EXEC_A, 4, 2)
    pool2.start("busy", EXEC_A, shard=0)
    pool2.start("busy", EXEC_A, shard=1)
    _registered(pool2, "aborted", EXEC_B, 1, 2)
    with pytest.raises(NoIdleWorker):
        pool2.start("aborted", EXEC_B)
    _registered(pool2, "later", EXEC_C, 1, 2)
    worker_queue.stop_worker(EXEC_A, None, leases=pool2.leases, pool=pool2.pool, shard=1)
    statuses = {EXEC_A: "RUNNING", EXEC_B: "ABORTED"}
    assert pool2.start("later", EXEC_C, statuses)["instance_id"]
    assert pool2.leases.waiters() == []


def test_a_packaging_lease_is_one_more_shard_of_the_run(pool2: World) -> None:
    _registered(pool2, "j4", EXEC_A, 2, 2)
    pool2.start("j4", EXEC_A)
    packager = worker_queue.start_worker(
        "j4",
        EXEC_A,
        shard=PACKAGE_SHARD,
        task=LeaseTask.PACKAGE,
        instance_ids=pool2.instance_ids,
        jobs=pool2.jobs,
        leases=pool2.leases,
        pool=pool2.pool,
    )["instance_id"]
    lease = pool2.leases.get(packager)
    assert lease is not None and (lease.task, lease.shard) == (LeaseTask.PACKAGE, PACKAGE_SHARD)


def _web(job_id: str, execution: str, name: str) -> FileProgress:
    key = keys.rendition_key(job_id, keys.run_id(execution), "web", name, "jpg")
    return FileProgress(
        status=FileStatus.DONE,
        outputs={"web": Output(key=key)},
        develop_seconds=0.5,
        notes={"white_balance": "camera", "lens": "not corrected: the file does not name its lens"},
    )


def test_a_shard_lost_twice_fails_only_its_pending_files(pool2: World) -> None:
    _registered(pool2, "j5", EXEC_A, 5, 2)
    pool2.start("j5", EXEC_A, shard=0)
    # Shard 1's worker recorded one file before it was lost (twice); shard 0 is fine.
    pool2.jobs.transition("j5", EXEC_A, JobStatus.PROCESSING)
    pool2.jobs.record_file("j5", EXEC_A, "F002.DNG", _web("j5", EXEC_A, "F002.DNG"))
    error = {"Error": "States.HeartbeatTimeout", "Cause": "no heartbeat"}
    out = pipeline.fail_shard("j5", EXEC_A, 1, error, jobs=pool2.jobs)
    assert out == {"shard": 1, "files_failed": 1}
    assert pipeline.fail_shard("j5", EXEC_A, 1, error, jobs=pool2.jobs)["files_failed"] == 0
    records = {r.name: r for r in pool2.jobs.files("j5")}
    assert records["F003.DNG"].status is FileStatus.FAILED
    assert records["F003.DNG"].error == "shard 1: worker lost twice: WorkerLost: no heartbeat"
    assert records["F002.DNG"].status is FileStatus.DONE
    assert {records[n].status for n in ("F000.DNG", "F001.DNG", "F004.DNG")} == {FileStatus.PENDING}
    job = pool2.jobs.get("j5")
    assert (job.status, job.files_done, job.files_failed) == (JobStatus.PROCESSING, 1, 1)


def test_a_shard_failing_before_any_worker_started_still_counts_its_files(pool2: World) -> None:
    _registered(pool2, "j6", EXEC_A, 2, 2)
    error = {"Error": "InvalidJob", "Cause": "the worker pool is empty"}
    assert pipeline.fail_shard("j6", EXEC_A, 0, error, jobs=pool2.jobs)["files_failed"] == 2
    assert pool2.jobs.get("j6").status is JobStatus.PROCESSING


def test_mark_done_writes_the_runs_manifest_from_the_file_items_and_records_archives(
    pool2: World,
) -> None:
    _registered(pool2, "j7", EXEC_A, 3, 2)
    pool2.start("j7", EXEC_A)
    pool2.jobs.transition("j7", EXEC_A, JobStatus.PROCESSING)
    for name in ("F000.DNG", "F002.DNG"):
        pool2.jobs.record_file("j7", EXEC_A, name, _web("j7", EXEC_A, name))
    pipeline.fail_shard("j7", EXEC_A, 0, {"Error": "WorkerFailed", "Cause": "x"}, jobs=pool2.jobs)
    zip_key = keys.archive_key("j7", "a", "web")
    out = pipeline.mark_done(
        "j7",
        EXEC_A,
        {"archives": {"web": {"key": zip_key, "bytes": 10, "files": 2}}},
        jobs=pool2.jobs,
        objects=pool2.objects,
        processed_bucket=PROCESSED,
    )
    assert (out["status"], out["archives"]) == ("DONE_WITH_ERRORS", ["web"])
    body = pool2.s3.get_object(Bucket=PROCESSED, Key=keys.run_manifest_key("j7", "a"))["Body"]
    manifest = json.loads(body.read())
    assert (manifest["files_total"], manifest["files_done"], manifest["files_failed"]) == (3, 2, 1)
    assert [(f["name"], f["status"], f["shard"]) for f in manifest["files"]] == [
        ("F000.DNG", "DONE", 0),
        ("F001.DNG", "FAILED", 0),
        ("F002.DNG", "DONE", 1),
    ]
    assert manifest["files"][0]["develop_seconds"] == 0.5
    # What was decided for each developed file, and why, travels to the manifest.
    assert manifest["files"][0]["notes"]["lens"] == "not corrected: the file does not name its lens"
    assert "notes" not in manifest["files"][1]
    job = pool2.jobs.get("j7")
    assert job.delivered is not None and job.delivered.archives["web"].key == zip_key


def test_the_runs_manifest_carries_each_files_lineage_and_the_resolved_recipe(
    pool2: World,
) -> None:
    _registered(pool2, "j9", EXEC_A, 2, 2)
    pool2.start("j9", EXEC_A)
    started = {"started_at": utc_now()}
    pool2.jobs.transition("j9", EXEC_A, JobStatus.PROCESSING, set_fields=started)
    key = keys.rendition_key("j9", "a", "web", "F000.DNG", "jpg")
    resolved = recipes.resolved(pool2.jobs.get("j9").recipe)
    lineage = FileProgress(
        status=FileStatus.DONE,
        outputs={"web": Output(key=key, width=300, height=200, bytes=1234, sha256="ab" * 32)},
        develop_seconds=0.5,
        original_sha256="cd" * 32,
        recipe_sha256=recipe_sha256(resolved),
        software={"darkroom": "0.1.0", "libraw": "0.22.2", "pillow": "13.0.0"},
        timings={"download": 0.1, "decode": 0.3, "render": 0.2, "upload": 0.05},
    )
    pool2.jobs.record_file("j9", EXEC_A, "F000.DNG", lineage)
    pipeline.fail_shard("j9", EXEC_A, 1, {"Error": "WorkerFailed", "Cause": "x"}, jobs=pool2.jobs)
    pipeline.mark_done(
        "j9", EXEC_A, None, jobs=pool2.jobs, objects=pool2.objects, processed_bucket=PROCESSED
    )
    body = pool2.s3.get_object(Bucket=PROCESSED, Key=keys.run_manifest_key("j9", "a"))["Body"]
    manifest = json.loads(body.read())
    assert manifest["manifest_version"] == shards.MANIFEST_VERSION
    # Every default spelled out, and the digest each file's entry names.
    assert manifest["recipe_resolved"] == resolved
    assert manifest["recipe_resolved"]["renditions"][0]["quality"] == 90
    assert manifest["recipe_sha256"] == recipe_sha256(resolved)
    # The run's own timings beside each file's.
    assert manifest["started_at"] and manifest["finished_at"] >= manifest["started_at"]
    developed, failed = manifest["files"]
    assert developed["original_sha256"] == "cd" * 32
    assert developed["recipe_sha256"] == manifest["recipe_sha256"]
    assert developed["software"]["libraw"] == "0.22.2"
    assert developed["timings"] == {"download": 0.1, "decode": 0.3, "render": 0.2, "upload": 0.05}
    assert developed["outputs"]["web"] == {
        "key": key,
        "width": 300,
        "height": 200,
        "bytes": 1234,
        "sha256": "ab" * 32,
    }
    # A file that never developed has no lineage to claim.
    assert not {"original_sha256", "software", "timings", "outputs"} & set(failed)


def test_mark_done_without_archives_when_packaging_failed(pool2: World) -> None:
    _registered(pool2, "j8", EXEC_A, 1, 2)
    pool2.start("j8", EXEC_A)
    pool2.jobs.transition("j8", EXEC_A, JobStatus.PROCESSING)
    pool2.jobs.record_file("j8", EXEC_A, "F000.DNG", _web("j8", EXEC_A, "F000.DNG"))
    failed = {"error": {"Error": "WorkerLost", "Cause": "gone"}}
    out = pipeline.mark_done(
        "j8", EXEC_A, failed, jobs=pool2.jobs, objects=pool2.objects, processed_bucket=PROCESSED
    )
    assert (out["status"], out["archives"]) == ("DONE", [])


def test_a_run_of_one_shard_is_packaged_by_that_shards_worker_and_marked_done_from_it(
    pool2: World,
) -> None:
    result = _registered(pool2, "j9", EXEC_A, 2, 2)
    run = keys.run_id(EXEC_A)
    assert result["packaged_by_shard"] is True
    only = pool2.jobs.shard("j9", run, 0)
    assert (
        only is not None and only.packages and (only.first, only.last) == ("F000.DNG", "F001.DNG")
    )
    pool2.start("j9", EXEC_A)
    pool2.jobs.transition("j9", EXEC_A, JobStatus.PROCESSING)
    for name in ("F000.DNG", "F001.DNG"):
        pool2.jobs.record_file("j9", EXEC_A, name, _web("j9", EXEC_A, name))
    zip_ = Archive(key=keys.archive_key("j9", run, "web"), bytes=10, files=2)
    # Recorded only on this run's item: a stale worker of another run changes nothing.
    pool2.jobs.record_shard_archives("j9", keys.run_id(EXEC_B), 0, {"web": zip_})
    assert pool2.jobs.shard("j9", run, 0).archives is None  # type: ignore[union-attr]
    pool2.jobs.record_shard_archives("j9", run, 0, {"web": zip_})
    out = pipeline.mark_done(
        "j9",
        EXEC_A,
        {"shard": 0},
        jobs=pool2.jobs,
        objects=pool2.objects,
        processed_bucket=PROCESSED,
    )
    assert (out["status"], out["archives"]) == ("DONE", ["web"])
    job = pool2.jobs.get("j9")
    assert job.delivered is not None and job.delivered.archives == {"web": zip_}


def test_a_run_whose_only_shard_recorded_no_zips_is_delivered_without_them(
    pool2: World,
) -> None:
    _registered(pool2, "j10", EXEC_A, 1, 2)
    pool2.start("j10", EXEC_A)
    pool2.jobs.transition("j10", EXEC_A, JobStatus.PROCESSING)
    pool2.jobs.record_file("j10", EXEC_A, "F000.DNG", _web("j10", EXEC_A, "F000.DNG"))
    out = pipeline.mark_done(
        "j10",
        EXEC_A,
        {"shard": 0},
        jobs=pool2.jobs,
        objects=pool2.objects,
        processed_bucket=PROCESSED,
    )
    assert (out["status"], out["archives"], out["files_delivered"]) == ("DONE", [], 1)


def test_a_run_that_developed_nothing_fails_all_files_failed(pool2: World) -> None:
    _registered(pool2, "j9", EXEC_A, 2, 2)
    pipeline.fail_shard("j9", EXEC_A, 0, {"Error": "WorkerFailed", "Cause": "x"}, jobs=pool2.jobs)
    with pytest.raises(AllFilesFailed, match="none of the 2 files developed"):
        pipeline.mark_done(
            "j9", EXEC_A, None, jobs=pool2.jobs, objects=pool2.objects, processed_bucket=PROCESSED
        )


def test_a_release_takes_the_executions_waiting_shards_out_of_the_queue(pool2: World) -> None:
    _registered(pool2, "busy", EXEC_A, 4, 2)
    pool2.start("busy", EXEC_A, shard=0)
    pool2.start("busy", EXEC_A, shard=1)
    _registered(pool2, "queued", EXEC_B, 6, 2)
    for shard in (0, 1, 2):
        with pytest.raises(NoIdleWorker):
            pool2.start("queued", EXEC_B, shard=shard)
    worker_queue.stop_worker(EXEC_B, None, leases=pool2.leases, pool=pool2.pool, shard=1)
    assert sorted(w.shard for w in pool2.leases.waiters()) == [0, 2]
    # The failure path (or the ending reconciler) releases everything the run holds.
    worker_queue.stop_worker(EXEC_B, None, leases=pool2.leases, pool=pool2.pool)
    assert pool2.leases.waiters() == []
    assert len(pool2.leases.held_by(EXEC_A)) == 2
