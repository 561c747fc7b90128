"""The pool scaler: grow the worker pool while shards wait, shrink it back when idle.

The pool's minimum is the instances the deploy declares (CloudFormation owns them; the
scaler never terminates one). Above it, up to `max_instances` and within a cap on the
vCPUs running at once, the scaler launches instances from the pool's launch template
when shards have waited for a worker longer than `scale_up_after`, and registers each
in the workers table as an IDLE lease, where StartWorker (LeaseStore.pool) finds it and
leases it like any other. An instance it launched that has stood stopped with an IDLE
lease longer than `idle_for` is terminated, its EBS volumes with it (the template sets
DeleteOnTermination), down to the minimum.

Why a leased pool and not an Auto Scaling group with a warm pool: StartWorker must choose
the instance a shard runs on (its lease, its task token, its instance type fallback); a
group chooses which instance starts and which is removed, treats an instance that stops
itself (the worker's idle shutdown) as unhealthy and replaces it, and moto only stores
warm-pool settings, so the local cloud could not run it.

A lease race is safe: terminating takes the row from IDLE to RETIRING with a conditional
write first (acquire wants IDLE, so no job can lease it meanwhile), then checks the
instance is still stopped, and only then terminates it; a RETIRING row is deleted once
EC2 reports its instance terminated. Every step can fail midway: the next pass sees the
row and the instance as they are and finishes (terminate a RETIRING stopped instance,
register a launched instance that has no row, forget a terminated one's row).

`decide` is pure; `run` makes the calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from botocore.exceptions import ClientError

from darkroom import names
from darkroom.aws.lease_store import Lease, LeaseState, LeaseStore, Waiter
from darkroom.aws.pool_instances import Instance, PoolInstances
from darkroom.errors import DarkroomError
from darkroom.observability import logger

# EMF metrics, published on every pass.
METRIC_POOL_SIZE: Final = "WorkerPoolSize"
METRIC_WAITING: Final = "ShardsWaitingForWorker"
METRIC_LAUNCHED: Final = "WorkerInstancesLaunched"
METRIC_TERMINATED: Final = "WorkerInstancesTerminated"

# EC2 states of an instance that is (or will be) there; the rest are going or gone.
LIVE_STATES = frozenset({"pending", "running", "stopping", "stopped"})
# States that count against the vCPU cap: what is billed by the second.
RUNNING_STATES = frozenset({"pending", "running"})


@dataclass(frozen=True)
class Limits:
    max_instances: int
    # 0: no cap beyond max_instances.
    max_vcpus: int
    scale_up_after: timedelta
    idle_for: timedelta
    # vCPUs of the type a launch creates (the template's), and of each type seen.
    launch_vcpus: int
    vcpus: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    launch: int = 0
    # Instances the scaler launched that have no lease row (a pass failed after launch).
    register: tuple[str, ...] = ()
    # IDLE, stopped, idle too long: take to RETIRING and terminate.
    retire: tuple[str, ...] = ()
    # RETIRING rows: terminate (stopped), forget (instance gone), unretire (it runs).
    terminate: tuple[str, ...] = ()
    forget: tuple[str, ...] = ()
    unretire: tuple[str, ...] = ()
    # IDLE rows of launched instances EC2 reports gone (terminated by hand): retired
    # and deleted, so StartWorker stops trying them.
    drop: tuple[str, ...] = ()
    # What the decision saw, for the log and the console.
    waiting: int = 0
    waiting_long: int = 0
    live: int = 0
    running_vcpus: int = 0


def decide(
    *,
    waiters: Iterable[Waiter],
    instances: Iterable[Instance],
    leases: Mapping[str, Lease],
    declared: Iterable[str],
    now: datetime,
    limits: Limits,
) -> Plan:
    fixed = set(declared)
    queue = list(waiters)
    by_id = {i.instance_id: i for i in instances}
    live = {i: inst for i, inst in by_id.items() if inst.state in LIVE_STATES}
    scaled = {i: inst for i, inst in live.items() if i not in fixed}

    register = tuple(sorted(i for i in scaled if i not in leases))
    terminate: list[str] = []
    forget: list[str] = []
    unretire: list[str] = []
    for lease in leases.values():
        if lease.state is not LeaseState.RETIRING:
            continue
        instance = by_id.get(lease.instance_id)
        if instance is None or instance.state not in LIVE_STATES:
            forget.append(lease.instance_id)
        elif instance.state == "stopped":
            terminate.append(lease.instance_id)
        elif instance.state in RUNNING_STATES:
            # Started by hand, or a retire that raced a start: it is not ours to end.
            unretire.append(lease.instance_id)
        # stopping: the next pass finds it stopped.
    drop = []
    for lease in leases.values():
        if lease.state is not LeaseState.IDLE or lease.instance_id in fixed:
            continue
        instance = by_id.get(lease.instance_id)
        if instance is not None and instance.state in LIVE_STATES:
            continue
        since = _parse(lease.idle_since)
        # Absent from the listing right after a launch is EC2's eventual consistency,
        # not a loss: only a row idle a full period is dropped on absence alone.
        if instance is not None or (since is not None and now - since >= limits.idle_for):
            drop.append(lease.instance_id)

    running_vcpus = sum(
        limits.vcpus.get(i.instance_type, limits.launch_vcpus)
        for i in live.values()
        if i.state in RUNNING_STATES
    )
    waiting_long = sum(1 for w in queue if _waited(w, now) >= limits.scale_up_after)
    # An IDLE instance that is there (or coming: just launched) will serve a waiter at its
    # next retry; launching for that waiter too would overshoot.
    idle = sum(1 for i in live if _state(leases, i) is LeaseState.IDLE) + len(register)
    launch = max(0, waiting_long - idle)
    launch = min(launch, max(0, limits.max_instances - len(live)))
    if limits.max_vcpus > 0 and limits.launch_vcpus > 0:
        room = max(0, limits.max_vcpus - running_vcpus) // limits.launch_vcpus
        launch = min(launch, room)

    retire: list[str] = []
    # Shrink only with nobody waiting: a waiting shard takes a stopped IDLE instance.
    if not queue:
        # Only instances it launched (`scaled`): the declared ones are the minimum.
        candidates: list[tuple[datetime, str]] = []
        for i, inst in scaled.items():
            row = leases.get(i)
            if inst.state != "stopped" or row is None or row.state is not LeaseState.IDLE:
                continue
            stood = _idle_since(row, inst)
            if stood is not None and now - stood >= limits.idle_for:
                candidates.append((stood, i))
        retire = [i for _, i in sorted(candidates)]
    return Plan(
        launch=launch,
        register=register,
        retire=tuple(retire),
        terminate=tuple(sorted(terminate)),
        forget=tuple(sorted(forget)),
        unretire=tuple(sorted(unretire)),
        drop=tuple(sorted(drop)),
        waiting=len(queue),
        waiting_long=waiting_long,
        live=len(live),
        running_vcpus=running_vcpus,
    )


def _state(leases: Mapping[str, Lease], instance_id: str) -> LeaseState | None:
    row = leases.get(instance_id)
    return row.state if row is not None else None


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _waited(waiter: Waiter, now: datetime) -> timedelta:
    since = _parse(waiter.since)
    return now - since if since is not None else timedelta(0)


def _idle_since(lease: Lease, instance: Instance) -> datetime | None:
    # A row without idle_since (written before it existed): its instance's last start.
    return _parse(lease.idle_since) or instance.launch_time


# -- one pass -----------------------------------------------------------------------
@dataclass
class Outcome:
    plan: Plan
    launched: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class ScalerFailed(DarkroomError):
    """A pass could not make one of its EC2 calls; the next pass repairs what it left."""


def run(
    declared: Sequence[str],
    *,
    instances: PoolInstances,
    leases: LeaseStore,
    template: str,
    limits: Limits,
    subnet_ids: Sequence[str] = (),
    now: datetime | None = None,
) -> Outcome:
    now = now or datetime.now(UTC)
    seen = instances.describe_tagged(names.WORKER_POOL_TAG_KEY, names.WORKER_POOL_TAG_VALUE)
    rows = {lease.instance_id: lease for lease in leases.all()}
    plan = decide(
        waiters=leases.waiters(),
        instances=seen,
        leases=rows,
        declared=declared,
        now=now,
        limits=limits,
    )
    outcome = Outcome(plan)
    if plan.register:
        leases.ensure(plan.register)
        outcome.registered.extend(plan.register)
    for instance_id in plan.forget:
        if leases.forget(instance_id):
            outcome.forgotten.append(instance_id)
    for instance_id in plan.drop:
        if leases.retire(instance_id) and leases.forget(instance_id):
            outcome.forgotten.append(instance_id)
    for instance_id in plan.unretire:
        leases.unretire(instance_id)
    # A RETIRING row whose terminate failed last pass: the row already keeps jobs off it.
    for instance_id in plan.terminate:
        _terminate(instances, instance_id, outcome)
    for instance_id in plan.retire:
        if not leases.retire(instance_id):
            continue  # a job leased it since the describe: it stays
        # Re-read after taking the row: a start between the describe and the retire
        # (the worker's own, an operator's) must not be cut short.
        (fresh,) = instances.describe([instance_id]) or (None,)
        if fresh is None or fresh.state != "stopped":
            leases.unretire(instance_id)
            continue
        _terminate(instances, instance_id, outcome)
    for index in range(plan.launch):
        subnet = subnet_ids[(plan.live + index) % len(subnet_ids)] if subnet_ids else ""
        try:
            launched = instances.launch(template, 1, subnet_id=subnet)
        except ClientError as exc:
            logger.exception("could not launch a pool instance", extra={"subnet": subnet})
            outcome.errors.append(f"launch: {exc}")
            break  # the same refusal would meet the rest; the next pass tries again
        # Registered at once so waiting shards find it; a failure here is repaired by the
        # next pass (it finds the tagged instance with no row).
        leases.ensure(launched)
        outcome.launched.extend(launched)
    if outcome.launched or outcome.terminated:
        logger.info(
            "pool scaled",
            extra={
                "launched": outcome.launched,
                "terminated": outcome.terminated,
                "waiting": plan.waiting,
                "live": plan.live,
            },
        )
    return outcome


def _terminate(instances: PoolInstances, instance_id: str, outcome: Outcome) -> None:
    try:
        instances.terminate([instance_id])
    except ClientError as exc:
        logger.exception("could not terminate a pool instance", extra={"instance_id": instance_id})
        outcome.errors.append(f"{instance_id}: {exc}")
        return
    outcome.terminated.append(instance_id)
