"""RAW jobs end to end on the embedded local cloud."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from PIL import Image

from darkroom import keys, names
from darkroom.cli.studio_client import raw_files
from darkroom.imaging.fixtures import make_demo_shoot, write_corrupt_raw
from darkroom.jobs import FileStatus, JobStatus
from darkroom.local.cloud import LocalCloud
from tests.harness import Studio, lease_of, wait_for
from tests.integration.conftest import HEARTBEAT_SECONDS, IDLE_SHUTDOWN_SECONDS

pytestmark = pytest.mark.integration


def _executions_named(studio: Studio, name: str) -> list[dict]:
    return [e for e in studio.executions.list() if e["name"] == name]


def _instance_state(cloud: LocalCloud) -> str:
    """ "stopped" once every pool instance is, else the state of one that is not."""
    reservations = cloud.client("ec2").describe_instances(InstanceIds=cloud.instance_ids)
    states = [
        instance["State"]["Name"]
        for reservation in reservations["Reservations"]
        for instance in reservation["Instances"]
    ]
    return next((state for state in states if state != "stopped"), "stopped")


def _processing_job(studio: Studio, tmp_path: Path, count: int) -> str:
    """A job of larger frames, once its worker has started developing it."""
    files = make_demo_shoot(tmp_path / "shoot", count=count, width=2400, height=1600)
    job_id = studio.upload(files)
    wait_for(
        lambda: (j := studio.jobs.find(job_id)) is not None and j.status is JobStatus.PROCESSING,
        120,
    )
    return job_id


def test_a_shoot_of_dngs_reaches_done_with_every_rendition_decodable(
    studio: Studio, cloud: LocalCloud, shoot: Path, tmp_path: Path
) -> None:
    files = raw_files(shoot)
    job_id = studio.upload(files, name="three dngs")
    job = studio.wait(job_id, timeout=180)
    assert job.status is JobStatus.DONE, job.model_dump()
    assert job.files_done == len(files)

    execution = studio.executions.describe(job.execution_arn or "")
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["status"] == "DONE"

    paths = studio.download(job_id, tmp_path / "out")
    # The default recipe: a 2048 px web JPEG, a 400 px thumbnail and a full-size JPEG.
    assert {p.parent.name for p in paths} == {"web", "thumb", "full"}
    assert len(paths) == 3 * len(files)
    limits = {"thumb": 400, "web": 2048, "full": 10**6}
    for path in paths:
        with Image.open(path) as image:
            image.load()
            assert image.format == "JPEG"
            assert max(image.size) <= limits[path.parent.name]
    # The worker is stopped and its lease free once the job is done.
    assert wait_for(lambda: _instance_state(cloud) == "stopped", 30.0)
    assert lease_of(cloud)["state"] == "IDLE"


def test_a_corrupt_file_fails_alone_and_its_error_is_in_the_manifest(
    studio: Studio, shoot: Path
) -> None:
    write_corrupt_raw(shoot / "BROKEN.dng", "truncated")
    job_id = studio.upload(raw_files(shoot))
    job = studio.wait(job_id, timeout=180)
    assert job.status is JobStatus.DONE_WITH_ERRORS
    records = {r.name: r for r in studio.jobs.files(job_id)}
    assert records["BROKEN.dng"].status is FileStatus.FAILED
    assert not records["BROKEN.dng"].delivered
    assert job.files_done == job.files_total - 1

    manifest = studio.manifest(job_id)
    entries = {f["name"]: f for f in manifest["files"]}
    assert entries["BROKEN.dng"]["status"] == "FAILED"
    assert "BROKEN.dng" in entries["BROKEN.dng"]["error"]
    assert entries["BROKEN.dng"]["error_code"]
    assert "outputs" not in entries["BROKEN.dng"]
    assert all(e["outputs"] for n, e in entries.items() if n != "BROKEN.dng")
    # Nothing half-written is presented: no rendition of the broken file exists.
    listed = [
        o["Key"]
        for o in studio.objects.list(studio.target.processed_bucket, keys.processed_prefix(job_id))
    ]
    assert not any("BROKEN" in key for key in listed)


def test_a_shoot_where_every_file_fails_ends_failed_with_the_workers_cause(
    studio: Studio, tmp_path: Path
) -> None:
    shoot = tmp_path / "broken"
    shoot.mkdir()
    write_corrupt_raw(shoot / "A.dng", "truncated")
    write_corrupt_raw(shoot / "B.dng", "garbage")
    job_id = studio.upload(raw_files(shoot))
    job = studio.wait(job_id, timeout=180)
    assert job.status is JobStatus.FAILED
    assert job.error == "AllFilesFailed"
    # The worker's own words travel through SendTaskFailure to the job record.
    assert job.cause and "none of the 2 files developed" in job.cause, job.cause
    records = list(studio.jobs.files(job_id))
    assert [r.status for r in records] == [FileStatus.FAILED, FileStatus.FAILED]
    assert job.delivered is None


def test_a_worker_killed_mid_job_is_replaced_by_the_other_and_the_job_finishes(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    job_id = _processing_job(studio, tmp_path, count=12)
    assert cloud.instances is not None
    victim = str(lease_of(cloud)["instance_id"])
    cloud.instances.kill(victim)
    killed_at = time.monotonic()

    # Within the heartbeat window (plus the release's few seconds) the job's one shard
    # is leased again, to the pool's other instance.
    wait_for(
        lambda: lease_of(cloud).get("task_token") and lease_of(cloud)["instance_id"] != victim,
        HEARTBEAT_SECONDS + 20,
    )
    assert time.monotonic() - killed_at < HEARTBEAT_SECONDS + 20
    job = studio.wait(job_id, timeout=300)
    assert job.status is JobStatus.DONE, job.model_dump()
    assert job.files_done == 12
    assert studio.executions.describe(job.execution_arn or "")["status"] == "SUCCEEDED"
    assert wait_for(lambda: _instance_state(cloud) == "stopped", 30.0)
    assert lease_of(cloud)["state"] == "IDLE"


def test_the_same_manifest_event_twice_starts_one_execution(
    studio: Studio, cloud: LocalCloud, shoot: Path
) -> None:
    job_id = studio.upload(raw_files(shoot))
    # S3 delivers at least once: the same object-created event again, twice over.
    manifest_key = keys.raw_manifest_key(job_id)
    body = cloud.client("s3").get_object(Bucket=names.RAW_BUCKET, Key=manifest_key)["Body"].read()
    cloud.client("s3").put_object(Bucket=names.RAW_BUCKET, Key=manifest_key, Body=body)
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": names.RAW_BUCKET}, "object": {"key": manifest_key}},
            }
        ]
    }
    response = cloud.client("lambda").invoke(
        FunctionName=names.Function.ORCHESTRATOR, Payload=json.dumps(event)
    )
    assert "FunctionError" not in response, response["Payload"].read()
    job = studio.wait(job_id, timeout=180)
    assert job.status is JobStatus.DONE
    # A late duplicate after the job finished starts nothing either.
    cloud.client("lambda").invoke(
        FunctionName=names.Function.ORCHESTRATOR, Payload=json.dumps(event)
    )
    assert len(_executions_named(studio, job_id)) == 1
    assert studio.jobs.get(job_id).attempt == 1


def test_three_jobs_on_a_pool_of_two_all_finish_the_third_waiting_for_a_free_worker(
    studio: Studio, tmp_path: Path
) -> None:
    job_ids = [
        studio.upload(make_demo_shoot(tmp_path / name, count=3, width=900, height=600))
        for name in ("a", "b", "c")
    ]
    jobs = [studio.wait(job_id, timeout=300) for job_id in job_ids]
    assert [j.status for j in jobs] == [JobStatus.DONE] * 3
    a, b, c = sorted(jobs, key=lambda j: j.started_at or "")
    assert a.instance_id != b.instance_id
    # Never sharing an instance: the last started developing after one of the others
    # had recorded its last file (its worker is freed then, before packaging).
    first_free = min(_last_recorded(studio, a.job_id), _last_recorded(studio, b.job_id))
    assert first_free <= (c.started_at or ""), [j.model_dump() for j in (a, b, c)]


def _last_recorded(studio: Studio, job_id: str) -> str:
    """When the job's last file item was written (updated_at is not on FileRecord)."""
    items = studio.jobs._table.query(
        "#pk = :job AND begins_with(#sk, :file)",
        names={"#pk": names.JOB_ID, "#sk": names.SORT_KEY},
        values={":job": job_id, ":file": names.FILE_ITEM_PREFIX},
        consistent=True,
    )
    return max(str(item["updated_at"]) for item in items)


