"""The pipeline's steps against moto's in-process mocks (no server, no network)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from darkroom import keys, names, pipeline, worker_queue
from darkroom.aws.executions import Executions
from darkroom.aws.job_store import JobStore
from darkroom.aws.lease_store import LeaseState, LeaseStore
from darkroom.aws.objects import Objects
from darkroom.aws.pool_instances import PoolInstances
from darkroom.aws.table import create_request
from darkroom.errors import InvalidJob, JobBusy, LeaseLost, NoIdleWorker, StaleExecution
from darkroom.jobs import FileProgress, FileStatus, JobStatus, Output
from darkroom.local.cloud import LOCAL_AMI_ID

RAW = "raw-bucket"
PROCESSED = "processed-bucket"
EXEC_A = "arn:aws:states:us-east-1:123456789012:execution:m:a"
EXEC_B = "arn:aws:states:us-east-1:123456789012:execution:m:b"


class World:
    def __init__(self, pool_size: int = 1) -> None:
        region = "us-east-1"
        self.s3 = boto3.client("s3", region_name=region)
        self.ddb = boto3.client("dynamodb", region_name=region)
        self.ec2 = boto3.client("ec2", region_name=region)
        self.s3.create_bucket(Bucket=RAW)
        self.s3.create_bucket(Bucket=PROCESSED)
        self.ddb.create_table(**create_request(names.JOBS_SCHEMA, "jobs"))
        self.ddb.create_table(**create_request(names.WORKERS_SCHEMA, "workers"))
        instances = self.ec2.run_instances(
            ImageId=LOCAL_AMI_ID, MinCount=pool_size, MaxCount=pool_size
        )["Instances"]
        self.instance_ids = tuple(i["InstanceId"] for i in instances)
        self.ec2.stop_instances(InstanceIds=list(self.instance_ids))
        self.jobs = JobStore("jobs", self.ddb)
        self.leases = LeaseStore("workers", self.ddb)
        self.objects = Objects(self.s3)
        self.pool = PoolInstances(self.ec2)

    def state(self, instance_id: str) -> str:
        (instance,) = self.pool.describe([instance_id])
        return instance.state

    def upload(self, job_id: str, *names: str, manifest: dict[str, Any] | None = None) -> None:
        for name in names:
            self.s3.put_object(Bucket=RAW, Key=f"raw/{job_id}/{name}", Body=b"raw")
        if manifest is not None:
            self.s3.put_object(
                Bucket=RAW, Key=f"raw/{job_id}/manifest.json", Body=json.dumps(manifest)
            )

    def register(
        self, job_id: str, execution: str = EXEC_A, *, shard_size: int = 200, **extra: Any
    ) -> dict[str, Any]:
        return pipeline.register_job(
            {"job_id": job_id, **extra},
            execution,
            raw_bucket=RAW,
            jobs=self.jobs,
            objects=self.objects,
            heartbeat_seconds=10,
            timeout_seconds=600,
            shard_size=shard_size,
            pool_size=len(self.instance_ids),
        )

    def start(
        self,
        job_id: str,
        execution: str = EXEC_A,
        statuses: dict[str, str] | None = None,
        *,
        shard: int = 0,
        avoid: str | None = None,
        instance_types: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        return worker_queue.start_worker(
            job_id,
            execution,
            shard=shard,
            avoid=avoid,
            instance_types=instance_types,
            instance_ids=self.instance_ids,
            jobs=self.jobs,
            leases=self.leases,
            pool=self.pool,
            execution_status=None if statuses is None else statuses.__getitem__,
        )


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield World()


def test_register_lists_the_jobs_files_and_hands_timings_to_the_state_machine(world: World) -> None:
    world.upload("j1", "B.NEF", "A.DNG", manifest={"name": "Shoot"})
    result = world.register("j1")
    assert result == {
        "job_id": "j1",
        "file_count": 2,
        "heartbeat_seconds": 10,
        "timeout_seconds": 600,
        "shards": [{"shard": 0}],
        "shards_at_once": 1,
        "packaged_by_shard": True,
    }
    job = world.jobs.get("j1")
    assert job.status is JobStatus.REGISTERED
    assert job.files_total == 2 and job.run_id == "a"
    assert job.name == "Shoot"
    assert job.attempt == 1
    records = list(world.jobs.files("j1"))
    assert [r.name for r in records] == ["A.DNG", "B.NEF"]
    assert all(r.status is FileStatus.PENDING and r.run_id == "a" for r in records)
    # The bucket is not versioned here: S3 has no version id to record.
    assert all(r.original_version is None for r in records)


def test_register_refuses_a_job_with_no_files(world: World) -> None:
    world.upload("empty", manifest={})
    with pytest.raises(InvalidJob, match="no files"):
        world.register("empty")


def test_register_names_declared_files_that_were_never_uploaded(world: World) -> None:
    world.upload("j2", "A.DNG", manifest={"files": [{"name": "A.DNG"}, {"name": "B.DNG"}]})
    with pytest.raises(InvalidJob, match=r"B\.DNG"):
        world.register("j2")


def test_register_rejects_a_bad_recipe_naming_the_field(world: World) -> None:
    world.upload(
        "j3", "A.DNG", manifest={"recipe": {"renditions": [{"name": "w", "quality": 500}]}}
    )
    with pytest.raises(InvalidJob, match="quality"):
        world.register("j3")


def test_a_running_job_cannot_be_registered_by_another_execution(world: World) -> None:
    world.upload("j4", "A.DNG", manifest={})
    world.register("j4", EXEC_A)
    assert world.register("j4", EXEC_A)["file_count"] == 1  # a retried RegisterJob is fine
    with pytest.raises(JobBusy, match=r"REGISTERED"):
        world.register("j4", EXEC_B)


def test_start_worker_leases_and_starts_the_idle_instance_once(world: World) -> None:
    world.upload("j5", "A.DNG", manifest={})
    world.register("j5")
    (instance,) = world.instance_ids
    assert world.start("j5") == {"instance_id": instance}
    assert world.start("j5") == {"instance_id": instance}  # retried: same lease
    assert world.state(instance) == "running"
    lease = world.leases.get(instance)
    assert lease is not None and lease.state is LeaseState.LEASED and lease.job_id == "j5"
    assert world.jobs.get("j5").status is JobStatus.STARTING


PREFERRED = names.WORKER_INSTANCE_TYPES


def _short_of(world: World, monkeypatch: pytest.MonkeyPatch, *short: str, code: str) -> None:
    """EC2 refuses to start an instance whose type is one of `short` with `code`."""
    start = world.ec2.start_instances

    def start_instances(**kwargs: Any) -> Any:
        for instance_id in kwargs["InstanceIds"]:
            if world.pool.instance_type(instance_id) in short:
                raise ClientError(
                    {"Error": {"Code": code, "Message": "none here"}}, "StartInstances"
                )
        return start(**kwargs)

    monkeypatch.setattr(world.ec2, "start_instances", start_instances)


@pytest.mark.parametrize("code", ["InsufficientInstanceCapacity", "Unsupported"])
def test_an_instance_starts_as_the_next_preferred_type_when_ec2_cannot_start_the_first(
    world: World, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    world.upload("j5", "A.DNG", manifest={})
    world.register("j5")
    (instance,) = world.instance_ids
    world.pool.set_type(instance, PREFERRED[0])
    _short_of(world, monkeypatch, PREFERRED[0], code=code)
    assert world.start("j5", instance_types=PREFERRED) == {"instance_id": instance}
    assert world.state(instance) == "running"
    assert world.pool.instance_type(instance) == PREFERRED[1]


def test_an_instance_on_a_fallback_type_goes_back_to_the_preferred_one(world: World) -> None:
    world.upload("j5", "A.DNG", manifest={})
    world.register("j5")
    (instance,) = world.instance_ids
    world.pool.set_type(instance, PREFERRED[1])  # a shortage moved it there last time
    world.start("j5", instance_types=PREFERRED)
    assert world.pool.instance_type(instance) == PREFERRED[0]


def test_with_no_capacity_for_any_type_the_shard_waits_and_frees_the_instance(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.upload("j5", "A.DNG", manifest={})
    world.register("j5")
    (instance,) = world.instance_ids
    _short_of(world, monkeypatch, *PREFERRED, code="InsufficientInstanceCapacity")
    with pytest.raises(NoIdleWorker, match=r"no capacity for c7g\.xlarge .*, c6g\.xlarge"):
        world.start("j5", instance_types=PREFERRED)
    assert world.state(instance) == "stopped"
    lease = world.leases.get(instance)
    assert lease is not None and lease.state is LeaseState.IDLE
    assert [w.job_id for w in world.leases.waiters()] == ["j5"]


def _first_leased_second_queued(world: World, first: str, second: str) -> None:
    """`first` holds the pool's only instance under EXEC_A; `second` waits under EXEC_B."""
    for job_id, execution in ((first, EXEC_A), (second, EXEC_B)):
        world.upload(job_id, "A.DNG", manifest={})
        world.register(job_id, execution)
    world.start(first, EXEC_A)


