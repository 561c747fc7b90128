"""Presigned S3 URLs: uploads straight to the RAW bucket, downloads of renditions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import boto3
from botocore.config import Config

AddressingStyle = Literal["auto", "virtual", "path"]


def presigning_client(addressing_style: AddressingStyle, session: Any | None = None) -> Any:
    """An S3 client whose URLs are SigV4 (botocore would otherwise presign some with SigV2)."""
    config = Config(signature_version="s3v4", s3={"addressing_style": addressing_style})
    return (session or boto3.session.Session()).client("s3", config=config)


@dataclass(frozen=True)
class PresignedPut:
    url: str
    headers: dict[str, str]  # signed: the PUT must send exactly these


class Presigner:
    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    @property
    def client(self) -> Any:
        return self._s3

    def put(
        self,
        bucket: str,
        key: str,
        size: int,
        expires_in: int,
        *,
        content_type: str | None = None,
        once: bool = True,
    ) -> PresignedPut:
        """A PUT that can create the object once and never replace it.

        Its headers are signed, so S3 refuses a request without them: Content-Length,
        so a body of any other size is refused; If-None-Match: *, so once the object
        exists every later PUT through the URL fails 412, however long the URL lives.
        `once=False` (a studio asset, which a studio replaces): a new version each time.
        """
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "ContentLength": size}
        headers = {"Content-Length": str(size)}
        if once:
            params["IfNoneMatch"] = headers["If-None-Match"] = "*"
        if content_type:
            params["ContentType"] = headers["Content-Type"] = content_type
        url = self._s3.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)
        return PresignedPut(str(url), headers)

    def part(
        self, bucket: str, key: str, upload_id: str, number: int, size: int, expires_in: int
    ) -> PresignedPut:
        """A PUT of one part of a multipart upload, signed for exactly `size` bytes.

        A part can be sent again (it replaces the earlier one of that number); what
        protects the original is completing the upload, which never replaces an object."""
        url = self._s3.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": number,
                "ContentLength": size,
            },
            ExpiresIn=expires_in,
        )
        return PresignedPut(str(url), {"Content-Length": str(size)})

    def get(
        self,
        bucket: str,
        key: str,
        expires_in: int,
        *,
        disposition: str | None = None,
        content_type: str | None = None,
        version_id: str | None = None,
    ) -> str:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        if disposition:
            params["ResponseContentDisposition"] = disposition
        if content_type:
            params["ResponseContentType"] = content_type
        return str(
            self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        )
