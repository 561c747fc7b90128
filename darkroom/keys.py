"""S3 key layout: the one place that knows where objects live."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from pathlib import PurePosixPath

from darkroom.names import ASSETS_PREFIX, MANIFEST_NAME, PROCESSED_PREFIX, RAW_PREFIX

# Never a ".": reprocess execution names rely on it (pipeline.reprocess_execution_name).
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


def validate_job_id(job_id: str) -> str:
    """A job id is used in keys and execution names, so it must be a safe single segment."""
    # fullmatch: with match and "$", "job\n" would pass ("$" also matches before a
    # trailing newline).
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(
            f"invalid job id {job_id!r}: use 1-40 letters, digits, '-' or '_' "
            "(starting with a letter or digit)"
        )
    return job_id


def new_job_id(now: datetime | None = None) -> str:
    """A fresh job id: sortable by creation time, with random bits so ids never collide."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return validate_job_id(f"{stamp}-{secrets.token_hex(3)}")


def validate_file_name(name: str) -> str:
    """A RAW file name within a job: one path segment, nothing hidden, no traversal."""
    if (
        not name
        or name in {".", ".."}
        or "/" in name
        or "\\" in name
        or name.startswith(".")
        or len(name.encode()) > 255
        or any(ord(c) < 32 for c in name)
    ):
        raise ValueError(f"invalid file name {name!r}: must be a single plain file name")
    return name


def raw_prefix(job_id: str) -> str:
    return f"{RAW_PREFIX}{validate_job_id(job_id)}/"


def raw_key(job_id: str, file_name: str) -> str:
    return raw_prefix(job_id) + validate_file_name(file_name)


def raw_manifest_key(job_id: str) -> str:
    return raw_prefix(job_id) + MANIFEST_NAME


def job_id_from_manifest_key(key: str) -> str | None:
    """The job id if `key` is a job's submission manifest, else None.

    Only `raw/<job_id>/manifest.json` starts a job; RAW uploads next to it must not.
    """
    parts = key.split("/")
    if len(parts) != 3 or f"{parts[0]}/" != RAW_PREFIX or parts[2] != MANIFEST_NAME:
        return None
    try:
        return validate_job_id(parts[1])
    except ValueError:
        return None


def file_name_from_raw_key(job_id: str, key: str) -> str | None:
    """The file name of a RAW object of this job (None for the manifest or nested keys)."""
    prefix = raw_prefix(job_id)
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix) :]
    if not rest or "/" in rest or rest == MANIFEST_NAME:
        return None
    return rest


def processed_prefix(job_id: str) -> str:
    return f"{PROCESSED_PREFIX}{validate_job_id(job_id)}/"


def run_id(execution_arn: str) -> str:
    """A run's id: its execution's name, the last ":" segment of the ARN (unique per
    state machine)."""
    return validate_run_id(execution_arn.rsplit(":", 1)[-1])


def validate_run_id(run: str) -> str:
    # Execution names never hold "/" (Step Functions refuses it), so a run is one key
    # segment; "." and ".." would read as paths to people and tools.
    if not run or run in {".", ".."} or "/" in run or len(run) > 80:
        raise ValueError(f"invalid run id {run!r}: an execution name is one key segment")
    return run


def run_prefix(job_id: str, run: str) -> str:
    """Where one run of a job writes: its renditions and its manifest."""
    return f"{processed_prefix(job_id)}{validate_run_id(run)}/"


def rendition_key(job_id: str, run: str, rendition: str, file_name: str, extension: str) -> str:
    stem = PurePosixPath(validate_file_name(file_name)).stem
    return f"{run_prefix(job_id, run)}{rendition}/{stem}.{extension}"


def run_manifest_key(job_id: str, run: str) -> str:
    return run_prefix(job_id, run) + MANIFEST_NAME


def archive_key(job_id: str, run: str, rendition: str) -> str:
    """A run's "download all" ZIP of one rendition. Beside the rendition directories,
    never inside one: `<rendition>.zip` cannot be a rendition name (no "." allowed)."""
    return f"{run_prefix(job_id, run)}{rendition}.zip"


def archive_segment_key(job_id: str, run: str, rendition: str, shard: int) -> str:
    """One shard's part of a run's ZIP of `rendition`, until the packager joins them.
    `<rendition>.zip.parts/` holds a ".", so it is no rendition's directory either."""
    return f"{archive_key(job_id, run, rendition)}.parts/{shard:06d}.zip"


# A studio asset's name: what a recipe writes, and one key segment.
ASSET_NAME = re.compile(r"[a-z0-9_-]{1,32}")
ASSET_EXTENSION = "png"
# A logo, not a photograph: a larger asset is a mistake, and a hostile PNG's declared
# size must not cost memory before it is refused.
MAX_ASSET_BYTES = 10 * 1024 * 1024
MAX_ASSET_EDGE = 8192


def validate_asset_name(name: str) -> str:
    if not ASSET_NAME.fullmatch(name):
        raise ValueError(
            f"invalid asset name {name!r}: use 1-32 lowercase letters, digits, '_' or '-'"
        )
    return name


def asset_key(name: str) -> str:
    return f"{ASSETS_PREFIX}{validate_asset_name(name)}.{ASSET_EXTENSION}"


def asset_name_from_key(key: str) -> str | None:
    """The asset a key of the assets prefix holds (None for anything else there)."""
    if not (key.startswith(ASSETS_PREFIX) and key.endswith(f".{ASSET_EXTENSION}")):
        return None
    name = key[len(ASSETS_PREFIX) : -len(ASSET_EXTENSION) - 1]
    return name if ASSET_NAME.fullmatch(name) else None


def thumbnail_key(source_key: str, size: int, extension: str) -> str:
    return f"thumbnails/{source_key}/{size}.{extension}"