def test_a_second_job_gets_no_idle_worker_while_the_pool_is_busy(world: World) -> None:
    _first_leased_second_queued(world, "j6", "j7")
    with pytest.raises(NoIdleWorker, match="busy"):
        world.start("j7", EXEC_B)
    released = worker_queue.stop_worker(EXEC_A, None, leases=world.leases, pool=world.pool)
    assert released["released"] is True
    assert world.state(world.instance_ids[0]) == "stopped"
    assert world.start("j7", EXEC_B)["instance_id"] == world.instance_ids[0]


def test_stop_worker_leaves_a_lease_held_by_another_execution_alone(world: World) -> None:
    world.upload("j8", "A.DNG", manifest={})
    world.register("j8", EXEC_A)
    world.start("j8", EXEC_A)
    result = worker_queue.stop_worker(
        EXEC_B, world.instance_ids[0], leases=world.leases, pool=world.pool
    )
    assert result["released"] is False
    assert world.state(world.instance_ids[0]) == "running"


def test_the_token_is_handed_only_to_the_lease_of_its_execution(world: World) -> None:
    world.upload("j9", "A.DNG", manifest={})
    world.register("j9", EXEC_A)
    (instance,) = world.instance_ids
    world.start("j9", EXEC_A)
    worker_queue.await_worker(instance, EXEC_A, "token-1", leases=world.leases)
    lease = world.leases.get(instance)
    assert lease is not None and lease.task_token == "token-1"
    with pytest.raises(LeaseLost):
        worker_queue.await_worker(instance, EXEC_B, "token-2", leases=world.leases)


