"""The pool scaler's decision (pure: waiting work, instances, leases, clock -> plan), and
its lease steps against moto's in-process DynamoDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from darkroom import names
from darkroom.aws.lease_store import Lease, LeaseState, LeaseStore, Waiter
from darkroom.aws.pool_instances import Instance
from darkroom.aws.table import create_request
from darkroom.pool_scaler import Limits, Plan, decide
from darkroom.settings import PoolScalerSettings, env_key

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EXEC = "arn:aws:states:us-east-1:123456789012:execution:sm:job-"
DECLARED = ("i-base",)
LIMITS = Limits(
    max_instances=3,
    max_vcpus=0,
    scale_up_after=timedelta(seconds=60),
    idle_for=timedelta(minutes=30),
    launch_vcpus=4,
    vcpus={"c7g.xlarge": 4},
)


def box(instance_id: str, state: str = "stopped") -> Instance:
    return Instance(instance_id, state, T0 - timedelta(hours=1), {}, "c7g.xlarge")


def idle(instance_id: str, since: datetime = T0) -> Lease:
    return Lease(instance_id=instance_id, state=LeaseState.IDLE, idle_since=since.isoformat())


def leased(instance_id: str, job: str = "1") -> Lease:
    return Lease(
        instance_id=instance_id, state=LeaseState.LEASED, job_id=job, execution_arn=EXEC + job
    )


def retiring(instance_id: str) -> Lease:
    return Lease(instance_id=instance_id, state=LeaseState.RETIRING)


def waiter(job: str, waited: timedelta) -> Waiter:
    return Waiter(
        job_id=job,
        execution_arn=EXEC + job,
        shard=0,
        created_at=T0.isoformat(),
        since=(T0 - waited).isoformat(),
    )


def plan(
    instances: list[Instance],
    leases: list[Lease],
    waiters: list[Waiter] = (),  # type: ignore[assignment]
    limits: Limits = LIMITS,
    now: datetime = T0,
) -> Plan:
    return decide(
        waiters=waiters,
        instances=instances,
        leases={lease.instance_id: lease for lease in leases},
        declared=DECLARED,
        now=now,
        limits=limits,
    )


def test_shards_waiting_past_the_threshold_launch_one_instance_each() -> None:
    result = plan(
        [box("i-base", "running")],
        [leased("i-base")],
        [waiter("2", timedelta(seconds=90)), waiter("3", timedelta(seconds=61))],
    )
    assert result.launch == 2
    assert result.waiting_long == 2


def test_a_shard_waiting_less_than_the_threshold_launches_nothing() -> None:
    result = plan(
        [box("i-base", "running")], [leased("i-base")], [waiter("2", timedelta(seconds=5))]
    )
    assert result.launch == 0
    assert result.waiting == 1


def test_launches_stop_at_the_maximum() -> None:
    waiters = [waiter(str(n), timedelta(minutes=5)) for n in range(2, 8)]
    result = plan(
        [box("i-base", "running"), box("i-x1", "running")],
        [leased("i-base"), leased("i-x1", "9")],
        waiters,
    )
    assert result.launch == 1  # 2 live + 1 = the maximum of 3


def test_the_vcpu_cap_bounds_launches_below_the_maximum() -> None:
    capped = Limits(**{**LIMITS.__dict__, "max_vcpus": 8, "max_instances": 10})
    waiters = [waiter(str(n), timedelta(minutes=5)) for n in range(2, 8)]
    result = plan([box("i-base", "running")], [leased("i-base")], waiters, capped)
    # 4 vCPUs running, 8 allowed: room for one more 4-vCPU instance.
    assert result.launch == 1
    assert result.running_vcpus == 4


def test_stopped_instances_do_not_count_against_the_vcpu_cap() -> None:
    capped = Limits(**{**LIMITS.__dict__, "max_vcpus": 4, "max_instances": 10})
    result = plan(
        [box("i-base", "stopped"), box("i-x1", "stopping")],
        [leased("i-base"), leased("i-x1", "9")],
        [waiter("2", timedelta(minutes=5))],
        capped,
    )
    assert result.launch == 1


def test_an_idle_instance_serves_a_waiter_instead_of_a_launch() -> None:
    result = plan(
        [box("i-base", "running"), box("i-x1", "pending")],
        [leased("i-base"), idle("i-x1")],
        [waiter("2", timedelta(minutes=5)), waiter("3", timedelta(minutes=5))],
    )
    assert result.launch == 1


def test_a_launched_instance_stopped_and_idle_past_the_period_is_retired() -> None:
    result = plan(
        [box("i-base"), box("i-x1"), box("i-x2")],
        [idle("i-base", T0 - timedelta(hours=5)), idle("i-x1", T0 - timedelta(minutes=31)),
         idle("i-x2", T0 - timedelta(minutes=5))],
    )  # fmt: skip
    assert result.retire == ("i-x1",)
    assert result.launch == 0


def test_the_declared_instances_are_the_minimum_and_never_retired() -> None:
    result = plan([box("i-base")], [idle("i-base", T0 - timedelta(days=3))])
    assert result.retire == ()


def test_nothing_is_retired_while_a_shard_waits() -> None:
    result = plan(
        [box("i-base", "running"), box("i-x1")],
        [leased("i-base"), idle("i-x1", T0 - timedelta(hours=2))],
        [waiter("2", timedelta(seconds=1))],
    )
    assert result.retire == ()


def test_a_leased_or_running_instance_is_never_retired() -> None:
    old = T0 - timedelta(hours=2)
    result = plan(
        [box("i-base"), box("i-x1"), box("i-x2", "running"), box("i-x3", "running")],
        [idle("i-base", old), leased("i-x1"), idle("i-x2", old), leased("i-x3", "4")],
    )
    assert result.retire == ()


def test_a_retiring_row_is_finished_as_its_instance_stands() -> None:
    result = plan(
        [box("i-base"), box("i-a"), box("i-b", "terminated"), box("i-c", "running")],
        [idle("i-base"), retiring("i-a"), retiring("i-b"), retiring("i-c"), retiring("i-d")],
    )
    assert result.terminate == ("i-a",)  # its terminate failed last pass
    assert result.forget == ("i-b", "i-d")  # terminated, or no longer listed
    assert result.unretire == ("i-c",)  # started since: not ours to end


def test_a_launched_instance_without_a_row_is_registered_and_counts_as_idle() -> None:
    result = plan(
        [box("i-base", "running"), box("i-x1", "pending")],
        [leased("i-base")],
        [waiter("2", timedelta(minutes=5))],
    )
    assert result.register == ("i-x1",)
    assert result.launch == 0


def test_an_idle_row_of_a_terminated_launched_instance_is_dropped() -> None:
    result = plan(
        [box("i-base"), box("i-x1", "terminated")],
        [idle("i-base"), idle("i-x1"), idle("i-new", T0 - timedelta(seconds=10))],
    )
    # i-new is not listed yet (EC2's eventual consistency): kept until idle a period.
    assert result.drop == ("i-x1",)


def test_settings_refuse_a_maximum_below_the_declared_minimum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(env_key("workers_table"), "w")
    monkeypatch.setenv(env_key("worker_instance_ids"), "i-1,i-2,i-3")
    monkeypatch.setenv(env_key("pool_launch_template"), "lt-1")
    monkeypatch.setenv(env_key("pool_max_instances"), "2")
    with pytest.raises(ValueError, match="below the pool's minimum"):
        PoolScalerSettings()


# -- the lease steps: a race with a job is safe ------------------------------------------
@pytest.fixture
def leases() -> Iterator[LeaseStore]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**create_request(names.WORKERS_SCHEMA))
        yield LeaseStore(names.WORKERS_TABLE, ddb)


def test_a_retiring_instance_cannot_be_leased(leases: LeaseStore) -> None:
    leases.ensure(["i-x1"])
    assert leases.retire("i-x1")
    assert leases.acquire("job-1", EXEC + "1", ["i-x1"]) is None


def test_a_leased_instance_cannot_be_retired_or_forgotten(leases: LeaseStore) -> None:
    leases.ensure(["i-x1"])
    assert leases.acquire("job-1", EXEC + "1", ["i-x1"]) is not None
    assert not leases.retire("i-x1")
    assert not leases.forget("i-x1")
    assert leases.get("i-x1").state is LeaseState.LEASED  # type: ignore[union-attr]


def test_a_release_restarts_the_idle_clock(leases: LeaseStore) -> None:
    leases.ensure(["i-x1"])
    first = leases.get("i-x1").idle_since  # type: ignore[union-attr]
    leases.acquire("job-1", EXEC + "1", ["i-x1"])
    assert leases.release("i-x1", EXEC + "1")
    again = leases.get("i-x1")
    assert again is not None and again.idle_since is not None and again.idle_since >= str(first)


def test_start_worker_sees_the_declared_and_the_registered_instances(leases: LeaseStore) -> None:
    leases.ensure(["i-x2", "i-x1"])
    assert leases.pool(["i-base"]) == ("i-base", "i-x1", "i-x2")
