"""Recorded AWS calls (darkroom.local.call_recorder) as the IAM requests AWS authorises.

Mostly `service:Operation` on the resource the parameters name; the exceptions are the
ones the service authorisation reference lists (HeadObject is s3:GetObject, a versioned
read is s3:GetObjectVersion, a copy is a read and a write, a transaction is each of its
item actions, a task callback is authorised against the state machine that issued the
token...). A call made with instance-profile credentials carries ec2:SourceInstanceARN.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from tests.infra.iam_policy import Request

# The IAM prefix where it differs from the endpoint prefix the recorder reports.
IAM_PREFIX = {"monitoring": "cloudwatch"}
_S3_WRITES = {"CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "PutObject"}
_S3_OBJECT_VERSIONED = {
    "GetObject": ("s3:GetObject", "s3:GetObjectVersion"),
    "HeadObject": ("s3:GetObject", "s3:GetObjectVersion"),
    "DeleteObject": ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    "GetObjectTagging": ("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
}
_S3_BUCKET_LISTS = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
}
_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}
_EXECUTION_OPS = {"DescribeExecution", "StopExecution", "GetExecutionHistory", "RedriveExecution"}
_TASK_CALLBACKS = {"SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"}


@dataclass(frozen=True)
class Account:
    """Where the recorded calls went, and what the template says of the pool instances."""

    region: str
    account: str
    state_machine_arn: str  # what task callbacks are authorised against
    instance_tags: Mapping[str, Mapping[str, str]]  # instance id -> its tags

    def instance_arn(self, instance_id: str) -> str:
        return f"arn:aws:ec2:{self.region}:{self.account}:instance/{instance_id}"


def requests_for(call: Mapping[str, Any], where: Account) -> Iterator[Request]:
    """The IAM requests one recorded call needs allowed."""
    service = IAM_PREFIX.get(call["service"], call["service"])
    context: dict[str, Any] = {}
    if call.get("instance_id"):
        context["ec2:SourceInstanceARN"] = where.instance_arn(call["instance_id"])
    mapper = {
        "s3": _s3,
        "dynamodb": _dynamodb,
        "states": _states,
        "ec2": _ec2,
        "events": _events,
    }.get(service)
    if mapper is not None:
        for action, resource, extra in mapper(call["operation"], call["params"], where):
            yield Request(action, resource, {**context, **extra})
        return
    yield Request(
        f"{service}:{call['operation']}", _generic_resource(service, call, where), context
    )


Triple = tuple[str, str, dict[str, Any]]


def _s3(operation: str, params: Mapping[str, Any], where: Account) -> Iterator[Triple]:
    bucket = params.get("Bucket", "")

    def obj(key: str) -> str:
        return f"arn:aws:s3:::{bucket}/{key}"

    if operation in _S3_BUCKET_LISTS:
        yield (
            _S3_BUCKET_LISTS[operation],
            f"arn:aws:s3:::{bucket}",
            {"s3:prefix": params.get("Prefix", "")},
        )
    elif operation in _S3_OBJECT_VERSIONED:
        plain, versioned = _S3_OBJECT_VERSIONED[operation]
        yield (versioned if params.get("VersionId") else plain), obj(params["Key"]), {}
    elif operation in _S3_WRITES:
        yield "s3:PutObject", obj(params["Key"]), {}
    elif operation == "ListParts":
        yield "s3:ListMultipartUploadParts", obj(params["Key"]), {}
    elif operation == "DeleteObjects":
        for item in params.get("DeleteKeys", []):
            action = "s3:DeleteObjectVersion" if item.get("VersionId") else "s3:DeleteObject"
            yield action, obj(item["Key"]), {}
    elif operation in ("CopyObject", "UploadPartCopy"):
        source = params["CopySource"]
        if isinstance(source, str):
            path, _, query = unquote(source).lstrip("/").partition("?versionId=")
            source = {"Bucket": path.split("/", 1)[0], "Key": path.split("/", 1)[1]}
            if query:
                source["VersionId"] = query
        read = "s3:GetObjectVersion" if source.get("VersionId") else "s3:GetObject"
        yield read, f"arn:aws:s3:::{source['Bucket']}/{source['Key']}", {}
        yield "s3:PutObject", obj(params["Key"]), {}
    elif "Key" in params:
        yield f"s3:{operation}", obj(params["Key"]), {}
    else:
        yield f"s3:{operation}", f"arn:aws:s3:::{bucket}", {}


def _table_arn(where: Account, table: str, index: str | None = None) -> str:
    arn = f"arn:aws:dynamodb:{where.region}:{where.account}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def _dynamodb(operation: str, params: Mapping[str, Any], where: Account) -> Iterator[Triple]:
    if "RequestItems" in params:  # BatchGetItem / BatchWriteItem: the batch action per table
        for table in params["RequestItems"]:
            yield f"dynamodb:{operation}", _table_arn(where, table), {}
    elif "TransactItems" in params:
        for kind, table in params["TransactItems"]:
            yield _TRANSACT_ACTIONS[kind], _table_arn(where, table), {}
    else:
        arn = _table_arn(where, params["TableName"], params.get("IndexName"))
        yield f"dynamodb:{operation}", arn, {}


def _states(operation: str, params: Mapping[str, Any], where: Account) -> Iterator[Triple]:
    if operation in _TASK_CALLBACKS:
        # The token is opaque; AWS checks the state machine that issued it (the stack has one).
        yield f"states:{operation}", where.state_machine_arn, {}
    elif operation in _EXECUTION_OPS:
        yield f"states:{operation}", params["executionArn"], {}
    elif "stateMachineArn" in params:
        yield f"states:{operation}", params["stateMachineArn"], {}
    else:
        yield f"states:{operation}", "*", {}


def _ec2(operation: str, params: Mapping[str, Any], where: Account) -> Iterator[Triple]:
    instances = params.get("InstanceIds") or params.get("Resources") or []
    if operation.startswith("Describe") or not instances:
        yield f"ec2:{operation}", "*", {}
        return
    extra: dict[str, Any] = {}
    if "Tags" in params:
        extra["aws:TagKeys"] = [t["Key"] for t in params["Tags"]]
    for instance_id in instances:
        tags = where.instance_tags.get(instance_id, {})
        keys = {f"{scope}:ResourceTag/{k}": v for k, v in tags.items() for scope in ("aws", "ec2")}
        yield f"ec2:{operation}", where.instance_arn(instance_id), {**keys, **extra}


def _events(operation: str, params: Mapping[str, Any], where: Account) -> Iterator[Triple]:
    """PutEvents is authorised per entry, on its bus, with its source as events:source."""
    if operation != "PutEvents":
        yield f"events:{operation}", "*", {}
        return
    for entry in params.get("Entries", []):
        bus = entry.get("EventBusName") or "default"
        arn = (
            bus
            if bus.startswith("arn:")
            else (f"arn:aws:events:{where.region}:{where.account}:event-bus/{bus}")
        )
        yield "events:PutEvents", arn, {"events:source": entry.get("Source", "")}


def _generic_resource(service: str, call: Mapping[str, Any], where: Account) -> str:
    params = call["params"]
    r, a = where.region, where.account
    if service == "sqs" and ("QueueUrl" in params or "QueueName" in params):
        name = params.get("QueueName") or params["QueueUrl"].rstrip("/").rsplit("/", 1)[-1]
        return f"arn:aws:sqs:{r}:{a}:{name}"
    if service == "lambda" and "FunctionName" in params:
        name = params["FunctionName"]
        return name if name.startswith("arn:") else f"arn:aws:lambda:{r}:{a}:function:{name}"
    if service == "secretsmanager" and str(params.get("SecretId", "")).startswith("arn:"):
        return str(params["SecretId"])
    return "*"