def test_start_worker_takes_back_the_lease_of_an_aborted_execution(world: World) -> None:
    _first_leased_second_queued(world, "j14", "j15")
    (instance,) = world.instance_ids
    # Aborted in the console: no Catch ran, so the lease still names EXEC_A.
    assert world.start("j15", EXEC_B, {EXEC_A: "ABORTED"}) == {"instance_id": instance}
    lease = world.leases.get(instance)
    assert lease is not None and (lease.job_id, lease.execution_arn) == ("j15", EXEC_B)


def test_start_worker_leaves_the_lease_of_a_running_execution_alone(world: World) -> None:
    _first_leased_second_queued(world, "j16", "j17")
    with pytest.raises(NoIdleWorker, match="busy"):
        world.start("j17", EXEC_B, {EXEC_A: "RUNNING"})
    lease = world.leases.get(world.instance_ids[0])
    assert lease is not None and lease.execution_arn == EXEC_A


class _Executions(Executions):
    """Step Functions as far as reprocess sees it: statuses, and starts recorded."""

    state_machine_arn = "arn:aws:states:us-east-1:123456789012:stateMachine:m"

    def __init__(self, statuses: dict[str, str], fail: Exception | None = None) -> None:
        self.statuses = statuses
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    def status(self, execution_arn: str) -> str:
        return self.statuses.get(execution_arn, "MISSING")

    def start(self, name: str, payload: Any) -> tuple[str, bool]:
        if self.fail is not None:
            raise self.fail
        self.started.append((name, dict(payload)))
        return f"arn:aws:states:us-east-1:123456789012:execution:m:{name}", True


def test_reprocess_marks_a_job_stranded_by_an_aborted_execution_failed_then_starts(
    world: World,
) -> None:
    _run_to_processing(world, "j18")
    executions = _Executions({EXEC_A: "ABORTED"})
    arn = pipeline.reprocess("j18", executions, world.jobs)
    assert arn.endswith(executions.started[0][0])
    assert executions.started[0][1] == {"job_id": "j18", "reprocess": True}
    job = world.jobs.get("j18")
    assert job.status is JobStatus.FAILED and job.error == "ExecutionEnded"
    assert "ended ABORTED" in (job.cause or "")


def test_reprocess_refuses_a_job_whose_execution_is_still_running(world: World) -> None:
    _run_to_processing(world, "j19")
    executions = _Executions({EXEC_A: "RUNNING"})
    with pytest.raises(JobBusy, match="PROCESSING"):
        pipeline.reprocess("j19", executions, world.jobs)
    assert executions.started == []
    assert world.jobs.get("j19").status is JobStatus.PROCESSING


