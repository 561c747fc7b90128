"""The process inside a sandbox of the local Lambda runtime (darkroom.local.lambda_sandbox).

Started as ``python -m darkroom.local.lambda_bootstrap`` with the function's environment.
It imports the handler named by ``_HANDLER`` once (the cold start), then serves
invocations one at a time until its input closes, as the AWS Python runtime does.

Protocol, one JSON object per line:

- child -> parent, once after init: ``{"type": "ready", "init_ms": ...}`` or
  ``{"type": "init_error", "error": {...}}`` (then the child exits, so the next invocation
  retries the import, as AWS resets a sandbox whose init failed);
- parent -> child: ``{"id", "event", "deadline_ms", "invoked_function_arn"}``;
- child -> parent: ``{"type": "result", "id", "payload" | "payload_b64", "duration_ms"}``
  or ``{"type": "error", "id", "error", "duration_ms"}``.

The protocol owns the original stdin/stdout file descriptors, duplicated away before any
user code runs; fd 0 then reads /dev/null and fd 1 writes to fd 2, so whatever the handler
prints or logs (Python, C extensions, subprocesses) lands in the log stream and can never
corrupt a response. Around each invocation the child writes AWS's START / END / REPORT
lines to the log stream; the parent uses the REPORT line to know it has read the whole log.

Deliberately stdlib-only and small (the call recorder too, until enabled): it is imported
before the handler, so anything it imports would be charged to every cold start.
"""

from __future__ import annotations

import base64
import contextlib
import decimal
import faulthandler
import importlib
import json
import logging
import math
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, BinaryIO

from darkroom.local import call_recorder

Handler = Callable[[Any, Any], Any]

_request_id = ""  # read by the logging filter, as AWS's runtime stamps log records


class LambdaContext:
    """What AWS passes as ``context``; attribute names and types follow the AWS runtime."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_function_arn: str) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = invoked_function_arn
        # A string, not an int: the AWS runtime reads it from the environment unconverted,
        # and handler code that forgets int() should fail here as it would in AWS.
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        # What the AWS runtime gives a function invoked by a service, not a mobile SDK.
        self.tenant_id = None
        self.client_context = None
        self.identity = SimpleNamespace(cognito_identity_id=None, cognito_identity_pool_id=None)
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, msg: Any) -> None:
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id!r}, "
            f"function_name={self.function_name!r}, "
            f"invoked_function_arn={self.invoked_function_arn!r})"
        )


class Fault(Exception):
    """An error of the runtime rather than of the handler, with AWS's ``Runtime.*`` type."""

    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack or []


