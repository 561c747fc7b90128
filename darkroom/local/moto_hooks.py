"""Where the local cloud plugs into moto's server.

moto would run Lambda code in Docker and has no notion of an instance booting. These
hooks route Lambda invocations (from Step Functions, S3 notifications or any client) to
warm local sandboxes running the real handlers, and EC2 start/stop to the local
instances, each of which runs the worker program.
They also make moto's DynamoDB item operations atomic, as DynamoDB's are (transactions
rolled back item by item, not by copying tables), parse each distinct condition
expression once, keep its S3 version listings from copying every stored body, and bring
its Step Functions closer to AWS: SendTaskFailure keeps the worker's cause, StopExecution
ends an execution ABORTED with the caller's error and cause, each retry of a
.waitForTaskToken task gets a token of its own, a task token takes heartbeats from the
moment its task starts, and every execution that ends is reported as the "Step
Functions Execution Status Change" event EventBridge delivers. An EventBridge rule
whose target is a function (moto delivers only to queues, logs and buses) invokes it
asynchronously, as EventBridge does. Executions archived by
an earlier life of the cloud come back as ended executions of its state machine
(`restore_executions`).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from moto import backends as moto_backends
from moto.awslambda import models as lambda_models
from moto.core.responses import ActionResult, EmptyResult
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoResult
from moto.ec2.models import instances as ec2_instances
from moto.events import models as events_models
from moto.s3 import models as s3_models
from moto.s3 import notifications as s3_notifications
from moto.stepfunctions import responses as sfn_responses
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    ResourceCondition,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (  # noqa: E501
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.fail import state_fail
from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
from moto.stepfunctions.parser.backend.execution import (
    BaseExecutionWorkerCommunication,
    Execution,
)

from darkroom import names
from darkroom.local.lambda_spec import FunctionSpec, InvocationResult


class Host(Protocol):
    """What the hooks need from the running local cloud."""

    def invoke(self, spec: FunctionSpec, event: Any) -> InvocationResult: ...
    def invoke_async(self, spec: FunctionSpec, event: Any) -> None: ...
    def instance_started(self, instance_id: str) -> None: ...
    def instance_stopped(self, instance_id: str) -> None: ...
    def instance_launched(self, instance_id: str, tags: dict[str, str]) -> None: ...
    def instance_terminated(self, instance_id: str) -> None: ...
    def execution_ended(self, event: dict[str, Any]) -> None: ...
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
_original_run_instances = ec2_instances.InstanceBackend.run_instances


def _run_instances(self: Any, *args: Any, **kwargs: Any) -> Any:
    """RunInstances makes running instances without calling start: the host boots them
    (the pool scaler's launches)."""
    reservation = _original_run_instances(self, *args, **kwargs)
    if _host is not None:
        for instance in reservation.instances:
            tags = {t["key"]: t["value"] for t in instance.get_tags()}
            _host.instance_launched(instance.id, tags)
    return reservation


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
        _host.instance_terminated(self.id)
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


_original_transact_write_items = DynamoDBBackend.transact_write_items
_original_list_of_moto_modules = moto_backends.list_of_moto_modules


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """moto deep-copies every table a transaction names, to roll back on failure: a
    transaction on a job with 5,000 file items copied them all, 1.4 s a call. The items
    it can touch are known from the request, so only they are kept and put back."""
    tables = {}
    before: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for entry in transact_items:
        for op_type, op in entry.items():
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            tables[id(table)] = table
            key = _item_key(table, op_type, op)
            if key is not None:
                current = self.get_item(table.name, key)
                before.append((table.name, key, current and current.to_json()["Attributes"]))
    for table in tables.values():
        # copy.deepcopy looks for __deepcopy__ on the instance first: moto's whole-table
        # copy becomes the table itself, and its "rollback" a no-op.
        table.__deepcopy__ = lambda memo, table=table: table
    try:
        return _original_transact_write_items(self, transact_items)
    except Exception:
        for table_name, key, attributes in reversed(before):
            if attributes is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attributes)
        raise
    finally:
        for table in tables.values():
            del table.__deepcopy__