def _finished(world: World, job_id: str) -> None:
    _run_to_processing(world, job_id)
    world.jobs.transition(job_id, EXEC_A, JobStatus.DONE)


def test_reprocess_claims_the_job_for_the_execution_it_starts(world: World) -> None:
    _finished(world, "j30")
    executions = _Executions({})
    arn = pipeline.reprocess("j30", executions, world.jobs, now=1000.0)
    job = world.jobs.get("j30")
    assert (job.claimed_by, job.claimed_at) == (arn, 1000.0)
    executions.statuses[arn] = "RUNNING"
    with pytest.raises(JobBusy, match="reprocessed already"):
        pipeline.reprocess("j30", executions, world.jobs, now=1001.0)
    # Only the claimed execution registers the job, which releases the claim.
    with pytest.raises(JobBusy, match="reprocessed already"):
        world.register("j30", EXEC_B)
    world.register("j30", arn)
    assert world.jobs.get("j30").claimed_by is None


def test_a_claim_whose_execution_ended_before_registering_is_taken_over(world: World) -> None:
    _finished(world, "j31")
    executions = _Executions({})
    dead = pipeline.reprocess("j31", executions, world.jobs, now=1000.0)
    executions.statuses[dead] = "FAILED"  # RegisterJob refused its input, say
    arn = pipeline.reprocess("j31", executions, world.jobs, now=1001.0)
    assert arn != dead and world.jobs.get("j31").claimed_by == arn


def test_a_claim_of_an_execution_never_started_stands_only_for_a_grace_period(
    world: World,
) -> None:
    _finished(world, "j32")
    world.jobs.claim("j32", EXEC_B, now=1000.0)  # the API function died before starting it
    executions = _Executions({})
    with pytest.raises(JobBusy):
        pipeline.reprocess("j32", executions, world.jobs, now=1000.0 + 5)
    later = 1000.0 + pipeline.CLAIM_GRACE_SECONDS + 1
    arn = pipeline.reprocess("j32", executions, world.jobs, now=later)
    assert world.jobs.get("j32").claimed_by == arn


def test_a_reprocess_that_fails_to_start_releases_its_claim(world: World) -> None:
    _finished(world, "j33")
    executions = _Executions({}, fail=RuntimeError("Step Functions is down"))
    with pytest.raises(RuntimeError):
        pipeline.reprocess("j33", executions, world.jobs, now=1000.0)
    assert world.jobs.get("j33").claimed_by is None
    executions.fail = None
    assert pipeline.reprocess("j33", executions, world.jobs, now=1001.0)


def test_register_keeps_the_time_the_job_was_declared(world: World) -> None:
    declared = "2026-01-02T03:04:05.678Z"
    world.upload("j34", "A.DNG", manifest={"created_at": declared})
    world.register("j34")
    job = world.jobs.get("j34")
    assert (job.created_at, job.created_key) == (declared, f"{declared}#j34")
    world.upload("j35", "A.DNG", manifest={"created_at": "yesterday"})
    world.register("j35")
    assert world.jobs.get("j35").created_at != "yesterday"


def _run_to_processing(world: World, job_id: str) -> None:
    world.upload(job_id, "A.DNG", "B.DNG", manifest={})
    world.register(job_id)
    world.start(job_id)
    world.jobs.transition(job_id, EXEC_A, JobStatus.PROCESSING)


def _web(job_id: str, execution: str, name: str) -> FileProgress:
    key = keys.rendition_key(job_id, keys.run_id(execution), "web", name, "jpg")
    return FileProgress(status=FileStatus.DONE, outputs={"web": Output(key=key)})


def _mark_done(world: World, job_id: str, execution: str = EXEC_A) -> dict[str, Any]:
    return pipeline.mark_done(
        job_id,
        execution,
        {"archives": {}},
        jobs=world.jobs,
        objects=world.objects,
        processed_bucket=PROCESSED,
    )


def test_mark_done_says_done_with_errors_when_a_file_failed(world: World) -> None:
    _run_to_processing(world, "j10")
    world.jobs.record_file("j10", EXEC_A, "A.DNG", _web("j10", EXEC_A, "A.DNG"))
    world.jobs.record_file(
        "j10",
        EXEC_A,
        "B.DNG",
        FileProgress(status=FileStatus.FAILED, error_code="truncated", error="B"),
    )
    out = _mark_done(world, "j10")
    assert out["status"] == "DONE_WITH_ERRORS"
    assert (out["files_done"], out["files_failed"], out["files_delivered"]) == (1, 1, 1)


