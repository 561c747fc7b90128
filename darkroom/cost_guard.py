"""The cost guard: stop pool instances that run without an active lease.

The worker stops its own instance after `idle_shutdown_seconds` without a lease, and
StopWorker stops it at the end of every job. This is the backstop for when both miss:
an execution aborted from the console (no Catch runs, the lease stays LEASED and the
worker keeps polling it), a ReleaseWorker that failed, an instance an operator started
by hand and forgot, or a worker that crashed before its idle timer ran out.

A lease is *active* when it is LEASED to an execution that is still RUNNING. An instance
running without one is marked with a tag the first time the guard sees it; once it has
stayed that way for `max_idle`, the guard stops it and frees the stale lease (only the
lease of an execution that has ended). The tag lives on the instance so the guard keeps
no state of its own between its scheduled runs.

`decide` is pure; `Fleet`, the execution statuses and `LeaseStore` are its AWS calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from botocore.exceptions import ClientError
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from darkroom import names
from darkroom.aws.clients import client
from darkroom.aws.lease_store import Lease, LeaseState, LeaseStore, lease_is_active
from darkroom.aws.worker_pool import WorkerPool
from darkroom.names import Env
from darkroom.observability import logger

# EMF metrics, published on every run (the dashboard's instance hours and the
# "worker running past the longest job" alarm are built from them).
METRIC_RUNNING: Final = "WorkerInstancesRunning"
METRIC_UNLEASED: Final = "WorkerInstancesRunningUnleased"
METRIC_LONGEST_RUN: Final = "WorkerLongestRunSeconds"
METRIC_STOPPED: Final = "WorkerInstancesStoppedByGuard"


class CostGuardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DARKROOM_", extra="ignore", frozen=True)

    workers_table: str = ""
    worker_instance_ids: Annotated[tuple[str, ...], NoDecode] = ()
    # Long enough for a first boot (install) plus the worker's own idle shutdown.
    cost_guard_max_idle_seconds: int = Field(default=1800, ge=60)
    log_level: str = "INFO"

    @field_validator("worker_instance_ids", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    def require(self) -> None:
        missing = [
            key
            for key, value in (
                (Env.WORKERS_TABLE, self.workers_table),
                (Env.WORKER_INSTANCE_IDS, self.worker_instance_ids),
            )
            if not value
        ]
        if missing:
            raise RuntimeError(f"missing configuration: {', '.join(missing)} not set")


assert "DARKROOM_" + "cost_guard_max_idle_seconds".upper() == Env.COST_GUARD_MAX_IDLE_SECONDS


# -- the decision -----------------------------------------------------------------
@dataclass(frozen=True)
class InstanceView:
    instance_id: str
    state: str  # EC2's state name: pending, running, stopping, stopped...
    launch_time: datetime | None  # the last start (EC2 resets it at every start)
    unleased_since: datetime | None  # our tag, if present


@dataclass(frozen=True)
class Decision:
    stop: tuple[str, ...] = ()
    mark: tuple[str, ...] = ()  # tag: first seen running without an active lease
    unmark: tuple[str, ...] = ()  # untag: leased again, or no longer running
    # (instance_id, execution_arn) of LEASED leases whose execution has ended, freed
    # once their instance is stopped.
    release: tuple[tuple[str, str], ...] = ()
    running: int = 0
    unleased: int = 0
    longest_run_seconds: float = 0.0


def decide(
    instances: Iterable[InstanceView],
    leases: Mapping[str, Lease],
    execution_status: Callable[[str], str],
    *,
    now: datetime,
    max_idle: timedelta,
) -> Decision:
    stop: list[str] = []
    mark: list[str] = []
    unmark: list[str] = []
    release: list[tuple[str, str]] = []
    running = unleased = 0
    longest = 0.0
    for instance in instances:
        if instance.state != "running":
            # pending is left alone: it is on its way up and a lease may be behind it.
            if instance.state != "pending" and instance.unleased_since is not None:
                unmark.append(instance.instance_id)
            continue
        running += 1
        if instance.launch_time is not None:
            longest = max(longest, (now - instance.launch_time).total_seconds())
        lease = leases.get(instance.instance_id)
        if lease_is_active(lease, execution_status):
            if instance.unleased_since is not None:
                unmark.append(instance.instance_id)
            continue
        unleased += 1
        if instance.unleased_since is None:
            mark.append(instance.instance_id)
            continue
        # A stop and start between two runs leaves an old tag behind: count from the
        # later of the two.
        since = instance.unleased_since
        if instance.launch_time is not None and instance.launch_time > since:
            since = instance.launch_time
        if now - since < max_idle:
            continue
        stop.append(instance.instance_id)
        unmark.append(instance.instance_id)
        if lease is not None and lease.state is LeaseState.LEASED and lease.execution_arn:
            release.append((instance.instance_id, lease.execution_arn))
    return Decision(
        stop=tuple(stop),
        mark=tuple(mark),
        unmark=tuple(unmark),
        release=tuple(release),
        running=running,
        unleased=unleased,
        longest_run_seconds=longest,
    )


# -- adapters ---------------------------------------------------------------------
def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None  # a hand-edited tag: treat as absent, the next run re-marks it
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Fleet:
    """The pool instances as the guard sees them: state, last start, and our tag."""

    def __init__(self, ec2: Any | None = None) -> None:
        self._ec2 = ec2 or client("ec2")
        self._pool = WorkerPool(self._ec2)

    def describe(self, instance_ids: Sequence[str]) -> list[InstanceView]:
        views: list[InstanceView] = []
        kwargs: dict[str, Any] = {"InstanceIds": list(instance_ids)}
        while True:
            page = self._ec2.describe_instances(**kwargs)
            for reservation in page.get("Reservations", []):
                for raw in reservation.get("Instances", []):
                    tags = {t["Key"]: t["Value"] for t in raw.get("Tags", [])}
                    launch = raw.get("LaunchTime")
                    if isinstance(launch, datetime) and launch.tzinfo is None:
                        launch = launch.replace(tzinfo=UTC)
                    views.append(
                        InstanceView(
                            instance_id=raw["InstanceId"],
                            state=raw["State"]["Name"],
                            launch_time=launch if isinstance(launch, datetime) else None,
                            unleased_since=_parse_time(tags.get(names.UNLEASED_SINCE_TAG)),
                        )
                    )
            if not page.get("NextToken"):
                return sorted(views, key=lambda v: v.instance_id)
            kwargs["NextToken"] = page["NextToken"]

    def mark(self, instance_ids: Sequence[str], now: datetime) -> None:
        if instance_ids:
            self._ec2.create_tags(
                Resources=list(instance_ids),
                Tags=[{"Key": names.UNLEASED_SINCE_TAG, "Value": now.astimezone(UTC).isoformat()}],
            )

    def unmark(self, instance_ids: Sequence[str]) -> None:
        if instance_ids:
            self._ec2.delete_tags(
                Resources=list(instance_ids), Tags=[{"Key": names.UNLEASED_SINCE_TAG}]
            )

    def stop(self, instance_id: str) -> None:
        self._pool.stop(instance_id)


# -- one run ----------------------------------------------------------------------
@dataclass
class Outcome:
    decision: Decision
    stopped: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def run(
    instance_ids: Sequence[str],
    *,
    fleet: Fleet,
    leases: LeaseStore,
    execution_status: Callable[[str], str],
    max_idle: timedelta,
    now: datetime | None = None,
) -> Outcome:
    now = now or datetime.now(UTC)
    by_id = {lease.instance_id: lease for lease in leases.all()}
    wanted = set(instance_ids)
    decision = decide(
        [v for v in fleet.describe(instance_ids) if v.instance_id in wanted],
        by_id,
        execution_status,
        now=now,
        max_idle=max_idle,
    )
    outcome = Outcome(decision)
    # One bad instance must not keep the guard from the others.
    for instance_id in decision.stop:
        try:
            fleet.stop(instance_id)
        except ClientError as exc:
            logger.exception("could not stop an idle worker", extra={"instance_id": instance_id})
            outcome.errors.append(f"{instance_id}: {exc}")
            continue
        outcome.stopped.append(instance_id)
        logger.warning(
            "stopped a worker running without an active lease",
            extra={"instance_id": instance_id, "max_idle_seconds": max_idle.total_seconds()},
        )
    stopped = set(outcome.stopped)
    for instance_id, execution_arn in decision.release:
        # Only once the instance is stopping: a released lease can be handed to a new
        # job at once, and that job must not inherit an instance we are stopping.
        if instance_id in stopped and leases.release(instance_id, execution_arn):
            outcome.released.append(instance_id)
            logger.warning(
                "released a stale lease",
                extra={"instance_id": instance_id, "execution": execution_arn},
            )
    fleet.mark(decision.mark, now)
    fleet.unmark([i for i in decision.unmark if i not in decision.stop or i in stopped])
    return outcome
