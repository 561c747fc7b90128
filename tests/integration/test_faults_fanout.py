"""Shards under faults on the local cloud's pool of two: a worker killed mid-shard (the
shard is done again on the other worker, each file delivered once), and a shard whose
worker is lost twice (only its files fail)."""

from __future__ import annotations

from pathlib import Path

import pytest

from darkroom import keys
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.jobs import FileStatus, JobStatus
from darkroom.local.cloud import LocalCloud
from tests.harness import Studio, leases_of, wait_for
from tests.integration.conftest import HEARTBEAT_SECONDS, SHARD_SIZE

pytestmark = pytest.mark.integration


def _execution(studio: Studio, job_id: str) -> str:
    job = wait_for(lambda: studio.jobs.find(job_id), 60)
    return str(job.execution_arn)


def _shard_instance(cloud: LocalCloud, execution_arn: str, shard: int) -> str | None:
    """The instance developing the shard, once its worker holds the task token."""
    for lease in leases_of(cloud):
        if (
            lease.get("execution_arn") == execution_arn
            and int(lease.get("shard", -99)) == shard
            and lease.get("task_token")
        ):
            return str(lease["instance_id"])
    return None


def _done_in_shard(studio: Studio, job_id: str, shard: int) -> int:
    return sum(
        1 for r in studio.jobs.files(job_id) if r.shard == shard and r.status is FileStatus.DONE
    )


def _shoot(tmp_path: Path, count: int) -> list[Path]:
    # Frames large enough that a shard takes a few seconds to develop.
    return make_demo_shoot(tmp_path / "shoot", count=count, width=1600, height=1067)


def test_a_worker_killed_mid_shard_is_replaced_and_every_file_is_delivered_once(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    files = _shoot(tmp_path, SHARD_SIZE + 8)  # shards 0 (20 files) and 1 (8)
    job_id = studio.upload(files)
    arn = _execution(studio, job_id)
    victim = wait_for(lambda: _shard_instance(cloud, arn, 0), 120)
    wait_for(lambda: _done_in_shard(studio, job_id, 0) >= 2, 120)
    assert cloud.instances is not None
    cloud.instances.kill(victim)
    done_before = _done_in_shard(studio, job_id, 0)
    assert done_before < SHARD_SIZE, "the kill came after the whole shard"

    # The heartbeat timeout ends the first attempt; the second runs on the other worker.
    wait_for(
        lambda: (i := _shard_instance(cloud, arn, 0)) is not None and i != victim,
        HEARTBEAT_SECONDS * 8,
    )
    job = studio.wait(job_id, timeout=300)
    assert job.status is JobStatus.DONE, job.model_dump()
    assert (job.files_done, job.files_failed) == (len(files), 0)

    records = list(studio.jobs.files(job_id))
    assert all(r.status is FileStatus.DONE and r.delivered_run == job.run_id for r in records)
    # Each file once: one object per rendition per file under the run, nothing more
    # (a file cut off mid-upload was developed again under the same keys).
    run_keys = {
        o["Key"]
        for o in studio.objects.list(
            studio.target.processed_bucket, keys.run_prefix(job_id, job.run_id or "")
        )
    }
    delivered = {o.key for r in records for o in r.delivered.values()}
    assert len(delivered) == 3 * len(files)
    assert job.delivered is not None
    zips = {a.key for a in job.delivered.archives.values()}
    assert len(zips) == 3  # one "download all" ZIP per rendition
    # Every file in each, the killed attempt's too; the shards' parts of them are gone.
    assert all(a.files == len(files) for a in job.delivered.archives.values())
    assert run_keys == delivered | zips | {keys.run_manifest_key(job_id, job.run_id or "")}
    assert all(lease["state"] == "IDLE" for lease in leases_of(cloud))


def test_a_shard_whose_worker_is_lost_twice_fails_only_its_own_files(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    files = _shoot(tmp_path, SHARD_SIZE + 8)
    job_id = studio.upload(files)
    arn = _execution(studio, job_id)
    assert cloud.instances is not None
    first = wait_for(lambda: _shard_instance(cloud, arn, 1), 120)
    wait_for(lambda: _done_in_shard(studio, job_id, 1) >= 1, 120)
    cloud.instances.kill(first)
    second = wait_for(
        lambda: (i := _shard_instance(cloud, arn, 1)) != first and i, HEARTBEAT_SECONDS * 8
    )
    cloud.instances.kill(second)

    job = studio.wait(job_id, timeout=300)
    assert job.status is JobStatus.DONE_WITH_ERRORS, job.model_dump()
    records = {r.name: r for r in studio.jobs.files(job_id)}
    shard_0 = [r for r in records.values() if r.shard == 0]
    shard_1 = [r for r in records.values() if r.shard == 1]
    assert all(r.status is FileStatus.DONE for r in shard_0)
    failed = [r for r in shard_1 if r.status is FileStatus.FAILED]
    assert failed and len(failed) < len(shard_1)  # what it developed before stays done
    assert all(
        r.error_code == "shard_failed" and (r.error or "").startswith("shard 1: worker lost twice")
        for r in failed
    ), [r.error for r in failed]
    assert (job.files_done, job.files_failed) == (len(files) - len(failed), len(failed))
    # What did develop is delivered; the failed files have nothing (a first run).
    assert all(r.delivered for r in records.values() if r.status is FileStatus.DONE)
    assert not any(r.delivered for r in failed)
    assert all(lease["state"] == "IDLE" for lease in leases_of(cloud))
