"""One invocation on a sandbox it has to itself, and what Lambda reports when the
sandbox times out, crashes or fails to initialise (each of which costs the sandbox)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import signal
import threading
import time
from enum import Enum
from typing import Any

from darkroom.local.lambda_logs import InvocationLog, platform_report
from darkroom.local.lambda_sandbox import LOG_DRAIN_SECONDS, ChannelClosedError, Sandbox
from darkroom.local.lambda_spec import InvocationResult, error_payload


class Kill(Enum):
    """Where an injected fault kills the sandbox's process (SIGKILL to its group)."""

    BEFORE_HANDLER = "before_handler"  # as the event is delivered: no work done
    AFTER_HANDLER = "after_handler"  # once the handler has answered: work done, answer lost


# How often the memory watch reads the sandbox's resident size. A spike between two reads
# is still caught: the handler's answer carries its process's peak (VmHWM).
MEMORY_POLL_SECONDS = 0.05


class MemoryWatch:
    """Lambda's memory limit: the sandbox's resident memory, read while it works; past the
    function's size the sandbox is killed, as AWS's cgroup kills an environment (the
    process group's leader is measured: handlers here spawn no processes)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._limit_kb = sandbox.spec.memory_mb * 1024
        self._done = threading.Event()
        self.exceeded = False
        self._thread = threading.Thread(
            target=self._watch, name=f"lambda-memory-{sandbox.pid}", daemon=True
        )

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(MEMORY_POLL_SECONDS):
            resident = _resident_kb(self._sandbox.pid)
            if resident is not None and resident > self._limit_kb:
                self.exceeded = True
                self._sandbox.signal_group(signal.SIGKILL)
                return


def _resident_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def run(
    sandbox: Sandbox,
    log: InvocationLog,
    event: Any,
    request_id: str,
    *,
    cold: bool,
    init_timeout: float,
    kill: Kill | None = None,
) -> tuple[InvocationResult, bool]:
    """The invocation's result, and whether the sandbox may serve another one."""
    with MemoryWatch(sandbox) as memory:
        return _run(
            sandbox, log, event, request_id, memory, cold=cold, init_timeout=init_timeout, kill=kill
        )


def _run(
    sandbox: Sandbox,
    log: InvocationLog,
    event: Any,
    request_id: str,
    memory: MemoryWatch,
    *,
    cold: bool,
    init_timeout: float,
    kill: Kill | None = None,
) -> tuple[InvocationResult, bool]:
    spec = sandbox.spec

    def ended(started: float) -> InvocationResult:
        if memory.exceeded:
            return _out_of_memory(sandbox, log, request_id, started)
        return _crashed(sandbox, log, request_id, started)

    init_ms: float | None = None
    if cold:
        started = time.monotonic()
        # As in AWS, an init that overruns its limit still gets the function timeout.
        init_limit = max(init_timeout, spec.timeout_seconds)
        try:
            ready = sandbox.receive(started + init_limit)
        except ChannelClosedError:
            return ended(started), False
        if ready is None:
            return _timed_out(sandbox, log, request_id, init_limit), False
        if ready["type"] == "init_error":
            return _init_failed(sandbox, log, request_id, ready["error"]), False
        init_ms = float(ready["init_ms"])
    deadline_ms = int(time.time() * 1000 + spec.timeout_seconds * 1000)
    started = time.monotonic()
    if kill is Kill.BEFORE_HANDLER:
        sandbox.signal_group(signal.SIGKILL)
    try:
        sandbox.send(
            {
                "id": request_id,
                "event": event,
                "deadline_ms": deadline_ms,
                "invoked_function_arn": spec.arn,
            }
        )
        response = sandbox.receive(started + spec.timeout_seconds)
    except ChannelClosedError:
        return ended(started), False
    if response is None:
        return _timed_out(sandbox, log, request_id, spec.timeout_seconds), False
    if kill is Kill.AFTER_HANDLER:
        sandbox.signal_group(signal.SIGKILL)
        return _crashed(sandbox, log, request_id, started), False
    if int(response.get("max_memory_mb") or 0) > spec.memory_mb:
        # A peak between two of the watch's reads: AWS would have killed it there.
        memory.exceeded = True
        return ended(started), False
    log.complete.wait(LOG_DRAIN_SECONDS)
    sandbox.end_capture()
    if response["type"] == "error":
        payload = json.dumps(response["error"]).encode()
        function_error: str | None = "Unhandled"
    elif "payload_b64" in response:
        payload, function_error = base64.b64decode(response["payload_b64"]), None
    else:
        payload, function_error = response["payload"].encode(), None
    result = InvocationResult(
        payload=payload,
        function_error=function_error,
        log_tail=log.tail(),
        duration_ms=float(response["duration_ms"]),
        request_id=request_id,
        init_duration_ms=init_ms,
    )
    return result, True


