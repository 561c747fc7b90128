"""S3 objects: listing a job's uploads, streaming files to and from disk, JSON documents,
erasing every version under a prefix, and writing an object of unknown length in parts."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from darkroom.aws.clients import client, error_code
from darkroom.errors import DarkroomError, TransientError

# Multipart with a few threads: RAW files are tens of MB, renditions a few MB.
_TRANSFER = TransferConfig(multipart_threshold=16 * 1024 * 1024, max_concurrency=4)
_DELETE_MAX = 1000  # keys per DeleteObjects request
# Throttles and S3's own faults (botocore's retries already spent): worth another try.
_TRANSIENT_CODES = frozenset({"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout"})


@dataclass(frozen=True)
class ObjectStream:
    """An object being read: its length, when it was written, its bytes a chunk at a time."""

    size: int
    modified: datetime | None
    chunks: Iterator[bytes]
    # None in an unversioned bucket.
    version_id: str | None = None


class NotDeleted(DarkroomError):
    """S3 refused to delete some object versions for a reason a retry will not cure."""


@contextmanager
def _s3_errors() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if error_code(exc) in _TRANSIENT_CODES or status >= 500:
            raise TransientError(f"S3: {exc}") from exc
        raise


class Objects:
    def __init__(self, s3: Any | None = None) -> None:
        self._s3 = s3 or client("s3")

    def list(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def folders(self, bucket: str, prefix: str) -> tuple[builtins.list[str], builtins.list[str]]:
        """One level under `prefix`: its "folders" (the common prefixes up to the next
        "/") and the keys directly in it, without listing what the folders hold."""
        folders: builtins.list[str] = []
        direct: builtins.list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            folders.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
            direct.extend(o["Key"] for o in page.get("Contents", []))
        return folders, direct

    def latest_versions(self, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
        """The current version of each object under `prefix` (Key, Size, VersionId: None
        when the bucket has never been versioned); deleted objects are left out."""
        paginator = self._s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                if version.get("IsLatest"):
                    # S3 names the version of an object written while unversioned "null".
                    vid = version.get("VersionId")
                    yield {**version, "VersionId": None if vid in (None, "null") else vid}

    def download(self, bucket: str, key: str, dest: Path, *, version_id: str | None = None) -> Path:
        """Stream to a temp name, then rename: a partial download never looks complete.

        With `version_id`, that version of the object, whatever has been written since."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".part")
        extra = {"VersionId": version_id} if version_id else None
        self._s3.download_file(bucket, key, str(partial), ExtraArgs=extra, Config=_TRANSFER)
        partial.replace(dest)
        return dest

    def upload(self, path: Path, bucket: str, key: str, content_type: str) -> None:
        self._s3.upload_file(
            str(path), bucket, key, ExtraArgs={"ContentType": content_type}, Config=_TRANSFER
        )

    def put_json(self, bucket: str, key: str, document: Mapping[str, Any]) -> None:
        body = json.dumps(document, indent=2, sort_keys=True).encode()
        self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    def get_json(self, bucket: str, key: str) -> Any:
        return json.loads(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def delete(self, bucket: str, key: str) -> None:
        self._s3.delete_object(Bucket=bucket, Key=key)

    def versions(self, bucket: str, prefix: str) -> builtins.list[dict[str, str]]:
        """Every version and delete marker under `prefix`, as {Key, VersionId} (an
        unversioned bucket's objects have the version id "null")."""
        found: builtins.list[dict[str, str]] = []
        paginator = self._s3.get_paginator("list_object_versions")
        with _s3_errors():
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    found.append({"Key": entry["Key"], "VersionId": entry["VersionId"]})
        return found

    def delete_versions(self, bucket: str, prefix: str) -> int:
        """Delete every version and delete marker under `prefix`, for good; how many.

        Naming each version id deletes it outright: no delete marker is left behind and
        nothing of the object can be restored."""
        found = self.versions(bucket, prefix)
        for start in range(0, len(found), _DELETE_MAX):
            batch = found[start : start + _DELETE_MAX]
            with _s3_errors():
                answer = self._s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
                )
            errors = answer.get("Errors", [])
            if errors:
                codes = {str(e.get("Code")) for e in errors}
                problem = (
                    f"S3 did not delete {len(errors)} of {len(batch)} versions under "
                    f"s3://{bucket}/{prefix} ({', '.join(sorted(codes))})"
                )
                raise (TransientError if codes <= _TRANSIENT_CODES else NotDeleted)(problem)
        return len(found)

    def delete_many(self, bucket: str, keys: Sequence[str]) -> Sequence[str]:
        """Delete these objects, a thousand per request; the keys S3 could not delete."""
        answers = [
            self._s3.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": k} for k in keys[i : i + _DELETE_MAX]], "Quiet": True},
            )
            for i in range(0, len(keys), _DELETE_MAX)
        ]
        return [e["Key"] for answer in answers for e in answer.get("Errors", [])]

    # -- reading in chunks, writing in parts ------------------------------------------
    @contextmanager
    def reading(
        self, bucket: str, key: str, *, chunk_bytes: int = 1024 * 1024
    ) -> Iterator[ObjectStream]:
        """The object's body as it arrives, never whole in memory; closed on leaving."""
        with _s3_errors():
            answer = self._s3.get_object(Bucket=bucket, Key=key)
        body = answer["Body"]
        try:
            yield ObjectStream(
                size=int(answer["ContentLength"]),
                modified=answer.get("LastModified"),
                chunks=body.iter_chunks(chunk_bytes),
                version_id=answer.get("VersionId"),
            )
        finally:
            body.close()

    def start_parts(self, bucket: str, key: str, content_type: str) -> str:
        """Begin a multipart upload; its id. Nothing is at `key` until it is completed."""
        with _s3_errors():
            answer = self._s3.create_multipart_upload(
                Bucket=bucket, Key=key, ContentType=content_type
            )
        return str(answer["UploadId"])

    def put_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: bytes | bytearray
    ) -> str:
        """Upload part `number` (from 1); its ETag, which completing the upload names."""
        with _s3_errors():
            answer = self._s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
        return str(answer["ETag"])

    def copy_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        source_key: str,
        start: int,
        end: int,
    ) -> str:
        """Part `number` copied inside S3 from bytes [start, end) of `source_key` (same
        bucket); its ETag. S3 copies 5 MiB to 5 GiB this way (the last part may be less)."""
        with _s3_errors():
            answer = self._s3.upload_part_copy(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": bucket, "Key": source_key},
                CopySourceRange=f"bytes={start}-{end - 1}",
            )
        return str(answer["CopyPartResult"]["ETag"])

    def read_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of an object (end > start)."""
        with _s3_errors():
            answer = self._s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        return bytes(answer["Body"].read())

    def complete_parts(self, bucket: str, key: str, upload_id: str, etags: Sequence[str]) -> None:
        """Join the parts (ETags in part order, from part 1) into the object at `key`."""
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, start=1)]
        with _s3_errors():
            self._s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )

    def abort_parts(self, bucket: str, key: str, upload_id: str) -> None:
        """Drop an upload and the parts it holds (they are billed until then)."""
        with _s3_errors():
            self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    def open_uploads(self, bucket: str, prefix: str) -> builtins.list[dict[str, Any]]:
        """Multipart uploads begun under `prefix` and neither completed nor aborted."""
        found: builtins.list[dict[str, Any]] = []
        paginator = self._s3.get_paginator("list_multipart_uploads")
        with _s3_errors():
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                found.extend(page.get("Uploads", []))
        return found

    def abort_open_uploads(self, bucket: str, prefix: str) -> int:
        """Abort every upload `open_uploads` finds (what a writer that died left: billed
        as storage until aborted); how many."""
        found = self.open_uploads(bucket, prefix)
        for upload in found:
            self.abort_parts(bucket, upload["Key"], upload["UploadId"])
        return len(found)
