"""The workers table: one lease per pool instance, one shard of one job per instance at
a time; and the StartWorkers waiting for one (items under WAITER_PREFIX, which every
lease read skips)."""

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

# Waiter items share the table (its key is the instance id, a string): no instance id
# starts with this.
WAITER_PREFIX = "waiter#"
# The shard a packaging lease names: no shard of a run is negative.
PACKAGE_SHARD = -1


class LeaseTask(StrEnum):
    DEVELOP = "develop"
    PACKAGE = "package"


class LeaseState(StrEnum):
    IDLE = "IDLE"
    LEASED = "LEASED"
    # Taken by the pool scaler to terminate the instance (darkroom/pool_scaler.py): no
    # lease can be acquired on it (acquire wants IDLE), so the instance cannot be handed
    # to a job between the scaler's check and its TerminateInstances.
    RETIRING = "RETIRING"


class Lease(BaseModel):
    model_config = ConfigDict(frozen=True)

    instance_id: str
    state: LeaseState
    job_id: str | None = None
    execution_arn: str | None = None
    task_token: str | None = None
    leased_at: str | None = None
    heartbeat_at: str | None = None
    task: LeaseTask = LeaseTask.DEVELOP
    # The run's shard this lease develops (PACKAGE_SHARD for packaging).
    shard: int = 0
    # When the row became IDLE (created or released): how long the instance has had no
    # work, which the pool scaler reads. Rows written before it have none.
    idle_since: str | None = None


