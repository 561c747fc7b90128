"""The pool scaler in the template: its schedule, its settings, its launch template
(volumes deleted with the instance), and a role that launches only from that template
and terminates only the instances it launched."""

from __future__ import annotations

from typing import Any

from darkroom import names
from darkroom.names import Function
from tests.infra.conftest import Synth
from tests.infra.helpers import functions_by_name, role_logical_id, statements_of_role

LAUNCHED_TAGS = {
    f"aws:ResourceTag/{names.WORKER_POOL_TAG_KEY}": names.WORKER_POOL_TAG_VALUE,
    f"aws:ResourceTag/{names.WORKER_SCALED_TAG_KEY}": names.WORKER_SCALED_TAG_VALUE,
}


def _scaler_statements(synth: Synth) -> list[dict[str, Any]]:
    _, function = functions_by_name(synth.template)[Function.POOL_SCALER]
    return statements_of_role(synth.template, role_logical_id(function))


def _by_sid(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in statements if "Sid" in s}


def test_the_launch_template_deletes_volumes_with_the_instance_and_tags_what_it_launches(
    synth: Synth,
) -> None:
    template = synth.resource(synth.stack.worker_pool.launch_template)["Properties"]
    data = template["LaunchTemplateData"]
    volumes = data["BlockDeviceMappings"]
    assert len(volumes) == 2
    assert all(v["Ebs"]["DeleteOnTermination"] is True for v in volumes)
    assert all(v["Ebs"]["Encrypted"] is True for v in volumes)
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["InstanceInitiatedShutdownBehavior"] == "stop"
    specs = {s["ResourceType"]: s["Tags"] for s in data["TagSpecifications"]}
    for kind in ("instance", "volume"):
        tags = {t["Key"]: t["Value"] for t in specs[kind]}
        assert tags[names.WORKER_POOL_TAG_KEY] == names.WORKER_POOL_TAG_VALUE
        assert tags[names.WORKER_SCALED_TAG_KEY] == names.WORKER_SCALED_TAG_VALUE


def test_the_declared_instances_do_not_carry_the_scaled_tag(synth: Synth) -> None:
    for instance in synth.stack.worker_pool.instances:
        tags = {t["Key"] for t in synth.resource(instance)["Properties"]["Tags"]}
        assert names.WORKER_POOL_TAG_KEY in tags
        assert names.WORKER_SCALED_TAG_KEY not in tags


def test_the_scaler_runs_every_minute_with_the_pools_limits(synth: Synth) -> None:
    props = synth.resource(synth.stack.pool_scaler.rule)["Properties"]
    assert props["ScheduleExpression"] == "rate(1 minute)"
    logical_id, function = functions_by_name(synth.template)[Function.POOL_SCALER]
    (target,) = props["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["DARKROOM_POOL_MAX_INSTANCES"] == "4"
    assert variables["DARKROOM_POOL_SCALE_UP_AFTER_SECONDS"] == "180"
    assert variables["DARKROOM_POOL_IDLE_TERMINATE_SECONDS"] == "3600"
    template_id = synth.logical_id(synth.stack.worker_pool.launch_template)
    assert variables["DARKROOM_POOL_LAUNCH_TEMPLATE"] == {"Ref": template_id}


def test_the_scaler_launches_only_from_the_pools_template(synth: Synth) -> None:
    statements = _by_sid(_scaler_statements(synth))
    template_id = synth.logical_id(synth.stack.worker_pool.launch_template)
    launch = statements["LaunchFromTemplate"]
    assert launch["Action"] == "ec2:RunInstances"
    assert template_id in str(launch["Resource"])
    created = statements["LaunchedResources"]
    assert created["Action"] == "ec2:RunInstances"
    (condition,) = created["Condition"]["ArnEquals"].values()
    assert template_id in str(condition)
    assert statements["TagAtLaunch"]["Condition"] == {
        "StringEquals": {"ec2:CreateAction": "RunInstances"}
    }
    passed = statements["PassWorkerRole"]
    assert synth.logical_id(synth.stack.worker_pool.role) in str(passed["Resource"])


def test_the_scaler_terminates_only_instances_it_launched(synth: Synth) -> None:
    statements = _scaler_statements(synth)
    terminating = [s for s in statements if "ec2:TerminateInstances" in str(s["Action"])]
    assert [s["Sid"] for s in terminating] == ["TerminateLaunched"]
    assert terminating[0]["Condition"] == {"StringEquals": LAUNCHED_TAGS}
    # And no other role in the stack may terminate anything.
    for resource in synth.resources("AWS::IAM::Policy").values():
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            if "ec2:TerminateInstances" in str(statement["Action"]):
                assert statement.get("Condition") == {"StringEquals": LAUNCHED_TAGS}


def test_the_leases_are_the_scalers_only_table(synth: Synth) -> None:
    statements = _scaler_statements(synth)
    tables = [s for s in statements if "dynamodb:" in str(s["Action"])]
    workers = synth.logical_id(synth.stack.storage.workers)
    assert len(tables) == 1 and workers in str(tables[0]["Resource"])
    assert sorted(tables[0]["Action"]) == [
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
    ]
