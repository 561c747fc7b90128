"""Where the local cloud plugs into moto's server.

moto would run Lambda code in Docker and has no notion of an instance booting. These
hooks route Lambda invocations (from Step Functions, S3 notifications or any client) to
warm local sandboxes running the real handlers, and EC2 start/stop to the local
instances, each of which runs the worker program.
They also make moto's DynamoDB item operations atomic, as DynamoDB's are, and keep the
cause a worker gives SendTaskFailure.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from typing import Any, Protocol

from moto.awslambda import models as lambda_models
from moto.core.responses import ActionResult, EmptyResult
from moto.dynamodb.models import DynamoDBBackend
from moto.ec2.models import instances as ec2_instances
from moto.s3 import notifications as s3_notifications
from moto.stepfunctions import responses as sfn_responses
from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
from moto.stepfunctions.parser.asl.component.state.fail import state_fail

from darkroom.local.lambda_spec import FunctionSpec, InvocationResult


class Host(Protocol):
    """What the hooks need from the running local cloud."""

    def invoke(self, spec: FunctionSpec, event: Any) -> InvocationResult: ...
    def invoke_async(self, spec: FunctionSpec, event: Any) -> None: ...
    def instance_started(self, instance_id: str) -> None: ...
    def instance_stopped(self, instance_id: str) -> None: ...
    def spec_for(
        self, name: str, handler: str, env: dict[str, str], timeout: float, memory_mb: int
    ) -> FunctionSpec: ...


_host: Host | None = None
_installed = False
_lock = threading.Lock()


def _spec(fn: Any) -> FunctionSpec:
    assert _host is not None
    return _host.spec_for(
        fn.function_name,
        fn.handler,
        dict(fn.environment_vars or {}),
        float(fn.timeout or 3),
        int(fn.memory_size or 128),
    )


def _raw_event(body: str | bytes | None) -> Any:
    return json.loads(body or "{}")


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    if _host is None:
        return (
            json.dumps({"errorType": "ServiceUnavailable", "errorMessage": "local cloud down"}),
            True,
            "",
        )
    # moto's LambdaFunction.invoke has already decoded the request body.
    result = _host.invoke(_spec(self), {} if event is None else event)
    return result.payload.decode(), result.function_error is not None, result.log_tail


_original_invoke = lambda_models.LambdaFunction.invoke


def _invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
    if _host is not None and request_headers.get("x-amz-invocation-type") == "Event":
        _host.invoke_async(_spec(self), _raw_event(body))
        return b""
    return _original_invoke(self, body, request_headers, response_headers)


def _invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
    # S3 invokes asynchronously in AWS: the PUT returns before the function runs.
    from moto.awslambda.utils import get_backend

    if _host is None:
        return
    fn = get_backend(account_id, region_name).get_function(fn_arn)
    _host.invoke_async(_spec(fn), event_body)


_original_start = ec2_instances.Instance.start
_original_stop = ec2_instances.Instance.stop
_original_terminate = ec2_instances.Instance.terminate


def _start(self: Any) -> Any:
    previous = _original_start(self)
    if _host is not None and previous.name != "running":
        _host.instance_started(self.id)
    return previous


def _stop(self: Any) -> Any:
    previous = _original_stop(self)
    if _host is not None:
        _host.instance_stopped(self.id)
    return previous


def _terminate(self: Any) -> Any:
    previous = _original_terminate(self)
    if _host is not None:
        _host.instance_stopped(self.id)
    return previous


# moto's server is threaded and its update_item first stores a key-only item, then
# applies the update to it in place: a concurrent GetItem could read a job record with no
# status, or half of a transition. One lock around every item operation gives each
# request the all-or-nothing effect DynamoDB guarantees (throughput is not the point).
_DDB_ITEM_OPERATIONS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
)
_ddb_lock = threading.RLock()


def _atomic(operation: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(operation)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _ddb_lock:
            return operation(*args, **kwargs)

    return locked


def _send_task_failure(self: Any) -> ActionResult:
    # moto's response drops the cause, so a worker's "why" (none of the files developed,
    # ...) never reached the job record; the parser's backend takes it as AWS does.
    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return EmptyResult()


class _FailStateErrorName(ErrorName):
    """AWS lets a Fail state's ErrorPath resolve to any name, States.* included; moto's
    interpreter crashes the execution with a ValueError instead. Only the failure path of
    a failure path (MarkFailed itself failing) ever hits this, but then it must still fail
    with the real error rather than a moto artefact."""


def install(host: Host) -> None:
    global _host, _installed
    with _lock:
        _host = host
        if _installed:
            return
        lambda_models.LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
        lambda_models.LambdaFunction.invoke = _invoke  # type: ignore[method-assign]
        s3_notifications._invoke_awslambda = _invoke_awslambda
        ec2_instances.Instance.start = _start  # type: ignore[method-assign]
        ec2_instances.Instance.stop = _stop  # type: ignore[method-assign]
        ec2_instances.Instance.terminate = _terminate  # type: ignore[method-assign]
        sfn_responses.StepFunctionResponse.send_task_failure = _send_task_failure  # type: ignore[method-assign]
        state_fail.CustomErrorName = _FailStateErrorName  # type: ignore[misc,assignment]
        for name in _DDB_ITEM_OPERATIONS:
            setattr(DynamoDBBackend, name, _atomic(getattr(DynamoDBBackend, name)))
        _installed = True


def uninstall() -> None:
    global _host
    with _lock:
        _host = None
