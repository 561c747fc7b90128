"""StartWorker, WaitForWorker and StopWorker: a shard (or a run's packaging) leases a pool
instance, waiting its turn in a queue shared by every execution, hands the worker its
task token, and frees the instance when done.

Each function takes its adapters as arguments, so it runs the same against AWS, the
embedded local cloud, or test doubles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from darkroom import shards
from darkroom.aws.job_store import JobStore
from darkroom.aws.lease_store import (
    Lease,
    LeaseState,
    LeaseStore,
    LeaseTask,
    Waiter,
    lease_is_active,
)
from darkroom.aws.pool_instances import InstanceNotReady, NoCapacity, PoolInstances
from darkroom.errors import InvalidJob, JobBusy, NoIdleWorker
from darkroom.jobs import JobStatus
from darkroom.observability import logger


def start_worker(
    job_id: str,
    execution_arn: str,
    *,
    instance_ids: tuple[str, ...],
    jobs: JobStore,
    leases: LeaseStore,
    pool: PoolInstances,
    shard: int = 0,
    task: LeaseTask = LeaseTask.DEVELOP,
    avoid: str | None = None,
    execution_status: Callable[[str], str] | None = None,
    instance_types: tuple[str, ...] = (),
    declared: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Lease an idle instance to this shard and start it, or raise NoIdleWorker (the
    state retries) when none is idle or waiters before it take those that are.

    `instance_types`: the deploy's preference order; the instance starts as the first
    EC2 has capacity for (see `_start`). An instance none of them can start for now
    counts as busy: the shard keeps its place and retries.

    `avoid`: the instance a shard's first attempt lost; its second attempt takes
    another one if the pool has another. With `execution_status`, leases and waiters
    of executions that have ended (aborted in the console: no Catch released them)
    are dropped first, rather than leaving the queue to wait for the cost guard.

    `declared`: the deploy's instances, whose rows appear on first use, when
    `instance_ids` also holds the ones the pool scaler launched (their rows are the
    scaler's to create and delete: recreating one it just deleted would bring back a
    terminated instance).
    """
    if not instance_ids:
        raise InvalidJob("the worker pool is empty (DARKROOM_WORKER_INSTANCE_IDS)")
    leases.ensure(instance_ids if declared is None else declared)
    lease = leases.held_for(execution_arn, shard, instance_ids)
    me = Waiter(
        job_id=job_id,
        execution_arn=execution_arn,
        shard=shard,
        created_at=jobs.get(job_id).created_at or "",
    )
    if lease is None:
        lease = _take_turn(me, task, avoid, instance_ids, leases, execution_status)
        if lease is None:
            leases.wait(me)
            raise NoIdleWorker(
                f"all {len(instance_ids)} worker instance(s) busy or promised; "
                f"job {job_id} shard {shard} waits"
            )
    leases.stop_waiting(execution_arn, shard)
    try:
        _start(pool, lease.instance_id, instance_types)
    except (InstanceNotReady, NoCapacity) as exc:
        leases.release(lease.instance_id, execution_arn, shard=shard)
        # Back in the queue, in its place: a shard behind it must not take the next
        # free instance while this one's is still stopping.
        leases.wait(me)
        raise NoIdleWorker(f"{exc}; job {job_id} shard {shard} waits") from exc
    _starting(job_id, execution_arn, lease.instance_id, jobs)
    logger.info(
        "worker started",
        extra={"job_id": job_id, "instance_id": lease.instance_id, "shard": shard, "task": task},
    )
    return {"instance_id": lease.instance_id}


def _start(pool: PoolInstances, instance_id: str, instance_types: tuple[str, ...]) -> None:
    """Start the stopped instance as the first of `instance_types` EC2 can start,
    changing its type as needed (with one type or none: as it is).

    Preference order every time, not the type it last ran as: an instance moved to a
    fallback type during a shortage goes back to the preferred one once EC2 has it,
    rather than keeping a dearer or slower type for good."""
    if len(instance_types) < 2:
        pool.start(instance_id)
        return
    current = pool.instance_type(instance_id)
    refused: list[str] = []
    for wanted in instance_types:
        if wanted != current:
            pool.set_type(instance_id, wanted)
            current = wanted
        try:
            pool.start(instance_id)
        except NoCapacity as exc:
            refused.append(f"{wanted} ({exc})")
            continue
        if refused:
            logger.warning(
                "worker started as a fallback instance type",
                extra={"instance_id": instance_id, "instance_type": wanted, "refused": refused},
            )
        return
    raise NoCapacity(f"{instance_id}: no capacity for {', '.join(refused)}")