def test_reprocessing_a_finished_job_runs_a_second_execution_that_succeeds(
    studio: Studio, shoot: Path
) -> None:
    job_id = studio.upload(raw_files(shoot))
    first = studio.wait(job_id, timeout=180)
    assert first.status is JobStatus.DONE
    arn = studio.reprocess(job_id)
    assert arn != first.execution_arn
    second = studio.wait(job_id, timeout=180, since_execution=first.execution_arn)
    assert second.status is JobStatus.DONE
    assert second.attempt == 2
    assert second.executions == (first.execution_arn, arn)
    assert studio.executions.describe(arn)["status"] == "SUCCEEDED"


def test_a_job_whose_execution_was_aborted_in_the_console_can_be_reprocessed(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    job_id = _processing_job(studio, tmp_path, count=8)
    first = studio.jobs.get(job_id).execution_arn or ""
    cloud.client("stepfunctions").stop_execution(
        executionArn=first, error="Operator", cause="stopped from the console"
    )
    assert wait_for(lambda: studio.executions.status(first) == "ABORTED", 30.0)
    # No Catch runs for an aborted execution: the ending reconciler, told of the ending,
    # fails the job with the caller's words, stops the instance and frees the lease.
    job = wait_for(lambda: (j := studio.jobs.get(job_id)).is_terminal and j, 30)
    assert (job.status, job.error) == (JobStatus.FAILED, "ExecutionEnded")
    assert job.cause and "ended ABORTED" in job.cause, job.cause
    assert "Operator: stopped from the console" in job.cause
    assert wait_for(lambda: _instance_state(cloud) == "stopped", 30.0)
    assert wait_for(lambda: lease_of(cloud)["state"] == "IDLE", 30.0)

    arn = studio.reprocess(job_id)
    job = studio.wait(job_id, timeout=180, since_execution=first)
    assert job.status is JobStatus.DONE, job.model_dump()
    assert job.executions == (first, arn)
    assert studio.executions.status(arn) == "SUCCEEDED"
    assert {f["status"] for f in studio.manifest(job_id)["files"]} == {"DONE"}
    assert wait_for(lambda: _instance_state(cloud) == "stopped", 30.0)
    assert lease_of(cloud)["state"] == "IDLE"


def test_real_raw_samples_each_develop_or_fail_with_a_clear_error(
    studio: Studio, samples_dir: Path
) -> None:
    files = sorted((samples_dir / "raw").iterdir())
    job_id = studio.upload(files, name="shared samples")
    job = studio.wait(job_id, timeout=600)
    assert job.status in {JobStatus.DONE, JobStatus.DONE_WITH_ERRORS}
    manifest = {f["name"]: f for f in studio.manifest(job_id)["files"]}
    assert set(manifest) == {p.name for p in files}
    for name, entry in manifest.items():
        if entry["status"] == "DONE":
            assert set(entry["outputs"]) == {"web", "thumb", "full"}
        else:
            assert entry["error"].startswith(name), entry
            assert entry["error_code"] in {
                "empty_file",
                "unsupported_format",
                "truncated",
                "decode_failed",
                "blank_frame",
            }
    assert job.files_done >= 4  # KDC, CRW, Blackmagic DNG and LG DNG decode per the manifest


def _wait_execution(studio: Studio, arn: str, timeout: float = 120) -> dict:
    return wait_for(
        lambda: (d := studio.executions.describe(arn))["status"] != "RUNNING" and d, timeout
    )


def test_an_execution_started_by_hand_for_a_job_without_files_fails_clearly(
    studio: Studio, cloud: LocalCloud
) -> None:
    sfn = cloud.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=studio.target.state_machine_arn,
        name="by-hand-no-files",
        input=json.dumps({"job_id": "no-such-shoot"}),
    )["executionArn"]
    execution = _wait_execution(studio, arn)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidJob"
    assert "no files" in execution["cause"]
    assert studio.jobs.find("no-such-shoot") is None
    assert lease_of(cloud)["state"] == "IDLE"


