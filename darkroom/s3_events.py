"""S3 event notifications read as object changes: pure, no AWS client needed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


@dataclass(frozen=True)
class ObjectChange:
    created: bool  # ObjectCreated:*; False for ObjectRemoved:*
    bucket: str
    key: str  # URL-decoded
    size: int | None = None  # bytes, when the record says (created objects only)


def object_changes(event: Mapping[str, Any]) -> list[ObjectChange]:
    """The object changes an S3 notification carries, in order, keys URL-decoded.

    S3 encodes keys as in a form ('+' for a space, %2B for '+', UTF-8 percent-escapes),
    so unquote_plus gives the real key back. Other event kinds (test events, restores,
    replication) and records without a bucket or key are left out.
    """
    changes = []
    for record in event.get("Records") or []:
        name = str(record.get("eventName", ""))
        if name.startswith("ObjectCreated"):
            created = True
        elif name.startswith("ObjectRemoved"):
            created = False
        else:
            continue
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        key = unquote_plus(str(obj.get("key", "")))
        bucket = str((s3.get("bucket") or {}).get("name", ""))
        size = obj.get("size")
        if key and bucket:
            changes.append(
                ObjectChange(created, bucket, key, size if isinstance(size, int) else None)
            )
    return changes