def _platform_log(
    sandbox: Sandbox,
    log: InvocationLog,
    text: str,
    request_id: str,
    duration_ms: float,
    status: str,
) -> None:
    report = platform_report(text, request_id, duration_ms, sandbox.spec.memory_mb, status)
    sandbox.drain_logs()
    sandbox.end_capture()
    sandbox.sink.write(report)
    log.feed(report)


def _timed_out(
    sandbox: Sandbox, log: InvocationLog, request_id: str, limit: float
) -> InvocationResult:
    sandbox.signal_group(signal.SIGKILL)
    sandbox.exit_code()
    message = f"{request_id} Task timed out after {limit:.2f} seconds"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    _platform_log(sandbox, log, f"{stamp} {message}\n", request_id, limit * 1000, "Status: timeout")
    return InvocationResult(
        payload=error_payload("Sandbox.Timedout", message, request_id),
        function_error="Unhandled",
        log_tail=log.tail(),
        duration_ms=limit * 1000,
        request_id=request_id,
    )


def _crashed(
    sandbox: Sandbox, log: InvocationLog, request_id: str, started: float
) -> InvocationResult:
    code = sandbox.exit_code()
    duration_ms = (time.monotonic() - started) * 1000
    message = f"RequestId: {request_id} Error: Runtime exited with error: {_exit_reason(code)}"
    _platform_log(
        sandbox,
        log,
        f"{message}\nRuntime.ExitError\n",
        request_id,
        duration_ms,
        "Status: error\tError Type: Runtime.ExitError",
    )
    return InvocationResult(
        payload=error_payload("Runtime.ExitError", message, request_id),
        function_error="Unhandled",
        log_tail=log.tail(),
        duration_ms=duration_ms,
        request_id=request_id,
    )


def _out_of_memory(
    sandbox: Sandbox, log: InvocationLog, request_id: str, started: float
) -> InvocationResult:
    """What Lambda reports for an environment killed for its memory."""
    sandbox.signal_group(signal.SIGKILL)
    sandbox.exit_code()
    duration_ms = (time.monotonic() - started) * 1000
    message = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
    _platform_log(
        sandbox,
        log,
        f"{message}\nRuntime.OutOfMemory\n",
        request_id,
        duration_ms,
        "Status: error\tError Type: Runtime.OutOfMemory",
    )
    return InvocationResult(
        payload=error_payload("Runtime.OutOfMemory", message, request_id),
        function_error="Unhandled",
        log_tail=log.tail(),
        duration_ms=duration_ms,
        request_id=request_id,
    )


def _init_failed(
    sandbox: Sandbox, log: InvocationLog, request_id: str, error: dict[str, Any]
) -> InvocationResult:
    sandbox.exit_code()
    _platform_log(
        sandbox,
        log,
        "",
        request_id,
        0.0,
        f"Status: error\tError Type: {error.get('errorType', 'Runtime.Unknown')}",
    )
    return InvocationResult(
        payload=json.dumps({**error, "requestId": request_id}).encode(),
        function_error="Unhandled",
        log_tail=log.tail(),
        duration_ms=0.0,
        request_id=request_id,
    )


def _exit_reason(code: int) -> str:
    """Phrase an exit the way Lambda's Runtime.ExitError does."""
    if code >= 0:
        return f"exit status {code}"
    try:
        name = signal.strsignal(-code) or f"signal {-code}"
    except ValueError:
        name = f"signal {-code}"
    return f"signal: {name.lower()}"