def test_a_file_recorded_twice_in_a_run_counts_once(world: World) -> None:
    _run_to_processing(world, "j40")
    assert world.jobs.record_file("j40", EXEC_A, "A.DNG", _web("j40", EXEC_A, "A.DNG"))
    assert not world.jobs.record_file("j40", EXEC_A, "A.DNG", _web("j40", EXEC_A, "A.DNG"))
    job = world.jobs.get("j40")
    assert (job.files_done, job.files_failed) == (1, 0)
    with pytest.raises(StaleExecution):
        world.jobs.record_file("j40", EXEC_B, "B.DNG", _web("j40", EXEC_B, "B.DNG"))


def test_delivery_moves_to_a_run_when_it_finishes_and_superseded_renditions_go(
    world: World,
) -> None:
    _run_to_processing(world, "j41")
    for name in ("A.DNG", "B.DNG"):
        world.jobs.record_file("j41", EXEC_A, name, _web("j41", EXEC_A, name))
        world.s3.put_object(Bucket=PROCESSED, Key=_web("j41", EXEC_A, name).outputs["web"].key)
    _mark_done(world, "j41")
    first = {r.name: r.delivered for r in world.jobs.files("j41")}
    # A reprocess: B fails in it, A develops anew.
    world.register("j41", EXEC_B)
    world.start("j41", EXEC_B, {EXEC_A: "SUCCEEDED"})
    world.jobs.transition("j41", EXEC_B, JobStatus.PROCESSING)
    world.jobs.record_file("j41", EXEC_B, "A.DNG", _web("j41", EXEC_B, "A.DNG"))
    world.s3.put_object(Bucket=PROCESSED, Key=_web("j41", EXEC_B, "A.DNG").outputs["web"].key)
    # Until the run finishes, both files deliver the first run's renditions.
    assert {r.name: r.delivered for r in world.jobs.files("j41")} == first
    world.jobs.record_file(
        "j41", EXEC_B, "B.DNG", FileProgress(status=FileStatus.FAILED, error_code="x", error="B")
    )
    out = _mark_done(world, "j41", EXEC_B)
    assert (out["status"], out["files_delivered"]) == ("DONE_WITH_ERRORS", 2)
    records = {r.name: r for r in world.jobs.files("j41")}
    assert records["A.DNG"].delivered_run == "b"
    assert records["B.DNG"].delivered == first["B.DNG"] and records["B.DNG"].delivered_run == "a"
    left = {o["Key"] for o in world.objects.list(PROCESSED, "processed/j41/")}
    # The renditions delivered, and the manifests of the runs they come from.
    assert left == {o.key for r in records.values() for o in r.delivered.values()} | {
        keys.run_manifest_key("j41", run) for run in ("a", "b")
    }
    # A retried MarkDone moves and deletes nothing more.
    assert _mark_done(world, "j41", EXEC_B)["status"] == "DONE_WITH_ERRORS"
    assert {o["Key"] for o in world.objects.list(PROCESSED, "processed/j41/")} == left


def test_a_console_start_claims_the_job_as_the_api_does(world: World) -> None:
    _finished(world, "j42")
    world.jobs.claim("j42", EXEC_B, now=1000.0)  # the API's reprocess, about to start
    with pytest.raises(JobBusy, match="being reprocessed"):
        world.register("j42", "arn:aws:states:us-east-1:123456789012:execution:m:by-hand")
    world.jobs.release_claim("j42", EXEC_B)
    by_hand = "arn:aws:states:us-east-1:123456789012:execution:m:by-hand"
    world.register("j42", by_hand)
    job = world.jobs.get("j42")
    assert (job.execution_arn, job.claimed_by, job.run_id) == (by_hand, None, "by-hand")
    # Running now: a second start by hand is refused the same way.
    with pytest.raises(JobBusy):
        world.register("j42", "arn:aws:states:us-east-1:123456789012:execution:m:again")


