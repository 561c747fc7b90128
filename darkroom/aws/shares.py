"""The shares table: client share links, stored by id with only a hash of their token."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from darkroom.aws.clients import client, error_code

# Expired and revoked shares stay long enough to answer 410 rather than 404, then
# DynamoDB TTL removes them.
RETENTION_AFTER_EXPIRY_SECONDS = 30 * 24 * 3600


class ShareIdTaken(Exception):
    """A freshly drawn share id collided with an existing one (practically never)."""


@dataclass(frozen=True)
class Share:
    share_id: str
    job_id: str
    token_sha256: str
    created_at: str
    expires_at: int  # epoch seconds
    revoked_at: str | None = None
    created_by: str | None = None

    @property
    def expires_ttl(self) -> int:
        return self.expires_at + RETENTION_AFTER_EXPIRY_SECONDS


def _s(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value["S"] if value and "S" in value else None


class ShareStore:
    def __init__(self, table: str, ddb: Any | None = None) -> None:
        self._table = table
        self._ddb = ddb or client("dynamodb")

    @staticmethod
    def _from_raw(raw: Mapping[str, Any]) -> Share:
        return Share(
            share_id=raw["share_id"]["S"],
            job_id=raw["job_id"]["S"],
            token_sha256=raw["token_sha256"]["S"],
            created_at=raw["created_at"]["S"],
            expires_at=int(raw["expires_at"]["N"]),
            revoked_at=_s(raw, "revoked_at"),
            created_by=_s(raw, "created_by"),
        )

    def put(self, share: Share) -> None:
        item: dict[str, Any] = {
            "share_id": {"S": share.share_id},
            "job_id": {"S": share.job_id},
            "token_sha256": {"S": share.token_sha256},
            "created_at": {"S": share.created_at},
            "expires_at": {"N": str(share.expires_at)},
            "expires_ttl": {"N": str(share.expires_ttl)},
        }
        if share.created_by:
            item["created_by"] = {"S": share.created_by}
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(share_id)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise ShareIdTaken(share.share_id) from exc
            raise

    def get(self, share_id: str) -> Share | None:
        raw = self._ddb.get_item(
            TableName=self._table, Key={"share_id": {"S": share_id}}, ConsistentRead=True
        ).get("Item")
        return self._from_raw(raw) if raw else None

    def revoke(self, job_id: str, share_id: str, when: str) -> Share | None:
        """Revoke a share of this job (idempotent); None if no such share of this job."""
        try:
            raw = self._ddb.update_item(
                TableName=self._table,
                Key={"share_id": {"S": share_id}},
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :when)",
                # The job must match: a share id alone never acts on another job's link.
                ConditionExpression="attribute_exists(share_id) AND job_id = :job",
                ExpressionAttributeValues={":when": {"S": when}, ":job": {"S": job_id}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        return self._from_raw(raw)
