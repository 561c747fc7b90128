"""Every IAM statement in the template: exact actions per role, wildcards only with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from darkroom.names import Function
from tests.infra.conftest import Synth
from tests.infra.helpers import (
    actions_of,
    all_policy_statements,
    as_list,
    functions_by_name,
    role_logical_id,
    statements_of_role,
)

LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
FAILURE_QUEUE = {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}

# What each function may do: its log group plus the calls its code makes
# (darkroom/pipeline.py and the adapters in darkroom/aws/). A new call needs a line here.
EXPECTED_ACTIONS: dict[str, set[str]] = {
    Function.ORCHESTRATOR: LOGS | {"states:StartExecution"} | FAILURE_QUEUE,
    Function.REGISTER_JOB: LOGS
    | {"s3:ListBucket", "s3:GetObject", "dynamodb:GetItem", "dynamodb:UpdateItem"},
    Function.START_WORKER: LOGS
    | {
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "ec2:StartInstances",
        "states:DescribeExecution",
    },
    Function.AWAIT_WORKER: LOGS | {"dynamodb:UpdateItem"},
    Function.STOP_WORKER: LOGS
    | {"dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem", "ec2:StopInstances"},
    Function.MARK_DONE: LOGS | {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    Function.MARK_FAILED: LOGS | {"dynamodb:GetItem", "dynamodb:UpdateItem"},
    Function.THUMBNAIL: LOGS
    | {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:DeleteObject"}
    | FAILURE_QUEUE,
    # darkroom/api/service.py through its adapters: presigned PUTs and the manifest PUT
    # (raw/), the upload listing, presigned GETs and the processed manifest, the three
    # tables, reprocessing, and reading an execution's status and history.
    Function.API: LOGS
    | {
        "s3:PutObject",
        "s3:ListBucket",
        "s3:GetObject",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
        "states:StartExecution",
        "states:DescribeExecution",
        "states:GetExecutionHistory",
    },
    "darkroom-cost-guard": LOGS
    | {
        "ec2:DescribeInstances",
        "ec2:StopInstances",
        "ec2:CreateTags",
        "ec2:DeleteTags",
        "dynamodb:Scan",
        "dynamodb:UpdateItem",
        "states:DescribeExecution",
    },
}

WORKER_ACTIONS = {
    "s3:GetObject",  # raw/* and its own source asset
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "logs:DescribeLogStreams",
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
}

# The only actions allowed on Resource "*", each because the service offers nothing
# narrower for it.
ANY_RESOURCE_ALLOWED: dict[str, str] = {
    "ec2:DescribeInstances": "EC2 Describe* actions support no resource-level permissions",
    "ssmmessages:CreateControlChannel": "Session Manager channels: no resource-level permissions",
    "ssmmessages:CreateDataChannel": "Session Manager channels: no resource-level permissions",
    "ssmmessages:OpenControlChannel": "Session Manager channels: no resource-level permissions",
    "ssmmessages:OpenDataChannel": "Session Manager channels: no resource-level permissions",
    "logs:CreateLogDelivery": "vended-log delivery (Step Functions logging): none",
    "logs:GetLogDelivery": "vended-log delivery (Step Functions logging): none",
    "logs:UpdateLogDelivery": "vended-log delivery (Step Functions logging): none",
    "logs:DeleteLogDelivery": "vended-log delivery (Step Functions logging): none",
    "logs:ListLogDeliveries": "vended-log delivery (Step Functions logging): none",
    "logs:PutResourcePolicy": "account-level log resource policy for vended logs: none",
    "logs:DescribeResourcePolicies": "account-level listing: none",
    "logs:DescribeLogGroups": "account-level listing: none",
    "xray:PutTraceSegments": "X-Ray supports no resource-level permissions for these",
    "xray:PutTelemetryRecords": "X-Ray supports no resource-level permissions for these",
    "xray:GetSamplingRules": "X-Ray supports no resource-level permissions for these",
    "xray:GetSamplingTargets": "X-Ray supports no resource-level permissions for these",
}


def test_no_allow_statement_has_a_wildcard_action(synth: Synth) -> None:
    for logical_id, statement in all_policy_statements(synth.template):
        if statement["Effect"] != "Allow":
            continue  # TLS-only denies name s3:* / sqs:* on purpose: they only take away
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{logical_id}: {action}"


def test_resource_star_only_where_the_service_allows_nothing_narrower(synth: Synth) -> None:
    for logical_id, statement in all_policy_statements(synth.template):
        if statement["Effect"] != "Allow" or "*" not in as_list(statement.get("Resource", [])):
            continue
        for action in as_list(statement["Action"]):
            assert action in ANY_RESOURCE_ALLOWED, f'{logical_id}: {action} on "*"'


def test_resource_policies_allow_only_aws_services_scoped_to_this_account(synth: Synth) -> None:
    for logical_id, statement in all_policy_statements(synth.template):
        principal = statement.get("Principal")
        if principal is None or statement["Effect"] != "Allow":
            continue
        assert set(principal) == {"Service"}, f"{logical_id}: {principal}"
        assert "Condition" in statement, f"{logical_id}: an unconditioned service grant"


@pytest.mark.parametrize("function", sorted(EXPECTED_ACTIONS))
def test_each_function_role_holds_exactly_what_its_code_calls(synth: Synth, function: str) -> None:
    _, resource = functions_by_name(synth.template)[function]
    role_id = role_logical_id(resource)
    assert actions_of(statements_of_role(synth.template, role_id)) == EXPECTED_ACTIONS[function]
    role = synth.template["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
        }
    ]


def test_scoped_resources_of_the_task_functions(synth: Synth) -> None:
    fns = functions_by_name(synth.template)
    stack = synth.stack

    def statements(function: str) -> list[dict[str, Any]]:
        return statements_of_role(synth.template, role_logical_id(fns[function][1]))

    pool = [synth.logical_id(i) for i in stack.worker_pool.instances]
    (start,) = [s for s in statements(Function.START_WORKER) if s["Action"] == "ec2:StartInstances"]
    started = [part["Fn::Join"][1][-1] for part in as_list(start["Resource"])]
    assert started == [{"Ref": i} for i in pool], "only the pool's own instances"
    (listing,) = [s for s in statements(Function.REGISTER_JOB) if s["Action"] == "s3:ListBucket"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["raw/*"]}}
    (invoke,) = [
        s
        for s in statements_of_role(
            synth.template, synth.logical_id(stack.pipeline.state_machine.role)
        )
        if s["Action"] == "lambda:InvokeFunction"
    ]
    invoked = {r["Fn::GetAtt"][0] for r in as_list(invoke["Resource"])}
    assert invoked == {synth.logical_id(f.function) for f in stack.pipeline.tasks.values()}


def test_worker_role(synth: Synth) -> None:
    role_id = synth.logical_id(synth.stack.worker_pool.role)
    statements = statements_of_role(synth.template, role_id)
    assert actions_of(statements) == WORKER_ACTIONS
    by_sid = {s.get("Sid"): s for s in statements}
    callbacks = by_sid["TaskCallbacks"]["Resource"]
    assert callbacks["Fn::Join"][1][-1] == ":stateMachine:darkroom-raw-pipeline"
    assert "ec2:StopInstances" not in actions_of(statements), "it powers itself off"
    profile = next(iter(synth.resources("AWS::IAM::InstanceProfile").values()))
    assert profile["Properties"]["Roles"] == [{"Ref": role_id}]


def test_no_role_carries_a_managed_policy(synth: Synth) -> None:
    for logical_id, role in synth.resources("AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], logical_id