def test_a_console_style_execution_with_only_the_job_id_reprocesses_a_finished_job(
    studio: Studio, cloud: LocalCloud, shoot: Path
) -> None:
    job_id = studio.upload(raw_files(shoot))
    first = studio.wait(job_id, timeout=180)
    assert first.status is JobStatus.DONE
    # What an operator types in the Step Functions console: a name and {"job_id": ...}.
    arn = cloud.client("stepfunctions").start_execution(
        stateMachineArn=studio.target.state_machine_arn,
        name=f"{job_id}-by-hand",
        input=json.dumps({"job_id": job_id}),
    )["executionArn"]
    assert _wait_execution(studio, arn, timeout=180)["status"] == "SUCCEEDED"
    job = studio.jobs.get(job_id)
    assert job.status is JobStatus.DONE
    assert job.attempt == 2
    assert job.execution_arn == arn


def test_a_hand_typed_input_without_a_job_id_fails_with_invalid_job(
    studio: Studio, cloud: LocalCloud
) -> None:
    arn = cloud.client("stepfunctions").start_execution(
        stateMachineArn=studio.target.state_machine_arn,
        name="by-hand-typo",
        input=json.dumps({"jobid": "typo"}),
    )["executionArn"]
    execution = _wait_execution(studio, arn)
    assert (execution["status"], execution["error"]) == ("FAILED", "InvalidJob")
    assert "job_id" in execution["cause"]


def test_a_worker_with_no_lease_stops_its_own_instance(cloud: LocalCloud) -> None:
    assert cloud.instances is not None
    instance = cloud.instance_ids[0]
    wait_for(lambda: _instance_state(cloud) == "stopped", 30.0)
    boots = cloud.instances.boots.get(instance, 0)
    # Someone starts the instance by hand (or a job's StartWorker died right after).
    cloud.client("ec2").start_instances(InstanceIds=[instance])
    wait_for(lambda: cloud.instances.boots.get(instance, 0) == boots + 1, 10)
    started = time.monotonic()
    wait_for(lambda: _instance_state(cloud) == "stopped", IDLE_SHUTDOWN_SECONDS + 20)
    assert time.monotonic() - started >= IDLE_SHUTDOWN_SECONDS - 1
    wait_for(lambda: cloud.instances.pid(instance) is None, 15)
    log = cloud.instances.log_path(instance).read_text()
    assert "shutting the instance down" in log