def _starting(job_id: str, execution_arn: str, instance_id: str, jobs: JobStore) -> None:
    """The job's first lease makes it STARTING; a later shard's finds it STARTING (and
    names its instance) or PROCESSING already, which is as it should be."""
    try:
        jobs.transition(
            job_id, execution_arn, JobStatus.STARTING, set_fields={"instance_id": instance_id}
        )
    except JobBusy:
        if jobs.get(job_id).status is not JobStatus.PROCESSING:
            raise


def _take_turn(
    me: Waiter,
    task: LeaseTask,
    avoid: str | None,
    instance_ids: tuple[str, ...],
    leases: LeaseStore,
    execution_status: Callable[[str], str] | None,
) -> Lease | None:
    def idle() -> list[Lease]:
        return [
            lease
            for lease in leases.of(instance_ids)
            if lease.state is LeaseState.IDLE
            and not (lease.instance_id == avoid and len(instance_ids) > 1)
        ]

    free = idle()
    if (
        not free
        and execution_status is not None
        and _reclaim(instance_ids, leases, execution_status)
    ):
        free = idle()
    if not free:
        return None
    ahead = shards.live_ahead(
        me,
        leases.waiters(),
        execution_status,
        lambda w: leases.stop_waiting(w.execution_arn, w.shard),
    )
    if not shards.turn(len(ahead), len(free)):
        return None
    return leases.acquire(
        me.job_id, me.execution_arn, instance_ids, shard=me.shard, task=task, avoid=avoid
    )


def _reclaim(
    instance_ids: tuple[str, ...],
    leases: LeaseStore,
    execution_status: Callable[[str], str],
) -> bool:
    freed = False
    for lease in leases.of(instance_ids):
        stale = (
            lease.state is LeaseState.LEASED
            and lease.execution_arn is not None
            and not lease_is_active(lease, execution_status)
        )
        # Conditional on the old owner: a lease that changed hands meanwhile is kept.
        # The instance keeps running: its worker drops the old job at its next heartbeat
        # (the task is gone) and then picks up the new lease's token.
        if stale and leases.release(lease.instance_id, str(lease.execution_arn)):
            logger.warning(
                "lease of an ended execution reclaimed",
                extra={"instance_id": lease.instance_id, "execution": lease.execution_arn},
            )
            freed = True
    return freed


def await_worker(
    instance_id: str, execution_arn: str, task_token: str, *, leases: LeaseStore, shard: int = 0
) -> None:
    leases.attach_token(instance_id, execution_arn, task_token, shard=shard)


def stop_worker(
    execution_arn: str,
    instance_id: str | None,
    *,
    leases: LeaseStore,
    pool: PoolInstances,
    shard: int | None = None,
) -> dict[str, Any]:
    """Stop the instances and free the leases this execution holds: the one of `shard`
    (on `instance_id` if known), or with no shard every one (the failure path, an
    ending). Another shard's lease, or another execution's, is left alone.

    Stop before release, so no other job can lease an instance that is about to stop.
    """
    if instance_id is not None:
        lease = leases.get(instance_id)
        held = [lease] if lease is not None else []
    else:
        held = leases.held_by(execution_arn)
        # A release (the failure path, a shard given up, an ending) also takes the
        # shards that were still waiting out of the queue.
        for waiter in leases.waiters():
            if waiter.execution_arn == execution_arn and shard in (None, waiter.shard):
                leases.stop_waiting(execution_arn, waiter.shard)
    mine = [
        lease
        for lease in held
        if lease.execution_arn == execution_arn and (shard is None or lease.shard == shard)
    ]
    if not mine:
        logger.info("no lease to release", extra={"execution": execution_arn, "shard": shard})
        return {"instance_id": instance_id, "released": False, "instance_ids": []}
    released = []
    for lease in mine:
        pool.stop(lease.instance_id)
        if leases.release(lease.instance_id, execution_arn, shard=lease.shard):
            released.append(lease.instance_id)
    return {
        "instance_id": mine[0].instance_id,
        "released": bool(released),
        "instance_ids": released,
    }
