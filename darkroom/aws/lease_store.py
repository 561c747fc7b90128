"""The workers table: one lease per pool instance, one job per instance at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from darkroom.aws.clients import client, error_code
from darkroom.aws.executions import ENDED_STATUSES
from darkroom.errors import LeaseLost
from darkroom.jobs import utc_now


class LeaseState(StrEnum):
    IDLE = "IDLE"
    LEASED = "LEASED"


@dataclass(frozen=True)
class Lease:
    instance_id: str
    state: LeaseState
    job_id: str | None = None
    execution_arn: str | None = None
    task_token: str | None = None
    leased_at: str | None = None
    heartbeat_at: str | None = None

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Lease:
        def s(key: str) -> str | None:
            value = raw.get(key)
            return value["S"] if value and "S" in value else None

        return cls(
            instance_id=raw["instance_id"]["S"],
            state=LeaseState(raw["state"]["S"]),
            job_id=s("job_id"),
            execution_arn=s("execution_arn"),
            task_token=s("task_token"),
            leased_at=s("leased_at"),
            heartbeat_at=s("heartbeat_at"),
        )


def lease_is_active(lease: Lease | None, execution_status: Callable[[str], str]) -> bool:
    """LEASED to an execution that has not ended. A status that cannot be read counts as
    in use: taking an instance from a working job costs the job, waiting costs minutes."""
    if lease is None or lease.state is not LeaseState.LEASED or not lease.execution_arn:
        return False
    return execution_status(lease.execution_arn) not in ENDED_STATUSES


def _is_condition_failure(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


class LeaseStore:
    def __init__(self, table: str, ddb: Any | None = None) -> None:
        self._table = table
        self._ddb = ddb or client("dynamodb")

    def ensure(self, instance_ids: Iterable[str]) -> None:
        """Create missing lease rows; the pool is declared by CDK, rows appear on first use."""
        for instance_id in instance_ids:
            try:
                self._ddb.put_item(
                    TableName=self._table,
                    Item={"instance_id": {"S": instance_id}, "state": {"S": LeaseState.IDLE}},
                    ConditionExpression="attribute_not_exists(instance_id)",
                )
            except ClientError as exc:
                if not _is_condition_failure(exc):
                    raise

    def get(self, instance_id: str) -> Lease | None:
        raw = self._ddb.get_item(
            TableName=self._table, Key={"instance_id": {"S": instance_id}}, ConsistentRead=True
        ).get("Item")
        return Lease.from_raw(raw) if raw else None

    def all(self) -> list[Lease]:
        leases: list[Lease] = []
        kwargs: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        while True:
            page = self._ddb.scan(**kwargs)
            leases.extend(Lease.from_raw(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(leases, key=lambda lease: lease.instance_id)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def held_by(self, execution_arn: str) -> Lease | None:
        return next((lease for lease in self.all() if lease.execution_arn == execution_arn), None)

    def acquire(self, job_id: str, execution_arn: str, instance_ids: Iterable[str]) -> Lease | None:
        """Lease an idle instance to this execution; None when every instance is busy.

        A retried StartWorker gets back the lease its execution already holds.
        """
        held = self.held_by(execution_arn)
        if held is not None:
            return held
        for instance_id in instance_ids:
            try:
                raw = self._ddb.update_item(
                    TableName=self._table,
                    Key={"instance_id": {"S": instance_id}},
                    UpdateExpression=(
                        "SET #st = :leased, job_id = :job, execution_arn = :exec, leased_at = :now"
                        " REMOVE task_token, heartbeat_at"
                    ),
                    ConditionExpression="#st = :idle",
                    ExpressionAttributeNames={"#st": "state"},
                    ExpressionAttributeValues={
                        ":leased": {"S": LeaseState.LEASED},
                        ":idle": {"S": LeaseState.IDLE},
                        ":job": {"S": job_id},
                        ":exec": {"S": execution_arn},
                        ":now": {"S": utc_now()},
                    },
                    ReturnValues="ALL_NEW",
                )["Attributes"]
            except ClientError as exc:
                if _is_condition_failure(exc):
                    continue
                raise
            return Lease.from_raw(raw)
        return None

    def attach_token(self, instance_id: str, execution_arn: str, task_token: str) -> None:
        """Hand the execution's task token to the worker through its lease."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"instance_id": {"S": instance_id}},
                UpdateExpression="SET task_token = :token",
                ConditionExpression="#st = :leased AND execution_arn = :exec",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={
                    ":token": {"S": task_token},
                    ":leased": {"S": LeaseState.LEASED},
                    ":exec": {"S": execution_arn},
                },
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise LeaseLost(f"instance {instance_id} is not leased to {execution_arn}") from exc
            raise

    def beat(self, instance_id: str, execution_arn: str) -> None:
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"instance_id": {"S": instance_id}},
                UpdateExpression="SET heartbeat_at = :now",
                ConditionExpression="execution_arn = :exec",
                ExpressionAttributeValues={":now": {"S": utc_now()}, ":exec": {"S": execution_arn}},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise LeaseLost(f"instance {instance_id} lease moved on") from exc
            raise

    def release(self, instance_id: str, execution_arn: str) -> bool:
        """Free the instance if (and only if) this execution holds it."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"instance_id": {"S": instance_id}},
                UpdateExpression=(
                    "SET #st = :idle"
                    " REMOVE job_id, execution_arn, task_token, leased_at, heartbeat_at"
                ),
                ConditionExpression="#st = :leased AND execution_arn = :exec",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={
                    ":idle": {"S": LeaseState.IDLE},
                    ":leased": {"S": LeaseState.LEASED},
                    ":exec": {"S": execution_arn},
                },
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True
