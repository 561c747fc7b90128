"""The cost guard: stop pool instances that run without an active lease.

The worker stops its own instance after `idle_shutdown_seconds` without a lease, and
StopWorker stops it at the end of every job (the ending reconciler, when an execution
ends where no Catch runs). This is the backstop for when those miss: an ending whose
reconciling failed every try, a ReleaseWorker that failed, an instance an operator
started by hand and forgot, or a worker that crashed before its idle timer ran out.

A lease is *active* when it is LEASED to an execution that is still RUNNING. An instance
running without one is marked with a tag the first time the guard sees it; once it has
stayed that way for `max_idle`, the guard stops it and frees the stale lease (only the
lease of an execution that has ended). The tag lives on the instance so the guard keeps
no state of its own between its scheduled runs.

`decide` is pure; `PoolInstances`, the execution statuses and `LeaseStore` are its AWS
calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from botocore.exceptions import ClientError

from darkroom import names
from darkroom.aws.lease_store import Lease, LeaseState, LeaseStore, lease_is_active
from darkroom.aws.pool_instances import Instance, PoolInstances
from darkroom.observability import logger

# EMF metrics, published on every run (the dashboard's instance hours and the
# "worker running past the longest job" alarm are built from them).
METRIC_RUNNING: Final = "WorkerInstancesRunning"
METRIC_UNLEASED: Final = "WorkerInstancesRunningUnleased"
METRIC_LONGEST_RUN: Final = "WorkerLongestRunSeconds"
METRIC_STOPPED: Final = "WorkerInstancesStoppedByGuard"


# -- the decision -----------------------------------------------------------------
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
    instances: Iterable[Instance],
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
            if instance.state != "pending" and unleased_since(instance) is not None:
                unmark.append(instance.instance_id)
            continue
        running += 1
        if instance.launch_time is not None:
            longest = max(longest, (now - instance.launch_time).total_seconds())
        lease = leases.get(instance.instance_id)
        since = unleased_since(instance)
        if lease_is_active(lease, execution_status):
            if since is not None:
                unmark.append(instance.instance_id)
            continue
        unleased += 1
        if since is None:
            mark.append(instance.instance_id)
            continue
        # A stop and start between two runs leaves an old tag behind: count from the
        # later of the two.
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


def unleased_since(instance: Instance) -> datetime | None:
    """When the guard first saw the instance running without an active lease (its tag)."""
    value = instance.tags.get(names.UNLEASED_SINCE_TAG)
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None  # a hand-edited tag: treat as absent, the next run re-marks it
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
    instances: PoolInstances,
    leases: LeaseStore,
    execution_status: Callable[[str], str],
    max_idle: timedelta,
    now: datetime | None = None,
) -> Outcome:
    now = now or datetime.now(UTC)
    by_id = {lease.instance_id: lease for lease in leases.all()}
    wanted = set(instance_ids)
    decision = decide(
        [i for i in instances.describe(instance_ids) if i.instance_id in wanted],
        by_id,
        execution_status,
        now=now,
        max_idle=max_idle,
    )
    outcome = Outcome(decision)
    # One bad instance must not keep the guard from the others.
    for instance_id in decision.stop:
        try:
            instances.stop(instance_id)
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
    instances.tag(decision.mark, names.UNLEASED_SINCE_TAG, now.astimezone(UTC).isoformat())
    instances.untag(
        [i for i in decision.unmark if i not in decision.stop or i in stopped],
        names.UNLEASED_SINCE_TAG,
    )
    return outcome
