"""S3 multipart uploads of originals: started, checked, completed and aborted by the API,
while the parts themselves go straight from the client to S3 through presigned URLs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError


@dataclass(frozen=True)
class Part:
    number: int
    etag: str  # as S3 quotes it
    size: int


def same_etag(a: str, b: str) -> bool:
    return a.strip('"') == b.strip('"')


class MultipartUploads:
    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def start(self, bucket: str, key: str) -> str:
        return str(self._s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])

    def parts(self, bucket: str, key: str, upload_id: str) -> dict[int, Part] | None:
        """The parts S3 holds, by number; None if the upload is gone (completed, aborted
        or expired)."""
        found: dict[int, Part] = {}
        request: dict[str, Any] = {"Bucket": bucket, "Key": key, "UploadId": upload_id}
        while True:
            try:
                page = self._s3.list_parts(**request)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                    return None
                raise
            for p in page.get("Parts", []):
                found[int(p["PartNumber"])] = Part(int(p["PartNumber"]), p["ETag"], int(p["Size"]))
            if not page.get("IsTruncated"):
                return found
            request["PartNumberMarker"] = page["NextPartNumberMarker"]

    def complete(
        self, bucket: str, key: str, upload_id: str, etags: Mapping[int, str], size: int
    ) -> None:
        """Assemble the object; with If-None-Match: *, never over an existing original
        (412 PreconditionFailed), and in AWS only at the declared size (MpuObjectSize)."""
        self._s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
            IfNoneMatch="*",
            MpuObjectSize=size,
        )

    def abort(self, bucket: str, key: str, upload_id: str) -> bool:
        """Abort the upload and free its parts; False if it was not there."""
        try:
            self._s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return False
            raise
        return True

    def in_progress(self, bucket: str, prefix: str) -> list[tuple[str, str]]:
        """(key, upload id) of every multipart upload in progress under `prefix`."""
        found = []
        paginator = self._s3.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            found += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        return found
