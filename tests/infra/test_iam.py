"""Every IAM statement in the template: exact actions per role, wildcards only with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from darkroom import names
from darkroom.names import Function
from tests.infra.conftest import Synth
from tests.infra.helpers import (
    actions_of,
    all_policy_statements,
    as_list,
    functions_by_name,
    render,
    role_logical_id,
    statements_of_role,
)

LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
FAILURE_QUEUE = {"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"}

# What each task function may do, and on what: action -> the resources it is granted on
# (names that scopes() below resolves). Its log group plus the calls its code makes
# (darkroom/pipeline.py and the adapters in darkroom/aws/). A new call needs a line here.
# Every function's active tracing (X-Ray has no resource-level permissions).
TRACING = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
OWN_LOGS = {
    **{action: {"own log group"} for action in LOGS},
    **{action: {"*"} for action in TRACING},
}
# What a pool scaler's launch creates or names (RunInstances through the template).
LAUNCHED_KINDS = ("instance", "volume", "network-interface", "subnet", "security-group", "image")
SCOPED: dict[str, dict[str, set[str]]] = {
    Function.ORCHESTRATOR: {
        **OWN_LOGS,
        "states:StartExecution": {"state machine"},
        **{action: {"submission failures"} for action in FAILURE_QUEUE},
    },
    Function.REGISTER_JOB: {
        **OWN_LOGS,
        "events:PutEvents": {"default bus"},
        "s3:ListBucketVersions": {"raw bucket"},
        "s3:GetObject": {"raw/ objects"},
        "dynamodb:GetItem": {"jobs table"},
        "dynamodb:UpdateItem": {"jobs table"},
        "dynamodb:Query": {"jobs table"},
        "dynamodb:PutItem": {"jobs table"},
        "dynamodb:ConditionCheckItem": {"jobs table"},
    },
    Function.START_WORKER: {
        **OWN_LOGS,
        "events:PutEvents": {"default bus"},
        "dynamodb:PutItem": {"workers table"},
        # The pool's own lease rows; the queue of waiting shards (a scan of a table of
        # one row per instance and per waiting shard), and a waiter leaving it.
        "dynamodb:BatchGetItem": {"workers table"},
        "dynamodb:Scan": {"workers table"},
        "dynamodb:DeleteItem": {"workers table"},
        "dynamodb:UpdateItem": {"workers table", "jobs table"},
        "dynamodb:GetItem": {"jobs table"},
        "ec2:StartInstances": {"pool instances", "launched instances"},
        # Its fallback instance types: the instance's type, and changing it.
        "ec2:DescribeInstances": {"*"},
        "ec2:ModifyInstanceAttribute": {"pool instances", "launched instances"},
        "states:DescribeExecution": {"executions"},
    },
    Function.AWAIT_WORKER: {**OWN_LOGS, "dynamodb:UpdateItem": {"workers table"}},
    Function.STOP_WORKER: {
        **OWN_LOGS,
        "dynamodb:GetItem": {"workers table"},
        "dynamodb:Scan": {"workers table"},
        "dynamodb:UpdateItem": {"workers table"},
        "ec2:StopInstances": {"pool instances", "launched instances"},
    },
    Function.MARK_DONE: {
        **OWN_LOGS,
        "events:PutEvents": {"default bus"},
        "dynamodb:GetItem": {"jobs table"},
        "dynamodb:UpdateItem": {"jobs table"},
        "dynamodb:Query": {"jobs table"},
        "s3:ListBucket": {"processed bucket"},
        "s3:ListBucketMultipartUploads": {"processed bucket"},
        "s3:DeleteObject": {"processed/ objects"},
        "s3:AbortMultipartUpload": {"processed/ objects"},
        "s3:PutObject": {"run manifests"},
    },
    Function.MARK_FAILED: {
        **OWN_LOGS,
        "events:PutEvents": {"default bus"},
        "dynamodb:GetItem": {"jobs table"},
        "dynamodb:UpdateItem": {"jobs table"},
        # FailShard: the failed shard's file items.
        "dynamodb:Query": {"jobs table"},
    },
    Function.THUMBNAIL: {
        **OWN_LOGS,
        "s3:GetObject": {"input objects"},
        "s3:ListBucket": {"input bucket"},
        "s3:PutObject": {"output thumbnails/ objects"},
        "s3:DeleteObject": {"output thumbnails/ objects"},
        **{action: {"thumbnail failures"} for action in FAILURE_QUEUE},
    },
    Function.COST_GUARD: {
        **OWN_LOGS,
        "ec2:DescribeInstances": {"*"},
        "ec2:StopInstances": {"pool instances", "launched instances"},
        "ec2:CreateTags": {"pool instances", "launched instances"},
        "ec2:DeleteTags": {"pool instances", "launched instances"},
        "dynamodb:Scan": {"workers table"},
        "dynamodb:UpdateItem": {"workers table"},
        "states:DescribeExecution": {"executions"},
    },
    Function.RECONCILE_ENDING: {
        **OWN_LOGS,
        "events:PutEvents": {"default bus"},
        "dynamodb:GetItem": {"jobs table"},
        "dynamodb:UpdateItem": {"jobs table", "workers table"},
        "dynamodb:Scan": {"workers table"},
        "ec2:StopInstances": {"pool instances", "launched instances"},
        **{action: {"ending failures"} for action in FAILURE_QUEUE},
    },
    Function.POOL_SCALER: {
        **OWN_LOGS,
        "ec2:DescribeInstances": {"*"},
        "ec2:DescribeInstanceTypes": {"*"},
        "ec2:RunInstances": {"launch template", *(f"{kind}/*" for kind in LAUNCHED_KINDS)},
        "ec2:CreateTags": {"instance/*", "volume/*"},
        "iam:PassRole": {"worker role"},
        "ec2:TerminateInstances": {"launched instances"},
        "dynamodb:Scan": {"workers table"},
        "dynamodb:PutItem": {"workers table"},
        "dynamodb:UpdateItem": {"workers table"},
        "dynamodb:DeleteItem": {"workers table"},
    },
    # darkroom/notify.py: the job and its NOTICE# items, the automatic share (and the
    # revoke of one whose email failed), the webhook's signing key. SES only when a
    # sender is configured (test_delivery_send_grant_is_only_the_configured_sender...).
    Function.NOTIFY: {
        **OWN_LOGS,
        "dynamodb:GetItem": {"jobs table"},
        "dynamodb:UpdateItem": {"jobs table", "shares table"},
        "dynamodb:PutItem": {"shares table"},
        "secretsmanager:GetSecretValue": {"webhook secret"},
    },
    Function.RECONCILE_SUBMISSIONS: {
        **OWN_LOGS,
        "dynamodb:Query": {"uploads listing index"},
        "dynamodb:BatchGetItem": {"jobs table"},
        "states:DescribeExecution": {"executions"},
        "states:StartExecution": {"state machine"},
        "sqs:ReceiveMessage": {"submission failures"},
        "sqs:DeleteMessage": {"submission failures"},
    },
}
# Instances the pool scaler launched: every grant on them (instance/*) carries this
# condition, beside the statement's own.
LAUNCHED = {
    "StringEquals": {
        f"aws:ResourceTag/{names.WORKER_POOL_TAG_KEY}": names.WORKER_POOL_TAG_VALUE,
        f"aws:ResourceTag/{names.WORKER_SCALED_TAG_KEY}": names.WORKER_SCALED_TAG_VALUE,
    }
}
# Statements that narrow their grant further by a condition; every other has none.
PUBLISH_JOB_EVENTS = {"StringEquals": {"events:source": names.JOB_EVENT_SOURCE}}
CONDITIONS: dict[tuple[str, str], dict[str, Any]] = {
    **{
        (function, "events:PutEvents"): PUBLISH_JOB_EVENTS
        for function in (
            Function.REGISTER_JOB,
            Function.START_WORKER,
            Function.MARK_DONE,
            Function.MARK_FAILED,
            Function.RECONCILE_ENDING,
        )
    },
    (Function.START_WORKER, "ec2:ModifyInstanceAttribute"): {
        "StringEquals": {"ec2:Attribute/InstanceType": list(names.WORKER_INSTANCE_TYPES)}
    },
    (Function.REGISTER_JOB, "s3:ListBucketVersions"): {
        "StringLike": {"s3:prefix": [f"{names.RAW_PREFIX}*"]}
    },
    (Function.MARK_DONE, "s3:ListBucket"): {
        "StringLike": {"s3:prefix": [f"{names.PROCESSED_PREFIX}*"]}
    },
    (Function.COST_GUARD, "ec2:CreateTags"): {
        "ForAllValues:StringEquals": {"aws:TagKeys": [names.UNLEASED_SINCE_TAG]}
    },
    (Function.COST_GUARD, "ec2:DeleteTags"): {
        "ForAllValues:StringEquals": {"aws:TagKeys": [names.UNLEASED_SINCE_TAG]}
    },
    (Function.POOL_SCALER, "ec2:CreateTags"): {
        "StringEquals": {"ec2:CreateAction": "RunInstances"}
    },
    (Function.POOL_SCALER, "iam:PassRole"): {
        "StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}
    },
}


def _merged(*conditions: dict[str, Any] | None) -> dict[str, Any] | None:
    """Conditions joined operator by operator (the launched-instance tags beside a
    statement's own keys)."""
    out: dict[str, Any] = {}
    for condition in conditions:
        for operator, keys in (condition or {}).items():
            out[operator] = {**out.get(operator, {}), **keys}
    return out or None


EXPECTED_ACTIONS: dict[str, set[str]] = {
    **{function: set(scoped) for function, scoped in SCOPED.items()},
    # darkroom/api/service.py through its adapters: presigned PUTs and the manifest PUT
    # (raw/), the upload listing, presigned GETs and the processed manifest, the three
    # tables, reprocessing, reading an execution's status and history, erasing a job
    # (its object versions and its items), and large files' multipart uploads (listed,
    # aborted; PutObject covers creating, parts and completing).
    Function.API: LOGS
    | TRACING
    | {
        "s3:PutObject",
        "s3:ListMultipartUploadParts",
        "s3:AbortMultipartUpload",
        "s3:ListBucketMultipartUploads",
        "s3:ListBucket",
        "s3:GetObject",
        # Presigned GETs of an original at its registered version (trace --originals).
        "s3:GetObjectVersion",
        "s3:ListBucketVersions",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "states:StartExecution",
        "states:DescribeExecution",
        "states:GetExecutionHistory",
        # Reprocessing and erasing write job statuses, published as job events.
        "events:PutEvents",
        # The share cookie key (read on the first password-protected share).
        "secretsmanager:GetSecretValue",
    },
}

WORKER_ACTIONS = {
    "s3:GetObject",  # raw/*, processed/* (packaging) and its own source asset
    "s3:GetObjectVersion",  # raw/*: the version RegisterJob recorded
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "logs:DescribeLogStreams",
    "ssm:UpdateInstanceInformation",
    "ssm:GetParameter",  # the bundle parameter only: which bundle to install at boot
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2:StopInstances",  # its own instance only, when idle
    "events:PutEvents",  # the PROCESSING status it writes, as a job event
}

# The only actions allowed on Resource "*", each because the service offers nothing
# narrower for it.
ANY_RESOURCE_ALLOWED: dict[str, str] = {
    "ec2:DescribeInstances": "EC2 Describe* actions support no resource-level permissions",
    "ec2:DescribeInstanceTypes": "EC2 Describe* actions support no resource-level permissions",
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


def token(value: dict[str, Any]) -> str:
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    return "${" + ".".join(value["Fn::GetAtt"]) + "}"


def scopes(synth: Synth, function: str) -> dict[str, set[str]]:
    """The names SCOPED uses -> the resource ARNs they stand for, rendered as text."""
    from cdk.thumbnails import THUMBNAIL_PREFIX

    stack, storage = synth.stack, synth.stack.storage

    def arn(construct: Any) -> str:
        return "${" + synth.logical_id(construct) + ".Arn}"

    _, resource = functions_by_name(synth.template)[function]
    own_logs = resource["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    in_account = "arn:${AWS::Partition}:{service}:${AWS::Region}:${AWS::AccountId}:"
    return {
        "own log group": {"${" + own_logs + ".Arn}"},
        "state machine": {"${" + synth.logical_id(stack.pipeline.state_machine) + "}"},
        "executions": {
            in_account.replace("{service}", "states") + f"execution:{names.state_machine_name()}:*"
        },
        "jobs table": {arn(storage.jobs)},
        "shares table": {arn(storage.shares)},
        "default bus": {in_account.replace("{service}", "events") + "event-bus/default"},
        "webhook secret": {"${" + synth.logical_id(stack.delivery.webhook_secret) + "}"},
        "workers table": {arn(storage.workers)},
        "raw bucket": {arn(storage.raw)},
        "raw/ objects": {arn(storage.raw) + "/" + names.RAW_PREFIX + "*"},
        "processed bucket": {arn(storage.processed)},
        "processed/ objects": {arn(storage.processed) + "/" + names.PROCESSED_PREFIX + "*"},
        "run manifests": {
            arn(storage.processed) + f"/{names.PROCESSED_PREFIX}*/{names.MANIFEST_NAME}"
        },
        "input bucket": {arn(storage.input)},
        "input objects": {arn(storage.input) + "/*"},
        "output thumbnails/ objects": {arn(storage.output) + "/" + THUMBNAIL_PREFIX + "*"},
        "submission failures": {arn(stack.pipeline.submission_failures)},
        "thumbnail failures": {arn(stack.thumbnails.failures)},
        "ending failures": {arn(stack.pipeline.ending_failures)},
        "uploads listing index": {arn(storage.uploads) + f"/index/{names.NEWEST_INDEX}"},
        "pool instances": {
            in_account.replace("{service}", "ec2") + "instance/${" + synth.logical_id(i) + "}"
            for i in stack.worker_pool.instances
        },
        "launched instances": {in_account.replace("{service}", "ec2") + "instance/*"},
        **{
            f"{kind}/*": {in_account.replace("{service}", "ec2") + f"{kind}/*"}
            for kind in LAUNCHED_KINDS
        },
        "launch template": {
            in_account.replace("{service}", "ec2")
            + "launch-template/${"
            + synth.logical_id(stack.worker_pool.launch_template)
            + "}"
        },
        "worker role": {"${" + synth.logical_id(stack.worker_pool.role) + ".Arn}"},
        "*": {"*"},
    }


@pytest.mark.parametrize("function", sorted(SCOPED))
def test_each_task_function_statement_is_scoped_to_its_own_resources(
    synth: Synth, function: str
) -> None:
    _, resource = functions_by_name(synth.template)[function]
    named = scopes(synth, function)
    granted: dict[str, set[str]] = {}
    for statement in statements_of_role(synth.template, role_logical_id(resource)):
        assert statement["Effect"] == "Allow"
        resources = {render(r, token) for r in as_list(statement["Resource"])}
        for action in as_list(statement["Action"]):
            granted.setdefault(action, set()).update(resources)
            own = CONDITIONS.get((function, action))
            if function == Function.POOL_SCALER and action == "ec2:RunInstances":
                if resources != named["launch template"]:
                    # Every resource of a launch only through the pool's template.
                    (condition,) = statement["Condition"]["ArnEquals"].values()
                    assert render(condition, token) in named["launch template"], action
                continue
            if resources == named["launched instances"]:
                own = _merged(own, LAUNCHED)
            assert statement.get("Condition") == own, action
    expected = {
        action: set().union(*(named[name] for name in scoped))
        for action, scoped in SCOPED[function].items()
    }
    assert granted == expected


def test_the_state_machine_invokes_only_its_task_functions(synth: Synth) -> None:
    stack = synth.stack
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
    # Packaging reads the renditions it zips, and nothing else of the bucket.
    processed = synth.logical_id(synth.stack.storage.processed)
    assert by_sid["ReadRenditions"]["Action"] == "s3:GetObject"
    assert by_sid["ReadRenditions"]["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [processed, "Arn"]}, f"/{names.PROCESSED_PREFIX}*"]]
    }
    # The studio's watermark assets, read only: nothing else beside the originals.
    raw = synth.logical_id(synth.stack.storage.raw)
    assert by_sid["ReadAssets"]["Action"] == "s3:GetObject"
    assert by_sid["ReadAssets"]["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [raw, "Arn"]}, f"/{names.ASSETS_PREFIX}*"]]
    }
    stops = [s for s in statements if "ec2:StopInstances" in as_list(s["Action"])]
    # Those the pool scaler launched: by both pool tags (their ids are not the stack's).
    launched = by_sid.pop("StopLaunchedWorker")
    assert launched["Condition"] == LAUNCHED
    stops.remove(launched)
    instances = synth.stack.worker_pool.instances
    assert len(stops) == len(instances)
    for statement, instance in zip(stops, instances, strict=True):
        # The instance it names is the instance calling, and no other.
        (resource,) = as_list(statement["Resource"])
        assert resource["Fn::Join"][1][-1] == {"Ref": synth.logical_id(instance)}
        assert statement["Condition"] == {"ArnEquals": {"ec2:SourceInstanceARN": resource}}
        assert as_list(statement["Action"]) == ["ec2:StopInstances"]
    profile = next(iter(synth.resources("AWS::IAM::InstanceProfile").values()))
    assert profile["Properties"]["Roles"] == [{"Ref": role_id}]


def test_no_role_carries_a_managed_policy(synth: Synth) -> None:
    for logical_id, role in synth.resources("AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], logical_id


def test_delivery_send_grant_is_only_the_configured_sender_through_its_identity(
    configured_synth: Synth,
) -> None:
    from tests.infra.conftest import CONFIGURED_CONTEXT

    synth = configured_synth
    _, resource = functions_by_name(synth.template, synth.stack.stack_name)[Function.NOTIFY]
    statements = statements_of_role(synth.template, role_logical_id(resource))
    (send,) = [s for s in statements if "ses:SendEmail" in as_list(s["Action"])]
    assert sorted(as_list(send["Action"])) == ["ses:SendEmail", "ses:SendRawEmail"]
    assert send["Condition"] == {
        "StringEquals": {"ses:FromAddress": CONFIGURED_CONTEXT["sender_email"]}
    }
    rendered = {render(r, token) for r in as_list(send["Resource"])}
    delivery = synth.stack.delivery
    identity = synth.logical_id(delivery.identity)
    assert any(identity in r for r in rendered), rendered
    assert any(
        r.endswith(":configuration-set/${" + synth.logical_id(delivery.configuration_set) + "}")
        for r in rendered
    ), rendered
    assert len(rendered) == 2
    (ses_identity,) = synth.resources("AWS::SES::EmailIdentity").values()
    assert ses_identity["Properties"]["EmailIdentity"] == "studio-b.example"