def test_mark_failed_records_a_stable_error_and_returns_the_fail_state_shape(world: World) -> None:
    _run_to_processing(world, "j11")
    out = pipeline.mark_failed(
        "j11", EXEC_A, {"Error": "States.Timeout", "Cause": "no heartbeat"}, jobs=world.jobs
    )
    assert out["Error"] == "WorkerTimedOut"
    assert "no heartbeat" in out["Cause"]
    job = world.jobs.get("j11")
    assert job.status is JobStatus.FAILED and job.error == "WorkerTimedOut"


def test_a_stale_execution_cannot_touch_a_reprocessed_job(world: World) -> None:
    _run_to_processing(world, "j12")
    pipeline.mark_failed("j12", EXEC_A, {"Error": "X", "Cause": "y"}, jobs=world.jobs)
    world.register("j12", EXEC_B)  # reprocess from FAILED
    out = pipeline.mark_failed("j12", EXEC_A, {"Error": "Late", "Cause": "z"}, jobs=world.jobs)
    assert out["Error"] == "Late"
    assert world.jobs.get("j12").status is JobStatus.REGISTERED
    with pytest.raises(StaleExecution):
        world.jobs.transition("j12", EXEC_A, JobStatus.STARTING)


def test_manifest_events_for_other_keys_start_nothing() -> None:
    def record(key: str, bucket: str = RAW, name: str = "ObjectCreated:Put") -> dict[str, Any]:
        return {"eventName": name, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}

    event = {
        "Records": [
            record("raw/j1/manifest.json"),
            record("raw/j1/manifest.json"),
            record("raw/j1/A.DNG"),
            record("raw/j2/manifest.json", bucket="other"),
            record("raw/j3/manifest.json", name="ObjectRemoved:Delete"),
            record("raw/j%2B4/manifest.json"),
        ]
    }
    assert pipeline.manifest_job_ids(event, RAW) == ["j1"]


def test_execution_names_fit_step_functions_limits() -> None:
    job_id = "x" * 40
    assert len(pipeline.reprocess_execution_name(job_id)) <= 80
    assert pipeline.execution_name("j1") == "j1"


def test_a_reprocess_execution_name_is_never_a_job_id_so_never_another_jobs_execution() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    name = pipeline.reprocess_execution_name("job", when)
    assert name == "job.rp-20260102T030405678"
    # The old form ("job-rp-<stamp>") was a valid id a client could pick for its own job,
    # whose first execution then bore the other job's reprocess name.
    assert keys.validate_job_id("job-rp-20260102T030405678")
    for job_id in ("job", "job-rp-20260102T030405678", "x" * 40, "a_b-c"):
        reprocess = pipeline.reprocess_execution_name(job_id, when)
        with pytest.raises(ValueError):
            pipeline.execution_name(reprocess)  # no job can be named like it
        assert reprocess.startswith(f"{job_id}.rp-")


def test_starting_a_job_twice_returns_the_same_execution() -> None:
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
        arn = sfn.create_state_machine(name="m", definition=definition, roleArn=role)[
            "stateMachineArn"
        ]
        executions = Executions(arn, sfn)
        first = pipeline.start_jobs(["j1"], executions)
        second = pipeline.start_jobs(["j1"], executions)
        assert first[0].execution_arn == second[0].execution_arn
        assert len(executions.list()) == 1


WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


