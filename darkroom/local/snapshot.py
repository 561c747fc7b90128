"""The local cloud's state on disk: its buckets' objects and its tables' items.

moto keeps everything in memory, so a stopped local cloud forgot every job. `save`
exports what the project stores through the services' own APIs (every object version,
every item) and `load` puts it back into a freshly provisioned cloud the same way, so
nothing here depends on moto's internals.

Layout under the state directory::

    CURRENT                              name of the live snapshot
    snapshots/<stamp>/manifest.json      what was saved, and when
    snapshots/<stamp>/s3/<bucket>.jsonl  one line per object version, oldest first
    snapshots/<stamp>/dynamodb/<table>.jsonl  one item per line, DynamoDB JSON
    snapshots/<stamp>/stepfunctions/running.jsonl  executions still running, so far
    blobs/<id>                           object bodies, shared by every snapshot
    executions/<id>.json                 each ended execution: described, and its history

The cloud saves while it runs (every SAVE_EVERY_SECONDS, and soon after an execution
ends), not only when it stops, so a kill -9 loses at most what changed since the last
save. Every file is written to a temporary name, flushed to disk and only then renamed;
a save builds its snapshot beside the live one and only then points CURRENT at it (an
atomic rename), so a save that dies at any point leaves the previous snapshot whole and
nothing half-written is ever loaded. A body already on disk is not copied again (its id
is its bucket, key, ETag and size), so a save costs what changed, not the whole buckets.

Ended executions never change: each is archived once, outside the snapshots. Those
still running cannot be resumed (moto keeps nothing, and an execution is a live thread
of the server that ran it), so their history so far goes into the snapshot and comes
back ABORTED with INTERRUPTED_ERROR, as the job they ran is failed (`fail_interrupted`).

What is not kept: the workers table (its leases name pool instances that are
provisioned anew, with new ids), multipart uploads never completed, and queue messages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

from darkroom import names, pipeline
from darkroom.aws.ddb_codec import from_item
from darkroom.aws.job_store import JobStore
from darkroom.errors import JobBusy, StaleExecution
from darkroom.jobs import TERMINAL

# 2: bodies under blobs/ (1: under each snapshot's s3/<bucket>/, still loaded).
FORMAT: Final = 2
FORMATS_LOADED: Final = (1, 2)
CURRENT: Final = "CURRENT"
SNAPSHOTS: Final = "snapshots"
BLOBS: Final = "blobs"
EXECUTIONS: Final = "executions"
RUNNING: Final = "running.jsonl"
# How often a running cloud saves (a kill -9 loses at most this much, plus one save).
SAVE_EVERY_SECONDS: Final = 30.0
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
# What Step Functions answers as timestamps (JSON keeps them as ISO 8601 text).
_TIMESTAMPS: Final = frozenset({"startDate", "stopDate", "timestamp"})
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
    executions: int = 0
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
    had = current(directory) is not None or any((directory / EXECUTIONS).glob("*.json"))
    (directory / CURRENT).unlink(missing_ok=True)
    for sub in (SNAPSHOTS, BLOBS, EXECUTIONS):
        shutil.rmtree(directory / sub, ignore_errors=True)
    return had


# -- writing files whole ---------------------------------------------------------------
def _durable(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """`path` either absent or complete, and on disk before anything names it: written
    under a temporary name, flushed, fsynced, then renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as out:
        write(out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _durable_text(path: Path, text: str) -> None:
    _durable(path, lambda out: out.write(text.encode()))


def _sync_dir(path: Path) -> None:
    """A rename is durable once its directory is."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- save -----------------------------------------------------------------------------
def save(cloud: Clients, directory: Path) -> Summary:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    root = directory / SNAPSHOTS
    staging = root / f".partial-{stamp}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "s3").mkdir(parents=True)
    (staging / "dynamodb").mkdir()
    (staging / "stepfunctions").mkdir()
    (directory / BLOBS).mkdir(exist_ok=True)
    summary = Summary(directory)
    # Tables before buckets: an item is written after the objects it names (a file
    # record after its original, a job DONE after its renditions), so every object an
    # item read here names is still there when the buckets are read after it.
    ddb = cloud.client("dynamodb")
    for table in TABLES:
        summary.items += _save_table(ddb, table, staging / "dynamodb" / f"{table}.jsonl")
    s3 = cloud.client("s3")
    kept: set[str] = set()
    for bucket in BUCKETS:
        summary.objects += _save_bucket(s3, bucket, staging / "s3", directory / BLOBS, kept)
    summary.executions = _save_executions(
        cloud.client("stepfunctions"), directory, staging / "stepfunctions" / RUNNING
    )
    manifest = {
        "format": FORMAT,
        "saved_at": stamp,
        "buckets": list(BUCKETS),
        "tables": list(TABLES),
        "objects": summary.objects,
        "items": summary.items,
    }
    _durable_text(staging / "manifest.json", json.dumps(manifest, indent=2))
    for sub in ("s3", "dynamodb", "stepfunctions", "."):
        _sync_dir(staging / sub)
    _sync_dir(directory / BLOBS)
    os.replace(staging, root / stamp)
    _sync_dir(root)
    _durable_text(directory / CURRENT, stamp)
    _sync_dir(directory)
    # Only now is the previous snapshot no longer needed, nor bodies only it named.
    for old in root.iterdir():
        if old.name != stamp:
            shutil.rmtree(old, ignore_errors=True)
    for blob in (directory / BLOBS).iterdir():
        if blob.name not in kept:
            blob.unlink(missing_ok=True)
    return summary


def _blob_id(bucket: str, version: Mapping[str, Any]) -> str:
    """A body's name on disk: the same body of the same key keeps it from save to save
    (ETag and size change with the body), so it is copied once."""
    identity = "\0".join([bucket, version["Key"], str(version.get("ETag")), str(version["Size"])])
    return hashlib.sha256(identity.encode()).hexdigest()


def _save_bucket(s3: Any, bucket: str, out: Path, blobs: Path, kept: set[str]) -> int:
    known = _saved_before(blobs.parent, bucket)
    count = 0
    with (out / f"{bucket}.jsonl").open("w") as index:
        for entry, version in _oldest_first(s3, bucket):
            if not entry["delete_marker"]:
                entry["blob"] = _blob_id(bucket, version)
                entry["modified"] = version["LastModified"].isoformat()
                before = known.get(_same_version(entry))
                if before is not None and (blobs / entry["blob"]).is_file():
                    # Unchanged since the last save (any change is a new LastModified):
                    # no request at all.
                    entry["headers"], entry["metadata"] = before["headers"], before["metadata"]
                else:
                    _save_body(s3, bucket, entry, blobs, kept)
                kept.add(entry["blob"])
            index.write(json.dumps(entry) + "\n")
            count += 1
        index.flush()
        os.fsync(index.fileno())
    return count


def _save_body(s3: Any, bucket: str, entry: dict[str, Any], blobs: Path, kept: set[str]) -> None:
    kwargs = {"Bucket": bucket, "Key": entry["key"]}
    if entry["version_id"] != "null":
        kwargs["VersionId"] = entry["version_id"]
    if entry["blob"] in kept or (blobs / entry["blob"]).is_file():
        # The body is on disk already; its headers may differ (a copy onto itself).
        answer = s3.head_object(**kwargs)
    else:
        answer = s3.get_object(**kwargs)
        body = answer["Body"]
        _durable(blobs / entry["blob"], lambda f: shutil.copyfileobj(body, f, 1 << 20))
    entry["headers"] = {h: answer[h] for h in _HEADERS if answer.get(h)}
    entry["metadata"] = answer.get("Metadata") or {}


def _same_version(entry: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (entry["key"], entry["version_id"], entry.get("modified", ""), entry.get("blob", ""))


def _saved_before(directory: Path, bucket: str) -> dict[tuple[str, str, str, str], Any]:
    """The live snapshot's entries of a bucket, by version (nothing if it has none)."""
    snapshot = current(directory)
    index = snapshot / "s3" / f"{bucket}.jsonl" if snapshot else None
    if index is None or not index.is_file():
        return {}
    entries = (json.loads(line) for line in index.read_text().splitlines() if line)
    return {_same_version(e): e for e in entries if "blob" in e}


def _oldest_first(s3: Any, bucket: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Every version and delete marker of each key, in the order they were made, so
    that putting them again in this order leaves the same one latest."""
    by_key: dict[str, list[tuple[Any, int, dict[str, Any], dict[str, Any]]]] = defaultdict(list)
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
                by_key[version["Key"]].append((version["LastModified"], -position, entry, version))
    for key in sorted(by_key):
        entries = sorted(by_key[key], key=lambda e: (e[2]["latest"], e[0], e[1]))
        for _, _, entry, version in entries:
            yield entry, version


def _save_table(ddb: Any, table: str, path: Path) -> int:
    count = 0
    with path.open("w") as out:
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            for item in page.get("Items", []):
                out.write(json.dumps(_wire(item)) + "\n")
                count += 1
        out.flush()
        os.fsync(out.fileno())
    return count


def _save_executions(sfn: Any, directory: Path, running_path: Path) -> int:
    """Archive each ended execution not archived yet (it will never change again); write
    those still running, as far as they went, into the snapshot. How many were archived."""
    archive = directory / EXECUTIONS
    archive.mkdir(exist_ok=True)
    archived = 0
    with running_path.open("w") as running:
        for machines in sfn.get_paginator("list_state_machines").paginate():
            for machine in machines["stateMachines"]:
                pages = sfn.get_paginator("list_executions").paginate(
                    stateMachineArn=machine["stateMachineArn"]
                )
                for listed in (e for page in pages for e in page["executions"]):
                    path = archive / f"{_execution_id(listed['executionArn'])}.json"
                    if listed["status"] != "RUNNING" and path.is_file():
                        continue
                    record = _execution_record(sfn, listed["executionArn"])
                    if record["execution"]["status"] == "RUNNING":
                        running.write(json.dumps(record) + "\n")
                    else:
                        _durable_text(path, json.dumps(record))
                        archived += 1
        running.flush()
        os.fsync(running.fileno())
    _sync_dir(archive)
    return archived


def _execution_id(arn: str) -> str:
    # Execution names may hold characters a file name should not.
    return hashlib.sha256(arn.encode()).hexdigest()[:32]


def _execution_record(sfn: Any, arn: str) -> dict[str, Any]:
    described = sfn.describe_execution(executionArn=arn)
    described.pop("ResponseMetadata", None)
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
    events = [e for page in pages for e in page["events"]]
    return {"execution": _undated(described), "events": _undated(events)}


def _undated(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _undated(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_undated(v) for v in value]
    return value


def _dated(value: Any) -> Any:
    """Step Functions' timestamps back as datetimes, as its API answers them."""
    if isinstance(value, dict):
        return {
            k: (datetime.fromisoformat(v) if k in _TIMESTAMPS and isinstance(v, str) else _dated(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_dated(v) for v in value]
    return value


def archived_executions(directory: Path) -> list[dict[str, Any]]:
    """Every execution an earlier life of the cloud saw end ({"execution": DescribeExecution's
    answer, "events": its whole history}, timestamps as datetimes), oldest first.

    Those the last save found running are ended here, ABORTED with INTERRUPTED_ERROR at
    the time of that save (the last moment they were known to run), and archived so."""
    archive = directory / EXECUTIONS
    snapshot = current(directory)
    running = snapshot / "stepfunctions" / RUNNING if snapshot else None
    if snapshot is not None and running is not None and running.is_file():
        manifest = json.loads((snapshot / "manifest.json").read_text())
        stopped = datetime.strptime(manifest["saved_at"], "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
        archive.mkdir(exist_ok=True)
        for line in running.read_text().splitlines():
            record = json.loads(line)
            path = archive / f"{_execution_id(record['execution']['executionArn'])}.json"
            if not path.is_file():
                _durable_text(path, json.dumps(_aborted(record, stopped.isoformat())))
    records = [_dated(json.loads(p.read_text())) for p in archive.glob("*.json")]
    return sorted(records, key=lambda r: r["execution"]["startDate"])


def _aborted(record: dict[str, Any], stopped: str) -> dict[str, Any]:
    last = record["events"][-1]["id"] if record["events"] else 0
    execution = record["execution"] | {
        "status": "ABORTED",
        "stopDate": stopped,
        "error": INTERRUPTED_ERROR,
        "cause": INTERRUPTED_CAUSE,
    }
    aborted = {
        "timestamp": stopped,
        "type": "ExecutionAborted",
        "id": last + 1,
        "previousEventId": last,
        "executionAbortedEventDetails": {"error": INTERRUPTED_ERROR, "cause": INTERRUPTED_CAUSE},
    }
    return {"execution": execution, "events": [*record["events"], aborted]}


# -- load -----------------------------------------------------------------------------
def load(cloud: Clients, directory: Path) -> Summary | None:
    """Put the live snapshot back into a freshly provisioned cloud (None: there is none).

    Bucket notifications are off meanwhile: a restored manifest must not submit its job
    again, nor a restored image be thumbnailed again."""
    snapshot = current(directory)
    if snapshot is None:
        return None
    manifest = json.loads((snapshot / "manifest.json").read_text())
    if manifest.get("format") not in FORMATS_LOADED:
        raise ValueError(f"{snapshot}: snapshot format {manifest.get('format')} is not {FORMAT}")
    summary = Summary(directory)
    s3 = cloud.client("s3")
    for bucket in manifest["buckets"]:
        wiring = s3.get_bucket_notification_configuration(Bucket=bucket)
        wiring.pop("ResponseMetadata", None)
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        try:
            summary.objects += _load_bucket(
                s3, bucket, snapshot / "s3", directory / BLOBS, summary.versions
            )
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


def _load_bucket(s3: Any, bucket: str, root: Path, blobs: Path, versions: dict[str, str]) -> int:
    count = 0
    with (root / f"{bucket}.jsonl").open() as index:
        for line in index:
            entry = json.loads(line)
            if entry["delete_marker"]:
                answer = s3.delete_object(Bucket=bucket, Key=entry["key"])
            else:
                # A format 1 snapshot kept its bodies inside it.
                stored = blobs / entry["blob"] if "blob" in entry else root / bucket / entry["file"]
                with stored.open("rb") as body:
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
