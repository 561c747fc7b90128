"""The cost guard: the pure decision, then a run against moto's in-process mocks."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from darkroom import cost_guard, names
from darkroom.aws.executions import Executions, ExecutionStatus
from darkroom.aws.lease_store import Lease, LeaseState, LeaseStore
from darkroom.aws.pool_instances import Instance, PoolInstances
from darkroom.aws.table import create_request
from darkroom.cost_guard import Decision, decide
from darkroom.local.cloud import LOCAL_AMI_ID
from darkroom.settings import CostGuardSettings, env_key, load
from tests.moto_config import IDLE_STATE_MACHINES

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
MAX_IDLE = timedelta(minutes=30)
EXEC = "arn:aws:states:us-east-1:123456789012:execution:sm:job-1"


def view(
    instance_id: str = "i-1",
    state: str = "running",
    launched: datetime | None = T0,
    unleased_since: datetime | None = None,
) -> Instance:
    tags = {} if unleased_since is None else {names.UNLEASED_SINCE_TAG: unleased_since.isoformat()}
    return Instance(instance_id, state, launched, tags)


def leased(instance_id: str = "i-1", execution_arn: str = EXEC) -> Lease:
    return Lease(
        instance_id=instance_id,
        state=LeaseState.LEASED,
        job_id="job-1",
        execution_arn=execution_arn,
    )


def status(value: str) -> Any:
    return lambda arn: value


def run_decide(
    instances: list[Instance],
    leases: dict[str, Lease] | None = None,
    execution: str = "RUNNING",
    now: datetime = T0,
) -> Decision:
    return decide(instances, leases or {}, status(execution), now=now, max_idle=MAX_IDLE)


# -- decide -------------------------------------------------------------------------
def test_an_instance_with_an_active_lease_is_left_alone_however_long_it_runs() -> None:
    d = run_decide([view()], {"i-1": leased()}, now=T0 + timedelta(hours=10))
    assert (d.stop, d.mark, d.release) == ((), (), ())
    assert d.running == 1 and d.unleased == 0
    assert d.longest_run_seconds == 10 * 3600


def test_first_sight_without_a_lease_marks_and_does_not_stop() -> None:
    # Launched hours ago, but the guard cannot know when the lease went away.
    d = run_decide([view()], now=T0 + timedelta(hours=3))
    assert d.mark == ("i-1",) and d.stop == ()
    assert d.unleased == 1


def test_stops_once_unleased_for_longer_than_max_idle() -> None:
    marked = view(unleased_since=T0)
    assert run_decide([marked], now=T0 + MAX_IDLE - timedelta(seconds=1)).stop == ()
    d = run_decide([marked], now=T0 + MAX_IDLE)
    assert d.stop == ("i-1",)
    assert d.unmark == ("i-1",), "the next start must count from zero"
    assert d.release == ()


def test_an_idle_lease_row_is_not_an_active_lease() -> None:
    idle = Lease(instance_id="i-1", state=LeaseState.IDLE)
    d = run_decide([view(unleased_since=T0)], {"i-1": idle}, now=T0 + MAX_IDLE)
    assert d.stop == ("i-1",) and d.release == ()


@pytest.mark.parametrize("ended", ["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "MISSING"])
def test_a_lease_whose_execution_ended_is_stale_and_released_after_the_stop(ended: str) -> None:
    d = run_decide([view(unleased_since=T0)], {"i-1": leased()}, execution=ended, now=T0 + MAX_IDLE)
    assert d.stop == ("i-1",)
    assert d.release == (("i-1", EXEC),)


def test_an_unreadable_execution_status_counts_as_running() -> None:
    d = run_decide(
        [view(unleased_since=T0)], {"i-1": leased()}, execution="UNKNOWN", now=T0 + MAX_IDLE
    )
    assert d.stop == () and d.unleased == 0


def test_a_restart_after_the_mark_counts_from_the_restart() -> None:
    restarted = view(launched=T0 + timedelta(minutes=20), unleased_since=T0)
    assert run_decide([restarted], now=T0 + MAX_IDLE + timedelta(minutes=5)).stop == ()
    assert run_decide([restarted], now=T0 + timedelta(minutes=50)).stop == ("i-1",)


def test_leased_again_or_stopped_clears_the_mark_and_pending_is_left_alone() -> None:
    d = run_decide(
        [
            view("i-1", unleased_since=T0),
            view("i-2", state="stopped", unleased_since=T0),
            view("i-3", state="pending", unleased_since=T0),
            view("i-4", state="stopped"),
        ],
        {"i-1": leased("i-1")},
        now=T0 + timedelta(minutes=1),
    )
    assert d.unmark == ("i-1", "i-2")
    assert d.stop == () and d.mark == ()
    assert d.running == 1


# -- against moto -------------------------------------------------------------------
class World:
    def __init__(self, pool_size: int = 2) -> None:
        region = "us-east-1"
        self.ec2 = boto3.client("ec2", region_name=region)
        self.ddb = boto3.client("dynamodb", region_name=region)
        self.sfn = boto3.client("stepfunctions", region_name=region)
        self.ddb.create_table(**create_request(names.WORKERS_SCHEMA, "workers"))
        reservation = self.ec2.run_instances(
            ImageId=LOCAL_AMI_ID, MinCount=pool_size, MaxCount=pool_size
        )
        self.instance_ids = tuple(sorted(i["InstanceId"] for i in reservation["Instances"]))
        # An instance outside the pool, running: the guard must never touch it.
        self.stranger = self.ec2.run_instances(ImageId=LOCAL_AMI_ID, MinCount=1, MaxCount=1)[
            "Instances"
        ][0]["InstanceId"]
        self.state_machine = self.sfn.create_state_machine(
            name="sm",
            definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Pass", "End": True}}}),
            roleArn="arn:aws:iam::123456789012:role/sm",
        )["stateMachineArn"]
        self.leases = LeaseStore("workers", self.ddb)
        self.leases.ensure(self.instance_ids)
        self.instances = PoolInstances(self.ec2)

    def start_execution(self, name: str) -> str:
        return str(
            self.sfn.start_execution(stateMachineArn=self.state_machine, name=name)["executionArn"]
        )

    def state(self, instance_id: str) -> str:
        reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return str(reservations[0]["Instances"][0]["State"]["Name"])

    def tags(self, instance_id: str) -> dict[str, str]:
        reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return {t["Key"]: t["Value"] for t in reservations[0]["Instances"][0].get("Tags", [])}

    def run(self, now: datetime) -> cost_guard.Outcome:
        return cost_guard.run(
            self.instance_ids,
            instances=self.instances,
            leases=self.leases,
            execution_status=ExecutionStatus(Executions(sfn=self.sfn)),
            max_idle=MAX_IDLE,
            now=now,
        )


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws(config=IDLE_STATE_MACHINES):
        yield World()


def test_marks_then_stops_an_unleased_instance_and_spares_the_leased_one(world: World) -> None:
    busy, idle = world.instance_ids
    execution = world.start_execution("job-1")
    assert world.leases.acquire("job-1", execution, [busy]) is not None
    now = datetime.now(UTC)

    first = world.run(now)
    assert first.decision.mark == (idle,) and first.stopped == []
    assert names.UNLEASED_SINCE_TAG in world.tags(idle)
    assert names.UNLEASED_SINCE_TAG not in world.tags(busy)

    second = world.run(now + MAX_IDLE + timedelta(seconds=1))
    assert second.stopped == [idle]
    assert world.state(idle) in {"stopping", "stopped"}
    assert world.state(busy) == "running"
    assert names.UNLEASED_SINCE_TAG not in world.tags(idle)
    assert world.state(world.stranger) == "running"


def test_an_aborted_execution_leaves_a_stale_lease_the_guard_frees(world: World) -> None:
    instance = world.instance_ids[0]
    execution = world.start_execution("job-2")
    world.leases.acquire("job-2", execution, [instance])
    world.sfn.stop_execution(executionArn=execution)  # aborted from the console
    now = datetime.now(UTC)

    world.run(now)
    outcome = world.run(now + MAX_IDLE)
    assert instance in outcome.stopped
    assert outcome.released == [instance]
    lease = world.leases.get(instance)
    assert lease is not None and lease.state is LeaseState.IDLE


def test_the_handler_publishes_its_metrics(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with mock_aws(config=IDLE_STATE_MACHINES):
        world = World(pool_size=1)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv(env_key("workers_table"), "workers")
        monkeypatch.setenv(env_key("worker_instance_ids"), ",".join(world.instance_ids))
        monkeypatch.setenv(env_key("cost_guard_max_idle_seconds"), "900")
        sys.modules.pop("tasks.cost_guard", None)
        module = importlib.import_module("tasks.cost_guard")
        assert module.settings.cost_guard_max_idle_seconds == 900

        class Context:
            function_name = names.Function.COST_GUARD
            memory_limit_in_mb = 256
            invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
            aws_request_id = "req-1"

        result = module.handler({}, Context())
        sys.modules.pop("tasks.cost_guard", None)
    assert result["running"] == 1 and result["marked"] == list(world.instance_ids)
    emf = [
        json.loads(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and '"_aws"' in line
    ]
    assert emf, "no EMF document printed"
    published = {m["Name"] for d in emf for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {
        cost_guard.METRIC_RUNNING,
        cost_guard.METRIC_UNLEASED,
        cost_guard.METRIC_LONGEST_RUN,
        cost_guard.METRIC_STOPPED,
    } <= published


def test_settings_need_the_table_and_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(env_key("workers_table"), raising=False)
    monkeypatch.setenv(env_key("worker_instance_ids"), "i-1, i-2")
    with pytest.raises(RuntimeError, match=env_key("workers_table")):
        load(CostGuardSettings)
    monkeypatch.setenv(env_key("workers_table"), "workers")
    assert load(CostGuardSettings).worker_instance_ids == ("i-1", "i-2")
    monkeypatch.setenv(env_key("worker_instance_ids"), " , ")
    with pytest.raises(RuntimeError, match=env_key("worker_instance_ids")):
        load(CostGuardSettings)


def test_a_hand_edited_mark_counts_as_no_mark() -> None:
    broken = Instance("i-1", "running", T0, {names.UNLEASED_SINCE_TAG: "yesterday"})
    d = run_decide([broken], now=T0 + MAX_IDLE)
    assert d.mark == ("i-1",) and d.stop == ()