def record_calls(world: World, operations: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every DynamoDB call of these operations through the world's client, as sent."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in operations:
            calls.append((model.name, dict(params)))

    world.ddb.meta.events.register("provide-client-params.dynamodb", record)
    return calls


def _record_writes(world: World) -> list[tuple[str, dict[str, Any]]]:
    """Every DynamoDB write the stores send through the world's client, as sent."""
    return record_calls(world, WRITES)


def _unconditional(name: str, params: dict[str, Any]) -> bool:
    if name == "BatchWriteItem":  # carries no conditions at all
        return True
    if name == "TransactWriteItems":
        return any(
            "ConditionExpression" not in next(iter(item.values()))
            for item in params["TransactItems"]
        )
    return "ConditionExpression" not in params


def test_every_write_to_the_tables_is_conditional(world: World) -> None:
    writes = _record_writes(world)
    (instance,) = world.instance_ids
    # A job's whole run, as its steps and its worker write it.
    world.upload("j20", "A.DNG", "B.DNG", manifest={})
    world.register("j20", EXEC_A)
    world.start("j20", EXEC_A)
    worker_queue.await_worker(instance, EXEC_A, "token-a", leases=world.leases)
    world.jobs.transition("j20", EXEC_A, JobStatus.PROCESSING, set_fields={"started_at": "now"})
    world.leases.beat(instance, EXEC_A)
    world.jobs.record_file("j20", EXEC_A, "A.DNG", _web("j20", EXEC_A, "A.DNG"))
    world.jobs.record_file(
        "j20",
        EXEC_A,
        "B.DNG",
        FileProgress(status=FileStatus.FAILED, error_code="truncated", error="B"),
    )
    assert _mark_done(world, "j20")["status"] == "DONE_WITH_ERRORS"
    assert worker_queue.stop_worker(EXEC_A, instance, leases=world.leases, pool=world.pool)[
        "released"
    ]
    # And one that fails: released by the failure path, then marked failed.
    world.upload("j21", "A.DNG", manifest={})
    world.register("j21", EXEC_B)
    world.start("j21", EXEC_B)
    assert worker_queue.stop_worker(EXEC_B, None, leases=world.leases, pool=world.pool)["released"]
    pipeline.mark_failed("j21", EXEC_B, {"Error": "X", "Cause": "y"}, jobs=world.jobs)
    assert world.jobs.get("j21").status is JobStatus.FAILED

    assert {name for name, _ in writes} >= {"PutItem", "UpdateItem", "TransactWriteItems"}
    assert len(writes) >= 14
    unconditional = [(name, params) for name, params in writes if _unconditional(name, params)]
    assert unconditional == []


def test_mark_failed_keeps_the_message_of_a_lambda_error_document(world: World) -> None:
    _run_to_processing(world, "j13")
    cause = json.dumps({"errorMessage": "job j13 has no files", "errorType": "InvalidJob"})
    out = pipeline.mark_failed(
        "j13", EXEC_A, {"Error": "InvalidJob", "Cause": cause}, jobs=world.jobs
    )
    assert out == {"Error": "InvalidJob", "Cause": "job j13 has no files"}
    assert world.jobs.get("j13").cause == "job j13 has no files"


def test_register_records_each_originals_version_and_keeps_it_across_runs(world: World) -> None:
    world.s3.put_bucket_versioning(Bucket=RAW, VersioningConfiguration={"Status": "Enabled"})
    world.upload("j43", "A.DNG", "B.DNG", manifest={})
    versions = {
        v["Key"].rsplit("/", 1)[-1]: v["VersionId"]
        for v in world.s3.list_object_versions(Bucket=RAW, Prefix="raw/j43/")["Versions"]
    }
    world.register("j43", EXEC_A)
    recorded = {r.name: r.original_version for r in world.jobs.files("j43")}
    assert recorded == {"A.DNG": versions["A.DNG"], "B.DNG": versions["B.DNG"]}
    assert None not in recorded.values()
    # Written again later (whatever wrote it): every run still reads the registered one.
    world.upload("j43", "A.DNG")
    world.start("j43", EXEC_A)
    world.jobs.transition("j43", EXEC_A, JobStatus.PROCESSING)
    world.jobs.transition("j43", EXEC_A, JobStatus.FAILED)
    world.register("j43", EXEC_B)
    assert {r.name: r.original_version for r in world.jobs.files("j43")} == recorded


def test_register_pairs_each_sidecar_with_its_raw_and_counts_only_the_raws(world: World) -> None:
    world.s3.put_bucket_versioning(Bucket=RAW, VersioningConfiguration={"Status": "Enabled"})
    world.upload("j44", "A.CR3", "A.xmp", "B.NEF", "B.NEF.xmp", "C.DNG", "stray.xmp", manifest={})
    versions = {
        v["Key"].rsplit("/", 1)[-1]: v["VersionId"]
        for v in world.s3.list_object_versions(Bucket=RAW, Prefix="raw/j44/")["Versions"]
    }
    assert world.register("j44")["file_count"] == 3
    records = {r.name: r for r in world.jobs.files("j44")}
    assert sorted(records) == ["A.CR3", "B.NEF", "C.DNG"]
    assert (records["A.CR3"].sidecar, records["A.CR3"].sidecar_version) == (
        "A.xmp",
        versions["A.xmp"],
    )
    assert records["B.NEF"].sidecar == "B.NEF.xmp"
    assert records["C.DNG"].sidecar is None
    assert world.jobs.get("j44").files_total == 3
    # Numbered by name for a filename template's {seq}: the same in every run.
    assert [records[n].seq for n in ("A.CR3", "B.NEF", "C.DNG")] == [1, 2, 3]
