"""A job of several shards on the local cloud's pool of two: developed side by side,
then packaged and marked done from the file items."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from benchmarks.orchestration import state_durations
from darkroom import keys, names
from darkroom.imaging.fixtures import make_demo_shoot
from darkroom.jobs import FileStatus, JobStatus
from darkroom.local.cloud import LocalCloud
from tests.harness import Studio, leases_of, wait_for
from tests.integration.conftest import SHARD_SIZE

pytestmark = pytest.mark.integration

# Three shards on two workers. The 600 files in shards of 200 take several
# minutes on a two-core laptop; 60 in shards of 20 keep the same shape.
FILES = 3 * SHARD_SIZE


def shard_spans(studio: Studio, job_id: str) -> dict[int, tuple[str, str]]:
    """Per shard, when its first and last file were recorded."""
    times: dict[int, list[str]] = defaultdict(list)
    for item in studio.jobs._table.query(  # updated_at is not on the FileRecord model
        "#pk = :job AND begins_with(#sk, :file)",
        names={"#pk": names.JOB_ID, "#sk": names.SORT_KEY},
        values={":job": job_id, ":file": names.FILE_ITEM_PREFIX},
        consistent=True,
    ):
        times[int(item["shard"])].append(str(item["updated_at"]))
    return {shard: (min(t), max(t)) for shard, t in times.items()}


def most_at_once(history: list[dict[str, Any]], state: str) -> int:
    """The most iterations in `state` at the same time, from its entered/exited events."""
    open_, most = 0, 0
    for event in history:
        if event.get("stateEnteredEventDetails", {}).get("name") == state:
            open_ += 1
            most = max(most, open_)
        elif event.get("stateExitedEventDetails", {}).get("name") == state:
            open_ -= 1
    return most


def test_a_job_of_three_shards_is_developed_two_at_a_time_and_ends_done(
    studio: Studio, cloud: LocalCloud, tmp_path: Path
) -> None:
    files = make_demo_shoot(tmp_path / "shoot", count=FILES, width=300, height=200)
    # Both workers boot together: none is still shutting down after an earlier test's
    # job (a StartWorker waits for that), or one shard could finish before the other
    # worker is up, and nothing would overlap however well the pool fans out.
    assert cloud.instances is not None
    instances = cloud.instances
    wait_for(lambda: all(instances.pid(i) is None for i in cloud.instance_ids), 60)
    started = time.monotonic()
    job_id = studio.upload(files, name="sharded")
    job = studio.wait(job_id, timeout=400)
    wall = time.monotonic() - started
    assert job.status is JobStatus.DONE, job.model_dump()
    assert (job.files_total, job.files_done, job.files_failed) == (FILES, FILES, 0)
    assert job.delivered is not None and job.delivered.files_delivered == FILES

    records = list(studio.jobs.files(job_id))
    assert sorted({r.shard for r in records}) == [0, 1, 2]
    assert all(r.status is FileStatus.DONE and r.delivered_run == job.run_id for r in records)
    # Two shards were on workers at once: two WaitForWorker states open together (each
    # entered once its shard holds a lease and its instance started). When their files
    # were recorded depends on how fast each worker booted, on a loaded machine too.
    history = studio.executions.history(job.execution_arn or "")
    assert most_at_once(history, "WaitForWorker") == 2
    spans = shard_spans(studio, job_id)

    execution = studio.executions.describe(job.execution_arn or "")
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["status"] == "DONE"
    manifest = studio.manifest(job_id)
    assert [f["name"] for f in manifest["files"]] == sorted(p.name for p in files)
    assert {f["shard"] for f in manifest["files"]} == {0, 1, 2}
    assert manifest["manifest_key"] == keys.run_manifest_key(job_id, job.run_id or "")
    # One ZIP per rendition of every file, joined from the shards' parts, which are gone.
    s3 = cloud.client("s3")
    assert sorted(job.delivered.archives) == sorted(records[0].delivered)
    for rendition, archive in job.delivered.archives.items():
        body = s3.get_object(Bucket=names.PROCESSED_BUCKET, Key=archive.key)["Body"].read()
        with zipfile.ZipFile(io.BytesIO(body)) as zipped:
            assert zipped.testzip() is None
            expected = {
                f"{Path(r.name).stem}{Path(r.delivered[rendition].key).suffix}": r for r in records
            }
            assert sorted(zipped.namelist()) == sorted(expected)
            first = sorted(expected)[0]
            rendered = expected[first].delivered[rendition].key
            original = s3.get_object(Bucket=names.PROCESSED_BUCKET, Key=rendered)["Body"].read()
            assert zipped.read(first) == original
    left = s3.list_objects_v2(Bucket=names.PROCESSED_BUCKET, Prefix=keys.processed_prefix(job_id))
    assert not [o["Key"] for o in left.get("Contents", []) if ".parts/" in o["Key"]]
    # Every lease is free again, the packaging's too.
    assert all(lease["state"] == "IDLE" for lease in leases_of(cloud))

    per_state = state_durations(history)
    print(
        f"\n{FILES} files in {len(spans)} shards: {wall:.1f} s wall; shard spans {spans}; "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(per_state.items()))
    )