def _item_key(table: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any] | None:
    if op_type != "Put":
        key = op.get("Key")
        return dict(key) if isinstance(key, dict) else None
    item = op.get("Item") or {}
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    if not all(name in item for name in names):
        return None  # moto rejects the request before writing anything
    return {name: item[name] for name in names}


class _Unclosable:
    """A stored object's body, shared with a listing's copy of its key: the copy's
    disposal (moto disposes of a key when it is collected) must not close it."""

    def __init__(self, buffer: Any) -> None:
        self._buffer = buffer

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._buffer, name)


def _key_view(version: Any) -> Any:
    if not isinstance(version, s3_models.FakeKey):
        # A delete marker: the listing sets only its is_latest, and a deep copy would
        # copy the key it marks, body and all.
        return copy.copy(version)
    view = object.__new__(type(version))
    view.__dict__.update(version.__dict__)
    view.__dict__["_value_buffer"] = _Unclosable(version._value_buffer)
    view.multipart = None
    return view


class _CopyForS3Listings:
    """What moto's S3 models see as the copy module. ListObjectVersions deep-copies every
    version of every key in the bucket (to mark is_latest on the copies), bodies
    included, whatever the prefix: a job's listing copied the whole RAW bucket, and a
    test session's moto server grew by gigabytes of freed-but-kept heap. The copies here
    are keys of their own over the same bodies."""

    copy = staticmethod(copy.copy)

    @staticmethod
    def deepcopy(x: Any, memo: Any = None) -> Any:
        if isinstance(x, list):
            return [_key_view(v) for v in x]
        return copy.deepcopy(x, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


# Answers that are items and nothing else (DynamoDB's JSON wire form, as moto's items
# already hold it), and the operations that answer them.
_ITEM_ANSWERS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
_original_execute_result = DynamoResult.execute_result


def _execute_dynamo_result(self: Any, context: Any) -> Any:
    """moto's generic serializer walks every attribute of every item through botocore's
    shape model: a Query answering 1,000 file items took about 10 s of the server's CPU,
    more than any other call of a big job. Those answers are plain JSON already (items
    carry their type tags; no timestamp shape), so they are dumped as they are."""
    if context.operation_model.name not in _ITEM_ANSWERS:
        return _original_execute_result(self, context)
    try:
        body = json.dumps(self.result, separators=(",", ":"))
    except TypeError:  # a binary attribute (bytes): the serializer encodes it
        return _original_execute_result(self, context)
    return 200, {"Content-Type": "application/x-amz-json-1.0"}, body


_original_parse = ConditionExpressionParser.parse
# Parsed conditions by (expression, names, values); cleared when full, so a workload of
# ever-new values costs a parse each, as without the cache.
_PARSED: dict[tuple[str, str, str], tuple[Any, list[str], list[str]]] = {}
_PARSED_MAX = 4096


def _parse_once(self: ConditionExpressionParser) -> Any:
    """moto parses a condition expression for each item it is checked against, twice in
    a transaction (once to validate the request): registering 5,000 files parsed one
    expression 10,000 times, 40% of the registration's time. Its syntax tree is only
    read when evaluated, so one tree serves every item with the same expression, names
    and values."""
    try:
        key = (
            self.condition_expression or "",
            json.dumps(self.expression_attribute_names, sort_keys=True),
            json.dumps(self.expression_attribute_values, sort_keys=True),
        )
    except TypeError:  # not JSON (never from the wire): parsed as moto would
        return _original_parse(self)
    hit = _PARSED.get(key)
    if hit is None:
        op = _original_parse(self)  # an invalid expression raises, and is not kept
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = (op, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
        return op
    op, names_found, values_found = hit
    self.expr_attr_names_found.extend(names_found)
    self.expr_attr_values_found.extend(values_found)
    return op


_original_notify_heartbeat = CallbackEndpoint.notify_heartbeat


def _notify_heartbeat(self: CallbackEndpoint) -> bool:
    """Step Functions takes SendTaskHeartbeat for a task token from the moment its task
    starts; moto refused it (InvalidToken) until the task's Lambda had returned. A worker
    already up when AwaitWorker hands it the token heartbeats before that, took its task
    for over, and dropped its shard, which then waited out its heartbeat timeout for a
    second attempt. Until moto starts its heartbeat clock, a heartbeat to a task with no
    outcome yet is taken; the clock then starts afresh, as a heartbeat would restart it."""
    if self._heartbeat_endpoint is None:
        return self.get_outcome() is None
    return bool(_original_notify_heartbeat(self))


def _send_task_failure(self: Any) -> ActionResult:
    # moto's response drops the cause, so a worker's "why" (none of the files developed,
    # ...) never reached the job record; the parser's backend takes it as AWS does.
    self.stepfunction_backend.send_task_failure(
        self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
    )
    return EmptyResult()


def _get_execution_history(self: Any) -> ActionResult:
    # moto's response ignores reverseOrder, maxResults and nextToken: every event,
    # oldest first, in one page. AWS pages (at most 1,000 events, 100 by default) in the
    # order asked, and a reader of the newest events would otherwise see the oldest.
    history = dict(self.stepfunction_backend.get_execution_history(self._get_param("executionArn")))
    events = list(history.get("events", []))
    if self._get_param("reverseOrder"):
        events.reverse()
    size = min(int(self._get_param("maxResults") or 100), 1000)
    start = int(self._get_param("nextToken") or 0)
    history["events"] = events[start : start + size]
    if start + size < len(events):
        history["nextToken"] = str(start + size)
    else:
        history.pop("nextToken", None)
    return ActionResult(history)


def _stop_execution(self: Any) -> ActionResult:
    # moto's response drops the caller's error and cause; AWS records them on the
    # aborted execution (DescribeExecution, the ExecutionAborted event).
    execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
    stop_date = dt.datetime.now(dt.UTC)
    execution.stop(
        stop_date=stop_date, error=self._get_param("error"), cause=self._get_param("cause")
    )
    worker = getattr(execution, "exec_worker", None)
    if worker is not None:
        # A task waiting on a callback would notice only at its next heartbeat; in AWS
        # the execution ends at once, and a worker's late heartbeat finds it ended.
        for endpoint in list(worker.env.callback_pool_manager._pool.values()):
            endpoint.interrupt_all()
    return ActionResult({"stopDate": stop_date})


_original_set_error = Environment.set_error
_original_set_timed_out = Environment.set_timed_out
_original_reflect = BaseExecutionWorkerCommunication._reflect_execution_status


def _unless_stopped(transition: Callable[..., None]) -> Callable[..., None]:
    """In AWS an aborted execution stays aborted. moto's interpreter, woken in the state
    it was stopped in, reports what followed (a callback wait "timing out", a Next it may
    no longer set) as the execution's failure, which would replace the stop."""

    @functools.wraps(transition)
    def guarded(self: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(self._program_state, ProgramStopped):
            return
        transition(self, *args, **kwargs)

    return guarded


def _reflect_execution_status(self: Any) -> None:
    _original_reflect(self)
    state = self.execution.exec_worker.env.program_state()
    if isinstance(state, ProgramStopped):
        self.execution.error, self.execution.cause = state.error, state.cause
    if _host is not None:
        _host.execution_ended(status_change_event(self.execution))


def _epoch_ms(moment: Any) -> int | None:
    return int(moment.timestamp() * 1000) if isinstance(moment, dt.datetime) else None


def status_change_event(execution: Any) -> dict[str, Any]:
    """What EventBridge delivers when an execution's status changes (source aws.states)."""
    status = str(execution.status)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": names.EXECUTION_STATUS_CHANGE,
        "source": "aws.states",
        "account": execution.account_id,
        "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": execution.region_name,
        "resources": [execution.exec_arn],
        "detail": {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": status,
            "startDate": _epoch_ms(execution.start_date),
            "stopDate": _epoch_ms(execution.stop_date),
            "input": json.dumps(execution.input_data, separators=(",", ":")),
            "output": (
                json.dumps(execution.output, separators=(",", ":"))
                if status == "SUCCEEDED"
                else None
            ),
            "error": execution.error,
            "cause": execution.cause,
        },
    }


def invoke_event(function_name: str, event: Any, *, account_id: str, region: str) -> None:
    """An asynchronous invocation of a function as a service (EventBridge) makes it."""
    from moto.awslambda.utils import get_backend

    if _host is None:
        return
    fn = get_backend(account_id, region).get_function(function_name)
    _host.invoke_async(_spec(fn), event)


_original_evaluate_attempt = ExecutionState._evaluate_with_timeout
_original_send_to_targets = events_models.Rule.send_to_targets


def _send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
    """A rule's function targets get the event as EventBridge sends it (with an ISO
    time); its other targets go where moto sends them."""
    functions = [t for t in self.targets if t["Arn"].split(":")[2] == "lambda"]
    others = [t for t in self.targets if t not in functions]
    if functions and self.event_pattern.matches_event(original_event):
        event = dict(original_event)
        if isinstance(event.get("time"), int | float):
            moment = dt.datetime.fromtimestamp(event["time"], dt.UTC)
            event["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        event.pop("ingestion-time", None)
        for target in functions:
            invoke_event(
                target["Arn"].split(":")[6],
                event,
                account_id=self.account_id,
                region=self.region_name,
            )
    if others:
        rest = copy.copy(self)
        rest.targets = others
        _original_send_to_targets(rest, original_event, transform_input)


def _evaluate_attempt(self: Any, env: Any) -> None:
    # Step Functions gives every attempt of a .waitForTaskToken task a token of its own;
    # moto reuses the first attempt's. A worker holding a failed attempt's token must
    # find it dead (InvalidToken) and take up the retry's, not mistake one for the other.
    context = env.states.context_object
    if (
        isinstance(self, StateTaskServiceCallback)
        and self.resource.condition == ResourceCondition.WaitForTaskToken
        and context.context_object_data.get("State", {}).get("RetryCount", 0) > 0
    ):
        env.callback_pool_manager._pool.pop(context.context_object_data["Task"]["Token"], None)
        env.callback_pool_manager.add(context.update_task_token())
    _original_evaluate_attempt(self, env)


class _FailStateErrorName(ErrorName):
    """AWS lets a Fail state's ErrorPath resolve to any name, States.* included; moto's
    interpreter crashes the execution with a ValueError instead. Only the failure path of
    a failure path (MarkFailed itself failing) ever hits this, but then it must still fail
    with the real error rather than a moto artefact."""


class _NoCallbacks:
    """An ended execution's callbacks and map runs: none. moto looks for a task token or
    a map run in every execution, ended ones included (SendTaskFailure, DescribeMapRun)."""

    def __init__(self) -> None:
        self._pool: dict[str, Any] = {}

    def notify(self, callback_id: str, outcome: Any) -> bool:
        return False

    def heartbeat(self, callback_id: str) -> bool:
        return False

    def get(self, arn: str) -> None:
        return None

    def get_all(self) -> list[Any]:
        return []


class _EndedWorker:
    def __init__(self) -> None:
        self.env = self
        self.callback_pool_manager = self.map_run_record_pool_manager = _NoCallbacks()

    def stop(self, **_: Any) -> None:
        pass


class ArchivedExecution(Execution):
    """An execution that ended in an earlier life of the local cloud, as moto holds its
    own: listed (with status filters and pages), described, its history read, its name
    taken (ExecutionAlreadyExists, as AWS keeps a name), all by moto's own code. It only
    answers: nothing of it runs."""

    def __init__(
        self,
        machine: Any,
        described: dict[str, Any],
        events: list[Any],
        account_id: str,
        region: str,
    ) -> None:
        super().__init__(
            name=described["name"],
            sm_type=machine.sm_type,
            role_arn=machine.roleArn,
            exec_arn=described["executionArn"],
            account_id=account_id,
            region_name=region,
            state_machine=machine,
            start_date=described["startDate"],
            cloud_watch_logging_session=None,
            activity_store={},
            input_data=described.get("input") or "{}",
        )
        self.exec_status = ExecutionStatus(described["status"])
        self.stop_date = described.get("stopDate")
        output = described.get("output")
        self.output = json.loads(output) if output is not None else None
        self.error, self.cause = described.get("error"), described.get("cause")
        self.exec_worker = _EndedWorker()  # type: ignore[assignment]
        self._events = events

    def to_history_output(self) -> Any:
        return {"events": copy.deepcopy(self._events)}


def restore_executions(records: list[dict[str, Any]], *, account_id: str, region: str) -> int:
    """Put archived executions ({"execution": DescribeExecution's answer, "events": its
    history}) back into moto's Step Functions, beside their state machine's own; how many.
    Step Functions has no import, so this is the one way an AWS client can see them."""
    from moto.stepfunctions.responses import get_backend

    backend = get_backend(account_id, region)
    machines = {m.arn: m for m in backend.state_machines}
    restored = 0
    for record in records:
        described = record["execution"]
        machine = machines.get(described["stateMachineArn"])
        if machine is None or described["status"] == "RUNNING":
            continue
        # The parser's executions stand in for the plain backend's, whose type this is.
        archived = ArchivedExecution(machine, described, record["events"], account_id, region)
        machine.executions.append(archived)  # type: ignore[arg-type]
        restored += 1
    return restored


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
        ec2_instances.InstanceBackend.run_instances = _run_instances  # type: ignore[method-assign]
        events_models.Rule.send_to_targets = _send_to_targets  # type: ignore[method-assign]
        sfn_responses.StepFunctionResponse.send_task_failure = _send_task_failure  # type: ignore[method-assign]
        sfn_responses.StepFunctionResponse.stop_execution = _stop_execution  # type: ignore[method-assign]
        sfn_responses.StepFunctionResponse.get_execution_history = _get_execution_history  # type: ignore[method-assign]
        Environment.set_error = _unless_stopped(_original_set_error)  # type: ignore[method-assign]
        Environment.set_timed_out = _unless_stopped(_original_set_timed_out)  # type: ignore[method-assign]
        BaseExecutionWorkerCommunication._reflect_execution_status = _reflect_execution_status  # type: ignore[method-assign]
        ExecutionState._evaluate_with_timeout = _evaluate_attempt  # type: ignore[method-assign]
        state_fail.CustomErrorName = _FailStateErrorName  # type: ignore[misc,assignment]
        DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
        DynamoResult.execute_result = _execute_dynamo_result  # type: ignore[method-assign]
        ConditionExpressionParser.parse = _parse_once  # type: ignore[method-assign]
        CallbackEndpoint.notify_heartbeat = _notify_heartbeat  # type: ignore[method-assign]
        s3_models.copy = _CopyForS3Listings()  # type: ignore[assignment]
        # Listed afresh (a stat of every moto package) on every request the server
        # routes; the list never changes while it runs.
        moto_backends.list_of_moto_modules = functools.cache(
            lambda: tuple(_original_list_of_moto_modules())
        )
        for name in _DDB_ITEM_OPERATIONS:
            setattr(DynamoDBBackend, name, _atomic(getattr(DynamoDBBackend, name)))
        _installed = True


def uninstall() -> None:
    global _host
    with _lock:
        _host = None
