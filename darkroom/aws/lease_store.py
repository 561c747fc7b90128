"""The workers table: one lease per pool instance, one job per instance at a time."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from darkroom import names
from darkroom.aws.executions import ENDED_STATUSES
from darkroom.aws.table import ConditionFailed, Table
from darkroom.errors import LeaseLost
from darkroom.jobs import utc_now


class LeaseState(StrEnum):
    IDLE = "IDLE"
    LEASED = "LEASED"


class Lease(BaseModel):
    model_config = ConfigDict(frozen=True)

    instance_id: str
    state: LeaseState
    job_id: str | None = None
    execution_arn: str | None = None
    task_token: str | None = None
    leased_at: str | None = None
    heartbeat_at: str | None = None


def lease_is_active(lease: Lease | None, execution_status: Callable[[str], str]) -> bool:
    """LEASED to an execution that has not ended. A status that cannot be read counts as
    in use: taking an instance from a working job costs the job, waiting costs minutes."""
    if lease is None or lease.state is not LeaseState.LEASED or not lease.execution_arn:
        return False
    return execution_status(lease.execution_arn) not in ENDED_STATUSES


class LeaseStore:
    def __init__(self, table: str, ddb: Any | None = None) -> None:
        self._table = Table(table, names.WORKERS_SCHEMA, ddb)

    def ensure(self, instance_ids: Iterable[str]) -> None:
        """Create missing lease rows; the pool is declared by CDK, rows appear on first use."""
        for instance_id in instance_ids:
            # A row that exists is kept as it is (leased or not).
            with contextlib.suppress(ConditionFailed):
                self._table.put_new(
                    Lease(instance_id=instance_id, state=LeaseState.IDLE).model_dump(
                        mode="json", exclude_none=True
                    )
                )

    def get(self, instance_id: str) -> Lease | None:
        item = self._table.get(self._table.key(instance_id))
        return Lease.model_validate(item) if item else None

    def of(self, instance_ids: Iterable[str]) -> list[Lease]:
        """The leases of these instances (those that have a row), by instance id."""
        items = self._table.get_many([self._table.key(i) for i in dict.fromkeys(instance_ids)])
        return sorted((Lease.model_validate(i) for i in items), key=lambda lease: lease.instance_id)

    def all(self) -> list[Lease]:
        """Every lease (a scan: for the cost guard, which looks at the whole table)."""
        leases = (Lease.model_validate(i) for i in self._table.scan(consistent=True))
        return sorted(leases, key=lambda lease: lease.instance_id)

    def held_by(
        self, execution_arn: str, instance_ids: Iterable[str] | None = None
    ) -> Lease | None:
        """The lease this execution holds. Give the pool's instance ids where they are
        known: reading their rows is cheaper than scanning the table."""
        leases = self.all() if instance_ids is None else self.of(instance_ids)
        return next((lease for lease in leases if lease.execution_arn == execution_arn), None)

    def acquire(self, job_id: str, execution_arn: str, instance_ids: Iterable[str]) -> Lease | None:
        """Lease an idle instance to this execution; None when every instance is busy.

        A retried StartWorker gets back the lease its execution already holds.
        """
        pool = tuple(instance_ids)
        held = self.held_by(execution_arn, pool)
        if held is not None:
            return held
        for instance_id in pool:
            try:
                item = self._table.update(
                    self._table.key(instance_id),
                    "SET #st = :leased, job_id = :job, execution_arn = :exec, leased_at = :now"
                    " REMOVE task_token, heartbeat_at",
                    condition="#st = :idle",
                    names={"#st": "state"},
                    values={
                        ":leased": LeaseState.LEASED,
                        ":idle": LeaseState.IDLE,
                        ":job": job_id,
                        ":exec": execution_arn,
                        ":now": utc_now(),
                    },
                )
            except ConditionFailed:
                continue
            return Lease.model_validate(item)
        return None

    def attach_token(self, instance_id: str, execution_arn: str, task_token: str) -> None:
        """Hand the execution's task token to the worker through its lease."""
        try:
            self._table.update(
                self._table.key(instance_id),
                "SET task_token = :token",
                condition="#st = :leased AND execution_arn = :exec",
                names={"#st": "state"},
                values={":token": task_token, ":leased": LeaseState.LEASED, ":exec": execution_arn},
            )
        except ConditionFailed as exc:
            raise LeaseLost(f"instance {instance_id} is not leased to {execution_arn}") from exc

    def beat(self, instance_id: str, execution_arn: str) -> None:
        try:
            self._table.update(
                self._table.key(instance_id),
                "SET heartbeat_at = :now",
                condition="execution_arn = :exec",
                values={":now": utc_now(), ":exec": execution_arn},
            )
        except ConditionFailed as exc:
            raise LeaseLost(f"instance {instance_id} lease moved on") from exc

    def release(self, instance_id: str, execution_arn: str) -> bool:
        """Free the instance if (and only if) this execution holds it."""
        try:
            self._table.update(
                self._table.key(instance_id),
                "SET #st = :idle REMOVE job_id, execution_arn, task_token, leased_at, heartbeat_at",
                condition="#st = :leased AND execution_arn = :exec",
                names={"#st": "state"},
                values={
                    ":idle": LeaseState.IDLE,
                    ":leased": LeaseState.LEASED,
                    ":exec": execution_arn,
                },
            )
        except ConditionFailed:
            return False
        return True
