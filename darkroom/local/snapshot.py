"""The local cloud's state on disk: its buckets' objects and its tables' items.

moto keeps everything in memory, so a stopped local cloud forgot every job. `save`
exports what the project stores through the services' own APIs (every object version,
every item) and `load` puts it back into a freshly provisioned cloud the same way, so
nothing here depends on moto's internals.

Layout under the state directory::

    CURRENT                              name of the live snapshot
    snapshots/<stamp>/manifest.json      what was saved, and when
    snapshots/<stamp>/s3/<bucket>.jsonl  one line per object version, oldest first
    snapshots/<stamp>/s3/<bucket>/<n>    their bodies
    snapshots/<stamp>/dynamodb/<table>.jsonl  one item per line, DynamoDB JSON

A save writes a new snapshot beside the live one and only then points CURRENT at it
(an atomic rename), so a save that dies half way leaves the previous snapshot whole.

What is not kept: Step Functions executions and their histories (moto cannot import
them: a job still running is failed on load, see `fail_interrupted`), the workers
table (its leases name pool instances that are provisioned anew, with new ids), multipart
uploads never completed, and queue messages.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from darkroom import names, pipeline
from darkroom.aws.ddb_codec import from_item
from darkroom.aws.job_store import JobStore
from darkroom.errors import JobBusy, StaleExecution
from darkroom.jobs import TERMINAL

FORMAT: Final = 1
CURRENT: Final = "CURRENT"
SNAPSHOTS: Final = "snapshots"
BUCKETS: Final = (names.RAW_BUCKET, names.PROCESSED_BUCKET, names.INPUT_BUCKET, names.OUTPUT_BUCKET)
# Leases name this run's pool instances; the next start provisions new ones.
TABLES: Final = tuple(t.name for t in names.TABLES if t.name != names.WORKERS_TABLE)
# Object headers a PutObject sets again (the rest S3 derives).
_HEADERS: Final = (
    "ContentType",
    "ContentEncoding",
    "ContentDisposition",
    "ContentLanguage",
    "CacheControl",
)
_BATCH_WRITE_MAX: Final = 25
INTERRUPTED_ERROR: Final = "LocalCloudStopped"
INTERRUPTED_CAUSE: Final = "the local cloud stopped while this job ran; reprocess it"

log = logging.getLogger(__name__)


class Clients(Protocol):
    def client(self, service: str) -> Any: ...


@dataclass
class Summary:
    directory: Path
    objects: int = 0
    items: int = 0
    # RAW object versions get new ids on import: old id -> new id.
    versions: dict[str, str] = field(default_factory=dict)
    # The job items loaded (what `fail_interrupted` looks at).
    jobs: list[dict[str, Any]] = field(default_factory=list)


def current(directory: Path) -> Path | None:
    """The live snapshot under a state directory, if one was saved."""
    try:
        name = (directory / CURRENT).read_text().strip()
    except FileNotFoundError:
        return None
    path = directory / SNAPSHOTS / name
    return path if name and (path / "manifest.json").is_file() else None


def reset(directory: Path) -> bool:
    """Forget the saved state (only what `save` wrote; logs stay). Whether there was any."""
    had = current(directory) is not None
    (directory / CURRENT).unlink(missing_ok=True)
    shutil.rmtree(directory / SNAPSHOTS, ignore_errors=True)
    return had


# -- save -----------------------------------------------------------------------------
def save(cloud: Clients, directory: Path) -> Summary:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    root = directory / SNAPSHOTS
    staging = root / f".partial-{stamp}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "s3").mkdir(parents=True)
    (staging / "dynamodb").mkdir()
    summary = Summary(directory)
    s3 = cloud.client("s3")
    for bucket in BUCKETS:
        summary.objects += _save_bucket(s3, bucket, staging / "s3")
    ddb = cloud.client("dynamodb")
    for table in TABLES:
        summary.items += _save_table(ddb, table, staging / "dynamodb" / f"{table}.jsonl")
    manifest = {
        "format": FORMAT,
        "saved_at": stamp,
        "buckets": list(BUCKETS),
        "tables": list(TABLES),
        "objects": summary.objects,
        "items": summary.items,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    os.replace(staging, root / stamp)
    pointer = directory / f"{CURRENT}.tmp"
    with pointer.open("w") as out:
        out.write(stamp)
        out.flush()
        os.fsync(out.fileno())
    os.replace(pointer, directory / CURRENT)
    # Only now is the previous snapshot no longer needed.
    for old in root.iterdir():
        if old.name != stamp:
            shutil.rmtree(old, ignore_errors=True)
    return summary


def _save_bucket(s3: Any, bucket: str, out: Path) -> int:
    bodies = out / bucket
    bodies.mkdir()
    count = 0
    with (out / f"{bucket}.jsonl").open("w") as index:
        for entry in _oldest_first(s3, bucket):
            if not entry["delete_marker"]:
                kwargs = {"Bucket": bucket, "Key": entry["key"]}
                if entry["version_id"] != "null":
                    kwargs["VersionId"] = entry["version_id"]
                answer = s3.get_object(**kwargs)
                entry["file"] = str(count)
                with (bodies / entry["file"]).open("wb") as body:
                    shutil.copyfileobj(answer["Body"], body, 1024 * 1024)
                entry["headers"] = {h: answer[h] for h in _HEADERS if answer.get(h)}
                entry["metadata"] = answer.get("Metadata") or {}
            index.write(json.dumps(entry) + "\n")
            count += 1
    return count


def _oldest_first(s3: Any, bucket: str) -> Iterator[dict[str, Any]]:
    """Every version and delete marker of each key, in the order they were made, so
    that putting them again in this order leaves the same one latest."""
    by_key: dict[str, list[tuple[Any, int, dict[str, Any]]]] = defaultdict(list)
    position = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        # S3 lists each key's versions newest first; the position breaks a tie of
        # LastModified (moto's clock, and S3's, may stamp two writes alike).
        for kind in ("Versions", "DeleteMarkers"):
            for version in page.get(kind, []):
                position += 1
                entry = {
                    "key": version["Key"],
                    "version_id": version.get("VersionId") or "null",
                    "delete_marker": kind == "DeleteMarkers",
                    "latest": bool(version.get("IsLatest")),
                }
                by_key[version["Key"]].append((version["LastModified"], -position, entry))
    for key in sorted(by_key):
        entries = sorted(by_key[key], key=lambda e: (e[2]["latest"], e[0], e[1]))
        for _, _, entry in entries:
            yield entry


def _save_table(ddb: Any, table: str, path: Path) -> int:
    count = 0
    with path.open("w") as out:
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            for item in page.get("Items", []):
                out.write(json.dumps(_wire(item)) + "\n")
                count += 1
    return count


# -- load -----------------------------------------------------------------------------
def load(cloud: Clients, directory: Path) -> Summary | None:
    """Put the live snapshot back into a freshly provisioned cloud (None: there is none).

    Bucket notifications are off meanwhile: a restored manifest must not submit its job
    again, nor a restored image be thumbnailed again."""
    snapshot = current(directory)
    if snapshot is None:
        return None
    manifest = json.loads((snapshot / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{snapshot}: snapshot format {manifest.get('format')} is not {FORMAT}")
    summary = Summary(directory)
    s3 = cloud.client("s3")
    for bucket in manifest["buckets"]:
        wiring = s3.get_bucket_notification_configuration(Bucket=bucket)
        wiring.pop("ResponseMetadata", None)
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        try:
            summary.objects += _load_bucket(s3, bucket, snapshot / "s3", summary.versions)
        finally:
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration=wiring
            )
    ddb = cloud.client("dynamodb")
    for table in manifest["tables"]:
        items = [
            _rewrite_versions(json.loads(line), summary.versions)
            for line in (snapshot / "dynamodb" / f"{table}.jsonl").read_text().splitlines()
            if line
        ]
        _write_items(ddb, table, items)
        summary.items += len(items)
        if table == names.JOBS_TABLE:
            summary.jobs = [
                _plain(i) for i in items if i.get(names.SORT_KEY) == {"S": names.JOB_ITEM}
            ]
    return summary


def _load_bucket(s3: Any, bucket: str, root: Path, versions: dict[str, str]) -> int:
    count = 0
    with (root / f"{bucket}.jsonl").open() as index:
        for line in index:
            entry = json.loads(line)
            if entry["delete_marker"]:
                answer = s3.delete_object(Bucket=bucket, Key=entry["key"])
            else:
                with (root / bucket / entry["file"]).open("rb") as body:
                    answer = s3.put_object(
                        Bucket=bucket,
                        Key=entry["key"],
                        Body=body,
                        Metadata=entry["metadata"],
                        **entry["headers"],
                    )
            new = answer.get("VersionId")
            if entry["version_id"] != "null" and new:
                versions[entry["version_id"]] = new
            count += 1
    return count


def _rewrite_versions(value: Any, versions: Mapping[str, str]) -> Any:
    """Records name the original versions they develop from (FileRecord.original_version,
    sidecar_version): point them at the re-imported ones. Any string equal to an old
    version id is one, whatever its field (S3 version ids are long random strings)."""
    if isinstance(value, dict):
        return {
            k: (versions.get(v, v) if k == "S" else _rewrite_versions(v, versions))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite_versions(v, versions) for v in value]
    return value


def _write_items(ddb: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), _BATCH_WRITE_MAX):
        requests = [
            {"PutRequest": {"Item": _unwire(item)}}
            for item in items[start : start + _BATCH_WRITE_MAX]
        ]
        pending: Mapping[str, Any] = {table: requests}
        for attempt in range(10):
            answer = ddb.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}
            if not pending:
                break
            time.sleep(0.05 * 2**attempt)
        else:
            raise RuntimeError(f"{table}: items left unwritten after retries")


# DynamoDB JSON as the wire has it: binary values are base64 text.
def _wire(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (
                base64.b64encode(v).decode()
                if k == "B"
                else [base64.b64encode(b).decode() for b in v]
                if k == "BS"
                else _wire(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def _unwire(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: (
                base64.b64decode(v)
                if k == "B"
                else [base64.b64decode(b) for b in v]
                if k == "BS"
                else _unwire(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_unwire(v) for v in value]
    return value


def _plain(item: Mapping[str, Any]) -> dict[str, Any]:
    return dict(from_item(_unwire(item)))


# -- what a restart interrupted ---------------------------------------------------------
def fail_interrupted(jobs: JobStore, loaded: Iterable[Mapping[str, Any]]) -> list[str]:
    """Jobs whose execution was running when the cloud stopped: that execution is gone
    (moto keeps none), so nothing would ever finish them. Each is failed as the ending
    reconciler fails a job whose execution ended (pipeline.fail_ended), which leaves it
    open to a reprocess. A reprocess claimed but never started is withdrawn too."""
    failed = []
    for job in loaded:
        job_id = job[names.JOB_ID]
        if job.get("claimed_by"):
            jobs.release_claim(job_id, job["claimed_by"])
        if job.get("status") in TERMINAL:
            continue
        execution = job.get("execution_arn")
        if not execution:
            log.warning("job %s is %s with no execution: left as it is", job_id, job["status"])
            continue
        try:
            pipeline.fail_ended(
                job_id,
                execution,
                "ABORTED",
                jobs,
                error=INTERRUPTED_ERROR,
                cause=INTERRUPTED_CAUSE,
            )
        except (StaleExecution, JobBusy) as exc:
            log.warning("job %s not failed: %s", job_id, exc)
            continue
        failed.append(job_id)
    return failed