class Waiter(BaseModel):
    """A StartWorker that found no idle instance, waiting its turn."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    execution_arn: str
    shard: int
    # The job's created_at: with the shard, its place in the queue.
    created_at: str
    since: str | None = None

    @property
    def key(self) -> str:
        return waiter_key(self.execution_arn, self.shard)


def waiter_key(execution_arn: str, shard: int) -> str:
    return f"{WAITER_PREFIX}{execution_arn}#{shard}"


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
                    Lease(
                        instance_id=instance_id, state=LeaseState.IDLE, idle_since=utc_now()
                    ).model_dump(mode="json", exclude_none=True)
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
        items = self._table.scan(consistent=True)
        leases = (
            Lease.model_validate(i)
            for i in items
            if not str(i[names.INSTANCE_ID]).startswith(WAITER_PREFIX)
        )
        return sorted(leases, key=lambda lease: lease.instance_id)

    def held_by(self, execution_arn: str, instance_ids: Iterable[str] | None = None) -> list[Lease]:
        """Every lease this execution holds (one per shard it is developing, and its
        packaging). Give the pool's instance ids where they are known: reading their
        rows is cheaper than scanning the table."""
        leases = self.all() if instance_ids is None else self.of(instance_ids)
        return [lease for lease in leases if lease.execution_arn == execution_arn]

    def held_for(
        self, execution_arn: str, shard: int, instance_ids: Iterable[str] | None = None
    ) -> Lease | None:
        """The lease of this execution's shard, if it holds one."""
        held = self.held_by(execution_arn, instance_ids)
        return next((lease for lease in held if lease.shard == shard), None)

    def acquire(
        self,
        job_id: str,
        execution_arn: str,
        instance_ids: Iterable[str],
        *,
        shard: int = 0,
        task: LeaseTask = LeaseTask.DEVELOP,
        avoid: str | None = None,
    ) -> Lease | None:
        """Lease an idle instance to this execution's shard; None when every instance
        (but `avoid`, if the pool has others) is busy.

        A retried StartWorker gets back the lease its shard already holds.
        """
        pool = tuple(instance_ids)
        held = self.held_for(execution_arn, shard, pool)
        if held is not None:
            return held
        for instance_id in pool:
            if instance_id == avoid and len(pool) > 1:
                continue
            try:
                item = self._table.update(
                    self._table.key(instance_id),
                    "SET #st = :leased, job_id = :job, execution_arn = :exec, leased_at = :now,"
                    " #task = :task, #shard = :shard REMOVE task_token, heartbeat_at",
                    condition="#st = :idle",
                    names={"#st": "state", "#task": "task", "#shard": "shard"},
                    values={
                        ":leased": LeaseState.LEASED,
                        ":idle": LeaseState.IDLE,
                        ":job": job_id,
                        ":exec": execution_arn,
                        ":now": utc_now(),
                        ":task": task,
                        ":shard": shard,
                    },
                )
            except ConditionFailed:
                continue
            return Lease.model_validate(item)
        return None

    def attach_token(
        self, instance_id: str, execution_arn: str, task_token: str, *, shard: int = 0
    ) -> None:
        """Hand the shard's task token to the worker through its lease."""
        try:
            self._table.update(
                self._table.key(instance_id),
                "SET task_token = :token",
                condition="#st = :leased AND execution_arn = :exec AND #shard = :shard",
                names={"#st": "state", "#shard": "shard"},
                values={
                    ":token": task_token,
                    ":leased": LeaseState.LEASED,
                    ":exec": execution_arn,
                    ":shard": shard,
                },
            )
        except ConditionFailed as exc:
            raise LeaseLost(
                f"instance {instance_id} is not leased to {execution_arn} (shard {shard})"
            ) from exc

    def beat(self, instance_id: str, execution_arn: str, *, shard: int = 0) -> None:
        try:
            self._table.update(
                self._table.key(instance_id),
                "SET heartbeat_at = :now",
                condition="execution_arn = :exec AND #shard = :shard",
                names={"#shard": "shard"},
                values={":now": utc_now(), ":exec": execution_arn, ":shard": shard},
            )
        except ConditionFailed as exc:
            raise LeaseLost(f"instance {instance_id} lease moved on") from exc

    def release(self, instance_id: str, execution_arn: str, *, shard: int | None = None) -> bool:
        """Free the instance if (and only if) this execution holds it, for this shard
        when one is named (None: whichever shard, for an execution that has ended)."""
        condition = "#st = :leased AND execution_arn = :exec"
        attribute_names = {"#st": "state", "#task": "task", "#shard": "shard"}
        values: dict[str, Any] = {
            ":idle": LeaseState.IDLE,
            ":leased": LeaseState.LEASED,
            ":exec": execution_arn,
            ":now": utc_now(),
        }
        if shard is not None:
            condition += " AND #shard = :shard"
            values[":shard"] = shard
        try:
            self._table.update(
                self._table.key(instance_id),
                "SET #st = :idle, idle_since = :now REMOVE job_id, execution_arn, task_token,"
                " leased_at, heartbeat_at, #task, #shard",
                condition=condition,
                names=attribute_names,
                values=values,
            )
        except ConditionFailed:
            return False
        return True

    def pool(self, declared: Iterable[str]) -> tuple[str, ...]:
        """The pool StartWorker chooses from: the declared instances (the deploy's, the
        pool's minimum), then every instance the scaler registered a row for, by id. A
        RETIRING row is listed too; acquire's condition (IDLE) passes it over."""
        fixed = tuple(dict.fromkeys(declared))
        scaled = sorted({lease.instance_id for lease in self.all()} - set(fixed))
        return (*fixed, *scaled)

    # -- the pool scaler's conditional steps (darkroom/pool_scaler.py) -----------------
    def retire(self, instance_id: str) -> bool:
        """IDLE -> RETIRING; False when the row is not IDLE (a job leased it first)."""
        try:
            self._table.update(
                self._table.key(instance_id),
                "SET #st = :retiring",
                condition="#st = :idle",
                names={"#st": "state"},
                values={":retiring": LeaseState.RETIRING, ":idle": LeaseState.IDLE},
            )
        except ConditionFailed:
            return False
        return True

    def unretire(self, instance_id: str) -> bool:
        """RETIRING -> IDLE: the instance turned out not to be terminable (it runs)."""
        try:
            self._table.update(
                self._table.key(instance_id),
                "SET #st = :idle",
                condition="#st = :retiring",
                names={"#st": "state"},
                values={":retiring": LeaseState.RETIRING, ":idle": LeaseState.IDLE},
            )
        except ConditionFailed:
            return False
        return True

    def forget(self, instance_id: str) -> bool:
        """Delete a RETIRING row once its instance is terminated (never any other row)."""
        try:
            self._table.delete(
                self._table.key(instance_id),
                condition="#st = :retiring",
                names={"#st": "state"},
                values={":retiring": LeaseState.RETIRING},
            )
        except ConditionFailed:
            return False
        return True

    # -- the queue of StartWorkers waiting for an instance ----------------------------
    def wait(self, waiter: Waiter) -> None:
        """Record (or keep) this shard's place in the queue; a repeat keeps `since`."""
        with contextlib.suppress(ConditionFailed):
            self._table.put_new(
                {
                    names.INSTANCE_ID: waiter.key,
                    **waiter.model_dump(mode="json", exclude_none=True),
                    "since": waiter.since or utc_now(),
                }
            )

    def waiters(self) -> list[Waiter]:
        """Every waiting StartWorker (a scan: the queue is as long as the shards waiting)."""
        return [
            Waiter.model_validate(i)
            for i in self._table.scan(consistent=True)
            if str(i[names.INSTANCE_ID]).startswith(WAITER_PREFIX)
        ]

    def stop_waiting(self, execution_arn: str, shard: int) -> None:
        # Conditional like every write here: only a waiter item, never a lease.
        with contextlib.suppress(ConditionFailed):
            self._table.delete(
                self._table.key(waiter_key(execution_arn, shard)),
                condition="execution_arn = :exec",
                values={":exec": execution_arn},
            )
