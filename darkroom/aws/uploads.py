"""The uploads table: jobs the API created whose files are still arriving.

A job gets a record in the jobs table only when its execution registers it, and the job
model has no status for "declared, not yet submitted". The API keeps that phase here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from darkroom.aws.clients import client, error_code
from darkroom.aws.ddb_codec import from_item, to_item
from darkroom.errors import DarkroomError

# Items outlive their job's submission by a while (GET /jobs/{id} reads them until the
# execution registers the job); DynamoDB TTL removes abandoned ones eventually.
RETENTION_SECONDS = 30 * 24 * 3600


class UploadStatus(StrEnum):
    CREATED = "CREATED"  # declared; files are being uploaded
    SUBMITTED = "SUBMITTED"  # manifest written; the execution has not registered it yet


class JobExists(DarkroomError):
    """A job with that id already exists."""


@dataclass(frozen=True)
class DeclaredFile:
    name: str
    size: int


@dataclass(frozen=True)
class Upload:
    job_id: str
    status: UploadStatus
    files: tuple[DeclaredFile, ...]
    created_at: str
    name: str | None = None
    recipe: Mapping[str, Any] | None = None
    submitted_at: str | None = None
    created_by: str | None = None
    expires_ttl: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


class UploadStore:
    def __init__(self, table: str, ddb: Any | None = None) -> None:
        self._table = table
        self._ddb = ddb or client("dynamodb")

    def _to_raw(self, upload: Upload) -> dict[str, Any]:
        item: dict[str, Any] = {
            "job_id": upload.job_id,
            "status": str(upload.status),
            "files": [{"name": f.name, "size": f.size} for f in upload.files],
            "created_at": upload.created_at,
            "expires_ttl": upload.expires_ttl,
        }
        for key in ("name", "recipe", "submitted_at", "created_by"):
            value = getattr(upload, key)
            if value is not None:
                item[key] = dict(value) if isinstance(value, Mapping) else value
        return to_item(item)

    def _from_raw(self, raw: Mapping[str, Any]) -> Upload:
        item = from_item(raw)
        return Upload(
            job_id=item["job_id"],
            status=UploadStatus(item["status"]),
            files=tuple(DeclaredFile(f["name"], int(f["size"])) for f in item.get("files", [])),
            created_at=item["created_at"],
            name=item.get("name"),
            recipe=item.get("recipe"),
            submitted_at=item.get("submitted_at"),
            created_by=item.get("created_by"),
            expires_ttl=int(item.get("expires_ttl", 0)),
        )

    def create(self, upload: Upload) -> None:
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=self._to_raw(upload),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise JobExists(f"job {upload.job_id} already exists") from exc
            raise

    def get(self, job_id: str) -> Upload | None:
        raw = self._ddb.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        return self._from_raw(raw) if raw else None

    def mark_submitted(self, job_id: str, when: str) -> Upload:
        """CREATED -> SUBMITTED; a second submission keeps the first one's time."""
        try:
            raw = self._ddb.update_item(
                TableName=self._table,
                Key={"job_id": {"S": job_id}},
                UpdateExpression="SET #s = :submitted, submitted_at = :when",
                ConditionExpression="#s = :created",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":submitted": {"S": str(UploadStatus.SUBMITTED)},
                    ":created": {"S": str(UploadStatus.CREATED)},
                    ":when": {"S": when},
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            current = self.get(job_id)
            if current is None:
                raise
            return current
        return self._from_raw(raw)

    def all(self) -> list[Upload]:
        """Every record (a scan: the table holds a studio's recent uploads only)."""
        items: list[Upload] = []
        kwargs: dict[str, Any] = {"TableName": self._table}
        while True:
            page = self._ddb.scan(**kwargs)
            items.extend(self._from_raw(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