def load_handler(name: str) -> Handler:
    """Resolve "package.module.function" the way the AWS Python runtime does."""
    try:
        module_name, function_name = name.rsplit(".", 1)
    except ValueError as exc:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{name}': {exc}") from None
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise Fault(
            "Runtime.BuiltInModuleConflict",
            f"Cannot use built-in module {module_name} as a handler module",
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise Fault(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from None
    except SyntaxError as exc:
        raise Fault(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{module_name}': {exc}",
            [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}'],
        ) from None
    handler = getattr(module, function_name, None)
    if handler is None:
        raise Fault(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return handler


def error_from_exception(exc: BaseException, request_id: str = "") -> dict[str, Any]:
    """The error document AWS returns for an unhandled exception (type is the bare class name)."""
    if isinstance(exc, Fault):
        return _error(exc.error_type, exc.message, exc.stack, request_id)
    frames = traceback.extract_tb(exc.__traceback__)
    # The runtime's own frames are noise to the function's author; AWS drops them too.
    while frames and frames[0].filename == __file__:
        frames.pop(0)
    return _error(type(exc).__name__, str(exc), traceback.format_list(frames), request_id)


def _error(error_type: str, message: str, stack: list[str], request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack,
    }


def _json_default(value: Any) -> Any:
    # boto3 hands DynamoDB numbers back as Decimal and the AWS runtime serialises them,
    # so handlers returning items straight from a table must work here too.
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return math.nan
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def marshal(result: Any) -> dict[str, str]:
    if isinstance(result, bytes):
        # AWS passes bytes through untouched; base64 only carries them over the JSON channel.
        return {"payload_b64": base64.b64encode(result).decode("ascii")}
    try:
        return {"payload": json.dumps(result, default=_json_default)}
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise Fault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from None


def _log_error(error: dict[str, Any]) -> None:
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(line.rstrip("\n") for line in error["stackTrace"])
    _write_log("\n".join(lines) + "\n")


def _write_log(text: str) -> None:
    # Straight to fd 2: a handler that swapped sys.stderr must not swallow the markers.
    data = text.encode("utf-8", "replace")
    while data:
        data = data[os.write(2, data) :]


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        # A handler may have replaced or closed them; then there is nothing to flush.
        with contextlib.suppress(Exception):
            stream.flush()


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _request_id
        return True


def _setup_logging() -> None:
    """Give the root logger the handler and text format the AWS Python runtime installs."""
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)


def _claim_protocol_channel() -> tuple[BinaryIO, int]:
    # os.dup makes non-inheritable descriptors, so subprocesses of the handler never see
    # the protocol channel either.
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return os.fdopen(proto_in, "rb"), proto_out


def _send(fd: int, message: dict[str, Any]) -> None:
    data = json.dumps(message).encode() + b"\n"
    while data:
        data = data[os.write(fd, data) :]


def _max_memory_mb() -> int:
    # Linux keeps ru_maxrss across fork and exec: a sandbox started by a large process
    # (the test session, a benchmark) would report that process's peak as its own.
    # VmHWM is this process image's own high-water mark.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return int(peak / (1024 * 1024 if sys.platform == "darwin" else 1024))


def _invoke(handler: Handler, request: dict[str, Any], init_ms: float | None) -> dict[str, Any]:
    global _request_id
    request_id: str = request["id"]
    _request_id = request_id
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
    _write_log(f"START RequestId: {request_id} Version: {version}\n")
    response: dict[str, Any] = {"id": request_id}
    started = time.perf_counter()
    try:
        context = LambdaContext(
            request_id, int(request["deadline_ms"]), str(request["invoked_function_arn"])
        )
        response.update(marshal(handler(request["event"], context)))
        response["type"] = "result"
    except Exception as exc:
        # Exception, not BaseException: as in AWS, sys.exit() in a handler ends the process.
        response["type"] = "error"
        response["error"] = error_from_exception(exc, request_id)
    duration_ms = (time.perf_counter() - started) * 1000
    response["duration_ms"] = duration_ms
    # The local cloud fails the invocation as Lambda would when this is past its size.
    response["max_memory_mb"] = _max_memory_mb()
    _flush_streams()
    if response["type"] == "error":
        _log_error(response["error"])
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {math.ceil(duration_ms)} ms\t"
        f"Memory Size: {os.environ.get('AWS_LAMBDA_FUNCTION_MEMORY_SIZE')} MB\t"
        f"Max Memory Used: {_max_memory_mb()} MB"
    )
    if init_ms is not None:
        report += f"\tInit Duration: {init_ms:.2f} ms"
    _write_log(f"END RequestId: {request_id}\n{report}\n")
    _request_id = ""
    return response


def main() -> int:
    requests, proto_out = _claim_protocol_channel()
    faulthandler.enable()  # a segfaulting extension leaves a Python traceback in the log
    _setup_logging()
    # Before the handler's import creates any client; the local cloud's IAM test reads it.
    call_recorder.install_from_environment(os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""))
    started = time.perf_counter()
    try:
        handler = load_handler(os.environ.get("_HANDLER", ""))
    except Exception as exc:
        error = error_from_exception(exc)
        _flush_streams()
        _log_error(error)
        _send(proto_out, {"type": "init_error", "error": error})
        return 1
    init_ms: float | None = (time.perf_counter() - started) * 1000
    _send(proto_out, {"type": "ready", "init_ms": init_ms})
    for line in requests:
        _send(proto_out, _invoke(handler, json.loads(line), init_ms))
        init_ms = None  # AWS reports Init Duration on the cold start's REPORT line only
    return 0


if __name__ == "__main__":
    sys.exit(main())
