"""No item of the jobs table grows with the job: the worst case of each, as the real
encoder writes it, stays far under DynamoDB's 400 KB item limit."""

from __future__ import annotations

import json
from typing import Any

from darkroom import keys, names
from darkroom.aws.ddb_codec import to_item
from darkroom.aws.job_store import shard_key
from darkroom.jobs import (
    MAX_CAUSE_CHARS,
    MAX_ERROR_CHARS,
    MAX_EXECUTIONS,
    MAX_NOTE_CHARS,
    MAX_NOTE_KEY,
    MAX_NOTES,
    MAX_SOFTWARE,
    MAX_VERSION_CHARS,
    Archive,
    ArchiveSegment,
    DeliveredRun,
    FileRecord,
    FileStatus,
    Job,
    JobStatus,
    Output,
    Shard,
    utc_now,
)
from darkroom.recipes import MAX_RENDITIONS, NAME_PATTERN, parse_recipe
from darkroom.settings import ApiLimits

LIMIT = 100 * 1024
# The widest UTF-8 character: 4 bytes each.
WIDE = "\U0001f4f7"
JOB_ID = "j" * 40
STATE_MACHINE = (
    f"arn:aws:states:ap-southeast-2:123456789012:stateMachine:{names.state_machine_name()}"
)


def _size(item: dict[str, Any]) -> int:
    """An upper bound of DynamoDB's size of the item: its wire form as JSON, which spells
    out every type tag, quote and brace that DynamoDB does not count."""
    return len(json.dumps(to_item(item), ensure_ascii=False).encode())


def _run(n: int) -> str:
    # Execution names are at most 80 characters.
    return f"{JOB_ID}.rp-{n:0>{80 - len(JOB_ID) - 4}}"


def _largest_recipe() -> dict[str, Any]:
    assert NAME_PATTERN.pattern.endswith("{1,32}")
    renditions = [
        {"name": f"{i}".rjust(32, "r"), "long_edge": 65_535, "format": "tiff", "quality": 100}
        for i in range(MAX_RENDITIONS)
    ]
    recipe = {
        "renditions": renditions,
        "white_balance": {"mode": "fixed", "multipliers": [1.123456789, 0.987654321, 19.5]},
        "exposure": {"mode": "manual", "compensation_ev": -4.987654321},
        "highlights": "recover",
        "colour_space": "display-p3",
        "metadata": {"keep_gps": True},
    }
    return parse_recipe(recipe).model_dump(mode="json")


def test_the_largest_job_item_stays_under_100_kb() -> None:
    files = max(ApiLimits().max_files_per_job, 5000)
    now = utc_now()
    job = Job(
        job_id=JOB_ID,
        status=JobStatus.FAILED,
        name=WIDE * 200,
        recipe=_largest_recipe(),
        files_total=files,
        files_done=files,
        files_failed=files,
        run_id=_run(2),
        execution_arn=f"{STATE_MACHINE.replace('stateMachine', 'execution')}:{_run(2)}",
        executions=tuple(
            f"{STATE_MACHINE.replace('stateMachine', 'execution')}:{_run(i)}"
            for i in range(MAX_EXECUTIONS)
        ),
        claimed_by=f"{STATE_MACHINE.replace('stateMachine', 'execution')}:{_run(3)}",
        claimed_at=1.0e9,
        attempt=10**6,
        instance_id="i-0123456789abcdef0",
        manifest_key=keys.run_manifest_key(JOB_ID, _run(2)),
        delivered=DeliveredRun(
            run_id=_run(1),
            finished_at=now,
            manifest_key=keys.run_manifest_key(JOB_ID, _run(1)),
            files_delivered=files,
            # A ZIP per rendition, each of a whole job (S3 objects are at most 5 TB).
            archives={
                r["name"]: Archive(
                    key=keys.archive_key(JOB_ID, _run(1), r["name"]), bytes=5 * 10**12, files=files
                )
                for r in _largest_recipe()["renditions"]
            },
        ),
        error="E" * 256,  # Step Functions' limit for an error name
        cause=WIDE * MAX_CAUSE_CHARS,
        created_at=now,
        updated_at=now,
        started_at=now,
        finished_at=now,
    )
    item = {
        names.JOB_ID: JOB_ID,
        names.SORT_KEY: names.JOB_ITEM,
        names.ENTITY: names.JOB_ENTITY,
        names.CREATED_KEY: job.created_key,
        **job.model_dump(mode="json", exclude_none=True),
    }
    assert _size(item) < LIMIT, _size(item)


def test_the_largest_file_item_stays_under_100_kb() -> None:
    name = "a" * 251 + ".dng"  # a file name is at most 255 bytes
    assert keys.validate_file_name(name)
    recipe = _largest_recipe()

    def outputs(run: str) -> dict[str, Output]:
        return {
            r["name"]: Output(
                key=keys.rendition_key(JOB_ID, run, r["name"], name, "tif"),
                width=65_535,
                height=65_535,
                bytes=5 * 1024**4,
                content_type="image/tiff",
                sha256="f" * 64,
            )
            for r in recipe["renditions"]
        }

    record = FileRecord(
        name=name,
        original_version="v" * 1024,
        run_id=_run(2),
        status=FileStatus.FAILED,
        # Never both outputs and an error in one attempt; the sum is the bound.
        outputs=outputs(_run(2)),
        error_code="c" * 64,
        error=WIDE * MAX_ERROR_CHARS,
        delivered_run=_run(1),
        delivered=outputs(_run(1)),
        delivered_at=utc_now(),
        # The develop notes, each at its bound, and the longest sidecar name.
        notes={f"{i}" * MAX_NOTE_KEY: WIDE * MAX_NOTE_CHARS for i in range(MAX_NOTES)},
        sidecar=name + ".xmp",
        sidecar_version="v" * 1024,
        # The lineage: digests, and the software's names and versions at their bounds.
        original_sha256="f" * 64,
        recipe_sha256="f" * 64,
        software={f"{i}" * MAX_NOTE_KEY: WIDE * MAX_VERSION_CHARS for i in range(MAX_SOFTWARE)},
        timings={step: 1e9 for step in ("download", "decode", "render", "upload")},
    )
    item = {
        names.JOB_ID: JOB_ID,
        names.SORT_KEY: names.FILE_ITEM_PREFIX + name,
        "updated_at": utc_now(),
        **record.model_dump(mode="json", exclude_none=True),
    }
    assert _size(item) < LIMIT, _size(item)
    # File items never enter the listing index.
    assert names.ENTITY not in item


def test_the_largest_shard_item_stays_under_100_kb() -> None:
    name = "a" * 251 + ".dng"
    renditions = [r["name"] for r in _largest_recipe()["renditions"]]
    shard = Shard(
        run_id=_run(2),
        first=name,
        last=name.replace("a", "z"),
        files=10**6,
        packages=True,
        # Never both, but the sum is the bound: the ZIPs and the parts of each rendition.
        archives={
            r: Archive(key=keys.archive_key(JOB_ID, _run(2), r), bytes=5 * 10**12, files=10**6)
            for r in renditions
        },
        segments={
            r: ArchiveSegment(
                key=keys.archive_segment_key(JOB_ID, _run(2), r, 10**5),
                bytes=5 * 10**12,
                files=10**6,
                data_bytes=5 * 10**12,
            )
            for r in renditions
        },
    )
    item = {
        **shard_key(JOB_ID, 10**5),
        **shard.model_dump(mode="json", exclude_none=True),
    }
    assert _size(item) < LIMIT, _size(item)
