"""S3 for the thumbnail function: stream a source from the input bucket to scratch, write
and delete thumbnails in the output bucket.

Deliberately nothing that reads the output bucket: the function that writes it must never
depend on (or be triggered by) what is in it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import IO, Any

from botocore.exceptions import ClientError

from darkroom.aws.clients import client, error_code

# S3's DeleteObjects takes at most this many keys per call.
_DELETE_BATCH = 1000
_CHUNK = 1024 * 1024
_MISSING = {"NoSuchKey", "404", "NotFound"}


class SourceMissing(Exception):
    """The source object is gone (deleted or replaced after the event was sent)."""


class ImageBuckets:
    def __init__(self, s3: Any | None = None) -> None:
        self._s3 = s3 or client("s3")

    def download(self, bucket: str, key: str, dest: IO[bytes]) -> int:
        """Stream the object into `dest` (never whole in memory); returns its size."""
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _MISSING:
                raise SourceMissing(f"s3://{bucket}/{key}") from exc
            raise
        body = response["Body"]
        try:
            shutil.copyfileobj(body, dest, _CHUNK)
        finally:
            body.close()
        dest.flush()
        dest.seek(0)
        return int(response.get("ContentLength", 0))

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        self._s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)

    def delete(self, bucket: str, keys: Sequence[str]) -> None:
        """Delete `keys` (absent ones are fine: S3 deletes are idempotent)."""
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            response = self._s3.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                # Raised, not logged: the invocation is retried and deletes are idempotent.
                raise RuntimeError(
                    f"could not delete {len(errors)} thumbnail(s), e.g. {first.get('Key')}: "
                    f"{first.get('Code')} {first.get('Message')}"
                )
