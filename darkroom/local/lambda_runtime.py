"""Lambda functions of the local cloud: each function's real handler in warm sandboxes.

moto would run function code in Docker. Here every execution environment is a sandbox, a
Python process of its own (darkroom.local.lambda_sandbox) started with exactly the
function's environment, kept warm between invocations and used by one invocation at a
time. Like Lambda, concurrent invocations scale out to more sandboxes, a timeout or a
crash costs the sandbox, and the next invocation cold-starts a fresh one.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import json
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darkroom.local import lambda_invocation
from darkroom.local.lambda_invocation import Kill
from darkroom.local.lambda_logs import InvocationLog, LogSink
from darkroom.local.lambda_sandbox import Sandbox, dispose, stop_all
from darkroom.local.lambda_spec import (
    FunctionSpec,
    InvocationResult,
    RuntimeClosedError,
    UnknownFunctionError,
)

log = logging.getLogger(__name__)

ASYNC_RETRY_DELAYS = (1.0, 2.0)  # AWS retries a failed Event invocation twice
INIT_TIMEOUT_SECONDS = 10.0  # AWS's init phase limit


@dataclass
class _Function:
    spec: FunctionSpec
    sink: LogSink
    generation: int = 0
    idle: list[Sandbox] = field(default_factory=list)  # most recently used last
    sandboxes: set[Sandbox] = field(default_factory=set)  # idle and busy
    cold_starts: int = 0
    invocations: int = 0


@dataclass(frozen=True)
class _Fault:
    kill: Kill
    fired: threading.Event
    # Only an invocation whose event this accepts (None: the next one, whatever it is).
    when: Callable[[Any], bool] | None = None


@dataclass(eq=False)  # identity: they live in a set
class _QueuedEvent:
    """An Event invocation waiting for, or between, its attempts."""

    name: str
    event: Any
    request_id: str
    future: concurrent.futures.Future[InvocationResult]


def _settle(
    future: concurrent.futures.Future[InvocationResult],
    result: InvocationResult | None = None,
    error: BaseException | None = None,
) -> None:
    # The caller may have cancelled the future, or close() may have settled it already.
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]


class LambdaRuntime:
    """Runs registered functions' handlers in warm local sandboxes, as Lambda would."""

    def __init__(
        self,
        log_dir: Path | None = None,
        python: str = sys.executable,
        *,
        init_timeout_seconds: float = INIT_TIMEOUT_SECONDS,
        idle_ttl_seconds: float | None = 600.0,
        async_retry_delays: tuple[float, ...] = ASYNC_RETRY_DELAYS,
        async_concurrency: int = 4,
    ) -> None:
        """
        log_dir: each function's log stream is appended to <log_dir>/<name>.log; without
            it, logs only reach InvocationResult.log_tail.
        init_timeout_seconds: limit of the init phase. As in AWS, an init that overruns it
            still gets the function timeout, so the effective limit is the larger of both.
        idle_ttl_seconds: idle warm sandboxes older than this are reaped on a later
            invocation (None: never).
        async_retry_delays: waits before each retry of a failed Event invocation.
        async_concurrency: Event invocations running at once; more wait in a queue, as
            Lambda's async queue does, so an S3 burst doesn't fork a sandbox per object.
        """
        self._log_dir = log_dir
        self._python = python
        self._init_timeout = init_timeout_seconds
        self._idle_ttl = idle_ttl_seconds
        self._retry_delays = tuple(async_retry_delays)
        self._lock = threading.Lock()
        self._functions: dict[str, _Function] = {}
        self._retiring: set[Sandbox] = set()
        self._queued: set[_QueuedEvent] = set()
        self._timers: set[threading.Timer] = set()
        self._faults: dict[str, list[_Fault]] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=async_concurrency, thread_name_prefix="lambda-async"
        )
        self._closed = False
        atexit.register(self.close)

    def __enter__(self) -> LambdaRuntime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- registry ---------------------------------------------------------------------

    def register(self, spec: FunctionSpec) -> None:
        """Add or redeploy a function; a changed spec retires the old spec's sandboxes."""
        with self._lock:
            self._check_open()
            fn = self._functions.get(spec.name)
            if fn is None:
                path = None if self._log_dir is None else self._log_dir / f"{spec.name}.log"
                self._functions[spec.name] = _Function(spec=spec, sink=LogSink(path))
                return
            if fn.spec == spec:
                return
            fn.spec = spec
            fn.generation += 1
            # Busy sandboxes finish their invocation and are retired on release.
            retired, fn.idle = fn.idle, []
            fn.sandboxes.difference_update(retired)
        self._retire(retired)

    def stats(self, name: str) -> dict[str, int]:
        with self._lock:
            fn = self._function(name)
            return {
                "cold_starts": fn.cold_starts,
                "invocations": fn.invocations,
                "warm_processes": sum(1 for s in fn.sandboxes if s.alive()),
            }

    def kill_next(
        self,
        name: str,
        *,
        after_handler: bool = False,
        when: Callable[[Any], bool] | None = None,
    ) -> threading.Event:
        """Fault injection: the next invocation of `name` loses its process to SIGKILL,
        before its handler runs or, with after_handler, once the handler has done its work
        and answered (the answer is lost). The caller sees what Lambda reports for a
        crash, Runtime.ExitError; the returned event is set once the kill happened.
        Several calls kill as many invocations in a row. With `when`, the next
        invocation whose event it accepts (one function serving several states). The
        function need not be registered yet (the local cloud registers each on its first
        invocation)."""
        kill = Kill.AFTER_HANDLER if after_handler else Kill.BEFORE_HANDLER
        fault = _Fault(kill, threading.Event(), when)
        with self._lock:
            self._check_open()
            self._faults.setdefault(name, []).append(fault)
        return fault.fired

    # -- invocation -------------------------------------------------------------------

    def invoke(self, name: str, event: Any) -> InvocationResult:
        """RequestResponse invocation. Raises UnknownFunctionError, RuntimeClosedError, and
        TypeError/ValueError for an event that isn't JSON; every failure of the function
        itself is a result with function_error set."""
        return self._invoke(name, event, str(uuid.uuid4()))

    def invoke_async(self, name: str, event: Any) -> concurrent.futures.Future[InvocationResult]:
        """Event invocation: queued, run in the background, a function error retried twice.

        The future resolves to the last attempt's result. Every attempt carries the same
        request id, as Lambda's retries do (idempotency keys rely on it).
        """
        json.dumps(event)  # a bad payload is the caller's error, reported synchronously
        future: concurrent.futures.Future[InvocationResult] = concurrent.futures.Future()
        with self._lock:
            self._check_open()
            self._function(name)
            queued = _QueuedEvent(name, event, str(uuid.uuid4()), future)
            self._queued.add(queued)
        future.add_done_callback(lambda _: self._forget(queued))
        self._submit(queued, 1)
        return future

    def _forget(self, queued: _QueuedEvent) -> None:
        with self._lock:
            self._queued.discard(queued)

    def _submit(
        self, queued: _QueuedEvent, attempt: int, timer: threading.Timer | None = None
    ) -> None:
        with self._lock:
            if timer is not None:
                self._timers.discard(timer)
            if self._closed:
                closed = True
            else:
                closed = False
                self._executor.submit(self._attempt, queued, attempt)
        if closed:
            _settle(queued.future, error=RuntimeClosedError("Lambda runtime closed"))

    def _attempt(self, queued: _QueuedEvent, attempt: int) -> None:
        if queued.future.done():  # cancelled by the caller or settled by close()
            return
        try:
            result = self._invoke(queued.name, queued.event, queued.request_id)
        except Exception as exc:
            _settle(queued.future, error=exc)
            return
        if result.function_error is None:
            _settle(queued.future, result)
            return
        attempts = len(self._retry_delays) + 1
        log.warning(
            "async invocation of %s (request %s) failed, attempt %d of %d: %s",
            queued.name,
            queued.request_id,
            attempt,
            attempts,
            result.payload.decode("utf-8", "replace"),
        )
        if attempt >= attempts:
            log.error(
                "async invocation of %s (request %s) dropped after %d attempts",
                queued.name,
                queued.request_id,
                attempts,
            )
            _settle(queued.future, result)
            return

        # A timer, not a sleep: a waiting retry must not hold one of the async slots.
        def retry() -> None:
            self._submit(queued, attempt + 1, timer)

        timer = threading.Timer(self._retry_delays[attempt - 1], retry)
        timer.daemon = True
        with self._lock:
            closed = self._closed
            if not closed:
                self._timers.add(timer)
        if closed:
            _settle(queued.future, result)
        else:
            timer.start()

    def _invoke(self, name: str, event: Any, request_id: str) -> InvocationResult:
        json.dumps(event)  # not JSON: the caller's error, before taking a sandbox
        sandbox, cold, invocation_log = self._acquire(name, request_id)
        with self._lock:
            fault = _take_fault(self._faults.get(name) or [], event)
        healthy = False
        try:
            result, healthy = lambda_invocation.run(
                sandbox,
                invocation_log,
                event,
                request_id,
                cold=cold,
                init_timeout=self._init_timeout,
                kill=fault.kill if fault else None,
            )
            return result
        finally:
            if fault is not None:
                fault.fired.set()
            sandbox.end_capture()
            self._release(name, sandbox, healthy)

    def _acquire(self, name: str, request_id: str) -> tuple[Sandbox, bool, InvocationLog]:
        """Take an idle warm sandbox of the function, else start one (a cold start)."""
        invocation_log = InvocationLog(request_id)
        with self._lock:
            self._check_open()
            fn = self._function(name)
            fn.invocations += 1
            expired = self._expired_idle()
            sandbox = None
            while fn.idle:
                candidate = fn.idle.pop()
                if candidate.alive():
                    sandbox = candidate
                    sandbox.busy = True
                    break
                fn.sandboxes.discard(candidate)  # died while idle; nothing to reuse
            if sandbox is None:
                fn.cold_starts += 1
            spec, generation, sink = fn.spec, fn.generation, fn.sink
        self._retire(expired)
        if sandbox is not None:
            sandbox.begin_capture(invocation_log)  # busy already set under the lock
            return sandbox, False, invocation_log
        # Started outside the lock: other functions' invocations shouldn't queue behind it.
        sandbox = Sandbox(spec, generation, self._python, sink, invocation_log)
        with self._lock:
            if not self._closed:
                fn.sandboxes.add(sandbox)
                return sandbox, True, invocation_log
        dispose([sandbox])
        raise RuntimeClosedError("Lambda runtime closed")

    def _release(self, name: str, sandbox: Sandbox, healthy: bool) -> None:
        with self._lock:
            sandbox.busy = False
            fn = self._functions.get(name)
            keep = (
                healthy
                and not self._closed
                and fn is not None
                and fn.generation == sandbox.generation
                and sandbox.alive()
            )
            if keep:
                assert fn is not None
                sandbox.last_used = time.monotonic()
                fn.idle.append(sandbox)
                return
            if fn is not None:
                fn.sandboxes.discard(sandbox)
        self._retire([sandbox])

    # -- housekeeping -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("Lambda runtime closed")

    def _function(self, name: str) -> _Function:
        fn = self._functions.get(name)
        if fn is None:
            raise UnknownFunctionError(f"Function not found: {name}")
        return fn

    def _expired_idle(self) -> list[Sandbox]:
        """Idle sandboxes past their TTL, removed from the registry (caller holds the lock)."""
        if self._idle_ttl is None:
            return []
        cutoff = time.monotonic() - self._idle_ttl
        expired: list[Sandbox] = []
        for fn in self._functions.values():
            stale = [s for s in fn.idle if s.last_used < cutoff]
            if stale:
                fn.idle = [s for s in fn.idle if s.last_used >= cutoff]
                fn.sandboxes.difference_update(stale)
                expired.extend(stale)
        return expired

    def _retire(self, sandboxes: list[Sandbox]) -> None:
        """Stop sandboxes in the background; close() still waits for them."""
        if not sandboxes:
            return
        with self._lock:
            self._retiring.update(sandboxes)

        def stop() -> None:
            dispose(sandboxes)
            with self._lock:
                self._retiring.difference_update(sandboxes)

        threading.Thread(target=stop, name="lambda-retire", daemon=True).start()

    def close(self) -> None:
        """Stop every sandbox (SIGTERM, SIGKILL after 2 s). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # Retiring sandboxes have a thread disposing of them already; only idle ones
            # are ours to dispose of.
            idle = {s for fn in self._functions.values() for s in fn.sandboxes if not s.busy}
            sandboxes = set(self._retiring)
            for fn in self._functions.values():
                sandboxes.update(fn.sandboxes)
                fn.sandboxes.clear()
                fn.idle.clear()
            timers, self._timers = self._timers, set()
            queued = list(self._queued)
        for timer in timers:
            timer.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for waiting in queued:
            _settle(waiting.future, error=RuntimeClosedError("Lambda runtime closed"))
        # Busy sandboxes are killed too; their invoking threads see the exit, report it,
        # and free the pipes on release.
        stop_all(sandboxes)
        dispose(idle)
        for fn in self._functions.values():
            fn.sink.close()
        atexit.unregister(self.close)


def _take_fault(faults: list[_Fault], event: Any) -> _Fault | None:
    """The first armed fault for this event, taken off the list."""
    for i, fault in enumerate(faults):
        if fault.when is None or fault.when(event):
            return faults.pop(i)
    return None
