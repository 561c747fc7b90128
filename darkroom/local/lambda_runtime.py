"""Lambda functions of the local cloud: each function's real handler in warm processes.

moto would run function code in Docker. Here every execution environment is a Python
process of its own (darkroom.local.lambda_bootstrap) started with exactly the function's
environment, kept warm between invocations and used by one invocation at a time. Like
Lambda, concurrent invocations scale out to more processes, a timeout or a crash costs the
process, and the next invocation cold-starts a fresh one.

POSIX only: processes are managed as process groups and their pipes with select().
"""

from __future__ import annotations

import atexit
import base64
import concurrent.futures
import contextlib
import datetime as dt
import json
import logging
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "FunctionSpec",
    "InvocationResult",
    "LambdaRuntime",
    "RuntimeClosedError",
    "UnknownFunctionError",
]

log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs match what moto reports
DEFAULT_REGION = "us-east-1"
LOG_TAIL_BYTES = 4096  # what Lambda returns as LogResult with LogType=Tail
ASYNC_RETRY_DELAYS = (1.0, 2.0)  # AWS retries a failed Event invocation twice
INIT_TIMEOUT_SECONDS = 10.0  # AWS's init phase limit
STOP_GRACE_SECONDS = 2.0
CONTEXT_OVERRIDE_KEYS = frozenset(
    {"client_context", "identity", "invoked_function_arn", "function_version", "tenant_id"}
)

# Appended to the child's PYTHONPATH so the bootstrap imports even from a source checkout.
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
# Bounds the wait for a child's log pipe to catch up with its response; only a handler that
# closed fd 2 itself ever hits it.
_LOG_DRAIN_SECONDS = 2.0
_MAX_LINE_BYTES = 64 * 1024


class UnknownFunctionError(LookupError):
    """Invoked a function that was never registered (AWS: ResourceNotFoundException)."""


class RuntimeClosedError(RuntimeError):
    """The runtime was closed; it runs nothing any more."""


def _frozen_env(value: Mapping[str, str], what: str) -> Mapping[str, str]:
    env = dict(value)
    for key, item in env.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise TypeError(f"{what}: environment keys and values must be str, got {key!r}")
    return MappingProxyType(env)


@dataclass(frozen=True)
class FunctionSpec:
    """A function as deployed: what the CDK app declares, plus what the local cloud adds."""

    name: str
    handler: str  # "package.module.function", resolved like the AWS Python runtime does
    environment: Mapping[str, str]  # exactly the function's declared variables
    timeout_seconds: float
    memory_mb: int = 128
    # Process-level additions of the local cloud (endpoint, fake credentials, region,
    # PYTHONPATH), kept apart so `environment` compares equal to the CDK app's.
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # None: AWS_REGION / AWS_DEFAULT_REGION from extra_env, else us-east-1.
    region: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("function name must not be empty")
        if not self.timeout_seconds > 0:
            raise ValueError(f"{self.name}: timeout_seconds must be > 0")
        # Frozen all the way down: a spec is compared to detect redeployments, so a caller
        # mutating its dict afterwards must not change a registered spec behind our back.
        object.__setattr__(self, "environment", _frozen_env(self.environment, self.name))
        object.__setattr__(self, "extra_env", _frozen_env(self.extra_env, self.name))

    @property
    def resolved_region(self) -> str:
        return (
            self.region
            or self.extra_env.get("AWS_REGION")
            or self.extra_env.get("AWS_DEFAULT_REGION")
            or DEFAULT_REGION
        )

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.resolved_region}:{ACCOUNT_ID}:function:{self.name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.name}"


@dataclass(frozen=True)
class InvocationResult:
    payload: bytes  # the response document, as Lambda returns it
    function_error: str | None  # None or "Unhandled"; details are in payload
    log_tail: str  # last ≤4 KB of the log stream during this invocation
    duration_ms: float  # handler time as Lambda reports it; excludes init
    request_id: str
    init_duration_ms: float | None = None  # set on a cold start whose init succeeded

    @property
    def error_type(self) -> str | None:
        """errorType of a function error (e.g. "NoIdleWorker", "Sandbox.Timedout")."""
        if self.function_error is None:
            return None
        document = json.loads(self.payload)
        return document.get("errorType") if isinstance(document, dict) else None


class _ChannelClosedError(Exception):
    """The child's end of the protocol is gone: it exited or was killed."""


class _LogSink:
    """The function's log file, shared by all its processes; writes whole lines only."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._file: Any = None
        self._closed = False

    def write(self, data: bytes) -> None:
        if self._path is None or not data:
            return
        with self._lock:
            if self._closed:
                return
            if self._file is None:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self._path.open("ab")
            self._file.write(data)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()


class _Capture:
    """The log output of one invocation, trimmed to its tail, until its REPORT line."""

    def __init__(self, request_id: str) -> None:
        self._buffer = bytearray()
        self._marker = f"REPORT RequestId: {request_id}".encode()
        self.complete = threading.Event()

    def feed(self, lines: bytes) -> None:
        self._buffer += lines
        if len(self._buffer) > 2 * LOG_TAIL_BYTES:
            del self._buffer[:-LOG_TAIL_BYTES]
        if lines.startswith(self._marker) or b"\n" + self._marker in lines:
            self.complete.set()

    def tail(self) -> str:
        data = bytes(self._buffer[-LOG_TAIL_BYTES:])
        # Don't start the tail in the middle of a UTF-8 sequence.
        start = 0
        while start < min(len(data), 3) and 0x80 <= data[start] < 0xC0:
            start += 1
        return data[start:].decode("utf-8", "replace")


def _child_env(spec: FunctionSpec, log_stream_name: str) -> dict[str, str]:
    """What a real Lambda sees: no trace of the developer's shell beyond what runs Python."""
    base = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TZ": "UTC",  # Lambda's clock is UTC (TZ=:UTC)
        "PYTHONUNBUFFERED": "1",  # prints reach the log as they happen, as in Lambda
        # No ~/.aws: a Lambda has no shared config, so a handler must not pick up the
        # developer's real profiles, and no instance metadata service to wait on.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for key in ("PYTHONPATH", "TMPDIR"):
        if key in os.environ:
            base[key] = os.environ[key]
    region = spec.resolved_region
    reserved = {
        "_HANDLER": spec.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info[0]}.{sys.version_info[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": f"{spec.timeout_seconds:g}",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group_name,
        "AWS_LAMBDA_LOG_STREAM_NAME": log_stream_name,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }
    env = {**base, **spec.extra_env, **spec.environment, **reserved}
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if _PROJECT_ROOT not in paths:
        paths.append(_PROJECT_ROOT)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class _Worker:
    """One execution environment: a bootstrap process, its protocol channel and log pump."""

    def __init__(
        self, spec: FunctionSpec, generation: int, python: str, sink: _LogSink, capture: _Capture
    ) -> None:
        self.spec = spec
        self.generation = generation
        self.last_used = time.monotonic()
        self.sink = sink
        self.busy = True  # guarded by the runtime's lock; a new process starts busy
        self._capture: _Capture | None = capture  # set first: init output belongs to it
        self._capture_lock = threading.Lock()
        self._buffer = bytearray()
        self._release_lock = threading.Lock()
        self._released = False
        now = dt.datetime.now(dt.UTC)
        self.log_stream_name = f"{now:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
        self.proc = subprocess.Popen(
            [python, "-m", "darkroom.local.lambda_bootstrap"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_child_env(spec, self.log_stream_name),
            bufsize=0,
            # Its own process group: a timeout kills whatever the handler spawned too,
            # and the developer's Ctrl-C goes to the local cloud, not straight to handlers.
            start_new_session=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._stdin = self.proc.stdin
        self._stdout_fd = self.proc.stdout.fileno()
        self._pump = threading.Thread(
            target=self._pump_logs, name=f"lambda-log-{spec.name}-{self.proc.pid}", daemon=True
        )
        self._pump.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    # -- log stream -------------------------------------------------------------------

    def _pump_logs(self) -> None:
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        partial = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            *lines, partial = (partial + chunk).split(b"\n")
            if lines:
                self._emit(b"\n".join(lines) + b"\n")
            if len(partial) > _MAX_LINE_BYTES:  # e.g. a progress bar redrawn with \r
                self._emit(partial + b"\n")
                partial = b""
        if partial:
            self._emit(partial + b"\n")

    def _emit(self, data: bytes) -> None:
        """Route whole lines to the log file and the current invocation's tail."""
        self.sink.write(data)
        with self._capture_lock:
            if self._capture is not None:
                self._capture.feed(data)

    def begin_capture(self, capture: _Capture) -> None:
        with self._capture_lock:
            self._capture = capture

    def end_capture(self) -> None:
        with self._capture_lock:
            self._capture = None

    def drain_logs(self, timeout: float = _LOG_DRAIN_SECONDS) -> None:
        """After the process ended: let the pump read what is left in the pipe."""
        self._pump.join(timeout)

    # -- protocol ---------------------------------------------------------------------

    def send(self, message: Mapping[str, Any]) -> None:
        try:
            self._stdin.write(json.dumps(message).encode() + b"\n")
        except (BrokenPipeError, ValueError) as exc:
            raise _ChannelClosedError from exc

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None when the monotonic deadline passes first."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._stdout_fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self._stdout_fd, 1 << 20)
            if not chunk:
                raise _ChannelClosedError
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        message: dict[str, Any] = json.loads(line)
        return message

    # -- lifecycle --------------------------------------------------------------------

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)

    def exit_code(self, timeout: float = STOP_GRACE_SECONDS) -> int:
        """Wait for the process to end (killing it if it lingers) and return its code."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            return self.proc.wait()

    def release_pipes(self) -> None:
        with self._release_lock:
            if self._released:
                return
            self._released = True
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        # stderr belongs to the pump until it has seen EOF.
        if not self._pump.is_alive() and self.proc.stderr is not None:
            with contextlib.suppress(OSError):
                self.proc.stderr.close()


def _stop_all(workers: Iterable[_Worker], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every process group, SIGKILL what is left after the grace period.

    Pipes are left alone: a busy worker's pipes belong to the thread invoking it.
    """
    workers = list(workers)
    for worker in workers:
        if worker.alive():
            worker.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for worker in workers:
        try:
            worker.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.signal_group(signal.SIGKILL)
            worker.proc.wait()
        # Whatever the handler spawned dies with the group even if the leader exited.
        worker.signal_group(signal.SIGKILL)


def _dispose(workers: Iterable[_Worker]) -> None:
    """Stop processes nobody is invoking and free their pipes."""
    workers = list(workers)
    _stop_all(workers)
    for worker in workers:
        worker.drain_logs(0.5)
        worker.release_pipes()


@dataclass
class _Function:
    spec: FunctionSpec
    sink: _LogSink
    generation: int = 0
    idle: list[_Worker] = field(default_factory=list)  # most recently used last
    workers: set[_Worker] = field(default_factory=set)  # idle and busy
    cold_starts: int = 0
    invocations: int = 0


@dataclass(eq=False)  # identity: jobs live in a set
class _AsyncJob:
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


def _error_payload(error_type: str, message: str, request_id: str) -> bytes:
    return json.dumps(
        {
            "errorMessage": message,
            "errorType": error_type,
            "requestId": request_id,
            "stackTrace": [],
        }
    ).encode()


def _exit_description(code: int) -> str:
    """Phrase an exit the way Lambda's Runtime.ExitError does."""
    if code >= 0:
        return f"exit status {code}"
    try:
        name = signal.strsignal(-code) or f"signal {-code}"
    except ValueError:
        name = f"signal {-code}"
    return f"signal: {name.lower()}"


class LambdaRuntime:
    """Runs registered functions' handlers in warm local processes, as Lambda would."""

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
        idle_ttl_seconds: idle warm processes older than this are reaped on a later
            invocation (None: never).
        async_retry_delays: waits before each retry of a failed Event invocation.
        async_concurrency: Event invocations running at once; more wait in a queue, as
            Lambda's async queue does, so an S3 burst doesn't fork a process per object.
        """
        self._log_dir = log_dir
        self._python = python
        self._init_timeout = init_timeout_seconds
        self._idle_ttl = idle_ttl_seconds
        self._retry_delays = tuple(async_retry_delays)
        self._lock = threading.Lock()
        self._functions: dict[str, _Function] = {}
        self._retiring: set[_Worker] = set()
        self._async_jobs: set[_AsyncJob] = set()
        self._timers: set[threading.Timer] = set()
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
        """Add or redeploy a function; a changed spec retires the old spec's processes."""
        with self._lock:
            self._check_open()
            fn = self._functions.get(spec.name)
            if fn is None:
                path = None if self._log_dir is None else self._log_dir / f"{spec.name}.log"
                self._functions[spec.name] = _Function(spec=spec, sink=_LogSink(path))
                return
            if fn.spec == spec:
                return
            fn.spec = spec
            fn.generation += 1
            # Busy processes finish their invocation and are retired on release.
            retired, fn.idle = fn.idle, []
            fn.workers.difference_update(retired)
        self._retire(retired)

    def unregister(self, name: str) -> None:
        """Forget a function (DeleteFunction) and stop its processes."""
        with self._lock:
            fn = self._functions.pop(name, None)
            if fn is None:
                return
            retired = list(fn.workers)
            fn.workers.clear()
            fn.idle.clear()
            fn.generation += 1
        self._retire(retired)

    def stats(self, name: str) -> dict[str, int]:
        with self._lock:
            fn = self._function(name)
            return {
                "cold_starts": fn.cold_starts,
                "invocations": fn.invocations,
                "warm_processes": sum(1 for w in fn.workers if w.alive()),
            }

    # -- invocation -------------------------------------------------------------------

    def invoke(
        self, name: str, event: Any, *, context_overrides: Mapping[str, Any] | None = None
    ) -> InvocationResult:
        """RequestResponse invocation. Raises UnknownFunctionError, RuntimeClosedError, and
        TypeError/ValueError for an event or override that isn't JSON; every failure of
        the function itself is a result with function_error set."""
        overrides = dict(context_overrides or {})
        unknown = set(overrides) - CONTEXT_OVERRIDE_KEYS
        if unknown:
            raise ValueError(f"unknown context overrides: {sorted(unknown)}")
        return self._invoke(name, event, overrides, str(uuid.uuid4()))

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
            job = _AsyncJob(name, event, str(uuid.uuid4()), future)
            self._async_jobs.add(job)
        future.add_done_callback(lambda _: self._forget_job(job))
        self._submit(job, 1)
        return future

    def _forget_job(self, job: _AsyncJob) -> None:
        with self._lock:
            self._async_jobs.discard(job)

    def _submit(self, job: _AsyncJob, attempt: int, timer: threading.Timer | None = None) -> None:
        with self._lock:
            if timer is not None:
                self._timers.discard(timer)
            if self._closed:
                closed = True
            else:
                closed = False
                self._executor.submit(self._attempt, job, attempt)
        if closed:
            _settle(job.future, error=RuntimeClosedError("Lambda runtime closed"))

    def _attempt(self, job: _AsyncJob, attempt: int) -> None:
        if job.future.done():  # cancelled by the caller or settled by close()
            return
        try:
            result = self._invoke(job.name, job.event, {}, job.request_id)
        except Exception as exc:
            _settle(job.future, error=exc)
            return
        if result.function_error is None:
            _settle(job.future, result)
            return
        attempts = len(self._retry_delays) + 1
        log.warning(
            "async invocation of %s (request %s) failed, attempt %d of %d: %s",
            job.name,
            job.request_id,
            attempt,
            attempts,
            result.payload.decode("utf-8", "replace"),
        )
        if attempt >= attempts:
            log.error(
                "async invocation of %s (request %s) dropped after %d attempts",
                job.name,
                job.request_id,
                attempts,
            )
            _settle(job.future, result)
            return

        # A timer, not a sleep: a waiting retry must not hold one of the async slots.
        def retry() -> None:
            self._submit(job, attempt + 1, timer)

        timer = threading.Timer(self._retry_delays[attempt - 1], retry)
        timer.daemon = True
        with self._lock:
            closed = self._closed
            if not closed:
                self._timers.add(timer)
        if closed:
            _settle(job.future, result)
        else:
            timer.start()

    def _invoke(
        self, name: str, event: Any, overrides: dict[str, Any], request_id: str
    ) -> InvocationResult:
        json.dumps([event, overrides])  # not JSON: the caller's error, before taking a process
        worker, spec, cold, capture = self._acquire(name, request_id)
        healthy = False
        try:
            result, healthy = self._run(worker, spec, cold, capture, event, overrides, request_id)
            return result
        finally:
            worker.end_capture()
            self._release(name, worker, healthy)

    def _acquire(self, name: str, request_id: str) -> tuple[_Worker, FunctionSpec, bool, _Capture]:
        """Take an idle warm process of the function, else start one (a cold start)."""
        capture = _Capture(request_id)
        with self._lock:
            self._check_open()
            fn = self._function(name)
            fn.invocations += 1
            expired = self._expired_idle()
            worker = None
            while fn.idle:
                candidate = fn.idle.pop()
                if candidate.alive():
                    worker = candidate
                    worker.busy = True
                    break
                fn.workers.discard(candidate)  # died while idle; nothing to reuse
            if worker is None:
                fn.cold_starts += 1
            spec, generation, sink = fn.spec, fn.generation, fn.sink
        self._retire(expired)
        if worker is not None:
            worker.begin_capture(capture)  # busy already set under the lock
            return worker, spec, False, capture
        # Started outside the lock: other functions' invocations shouldn't queue behind it.
        worker = _Worker(spec, generation, self._python, sink, capture)
        with self._lock:
            if not self._closed:
                fn.workers.add(worker)
                return worker, spec, True, capture
        _dispose([worker])
        raise RuntimeClosedError("Lambda runtime closed")

    def _release(self, name: str, worker: _Worker, healthy: bool) -> None:
        with self._lock:
            worker.busy = False
            fn = self._functions.get(name)
            keep = (
                healthy
                and not self._closed
                and fn is not None
                and fn.generation == worker.generation
                and worker.alive()
            )
            if keep:
                assert fn is not None
                worker.last_used = time.monotonic()
                fn.idle.append(worker)
                return
            if fn is not None:
                fn.workers.discard(worker)
        self._retire([worker])

    def _run(
        self,
        worker: _Worker,
        spec: FunctionSpec,
        cold: bool,
        capture: _Capture,
        event: Any,
        overrides: dict[str, Any],
        request_id: str,
    ) -> tuple[InvocationResult, bool]:
        """One invocation on a process it has to itself; also says whether to keep it."""
        init_ms: float | None = None
        if cold:
            started = time.monotonic()
            init_limit = max(self._init_timeout, spec.timeout_seconds)
            try:
                ready = worker.receive(started + init_limit)
            except _ChannelClosedError:
                return self._crashed(worker, capture, request_id, started), False
            if ready is None:
                return self._timed_out(worker, capture, request_id, init_limit), False
            if ready["type"] == "init_error":
                return self._init_failed(worker, capture, request_id, ready["error"]), False
            init_ms = float(ready["init_ms"])
        deadline_ms = int(time.time() * 1000 + spec.timeout_seconds * 1000)
        started = time.monotonic()
        try:
            worker.send(
                {
                    "id": request_id,
                    "event": event,
                    "deadline_ms": deadline_ms,
                    "context": {"invoked_function_arn": spec.arn, **overrides},
                }
            )
            response = worker.receive(started + spec.timeout_seconds)
        except _ChannelClosedError:
            return self._crashed(worker, capture, request_id, started), False
        if response is None:
            return self._timed_out(worker, capture, request_id, spec.timeout_seconds), False
        capture.complete.wait(_LOG_DRAIN_SECONDS)
        worker.end_capture()
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
            log_tail=capture.tail(),
            duration_ms=float(response["duration_ms"]),
            request_id=request_id,
            init_duration_ms=init_ms,
        )
        return result, True

    # -- failures that cost the process -------------------------------------------------

    def _platform_log(
        self,
        worker: _Worker,
        capture: _Capture,
        text: str,
        request_id: str,
        duration_ms: float,
        status: str,
    ) -> None:
        """Write what Lambda's platform logs when an invocation ends abnormally."""
        spec = worker.spec
        report = (
            f"{text}END RequestId: {request_id}\n"
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {spec.memory_mb} MB\t"
            f"{status}\n"
        ).encode()
        worker.drain_logs()
        worker.end_capture()
        worker.sink.write(report)
        capture.feed(report)

    def _timed_out(
        self,
        worker: _Worker,
        capture: _Capture,
        request_id: str,
        limit: float,
    ) -> InvocationResult:
        worker.signal_group(signal.SIGKILL)
        worker.exit_code()
        message = f"{request_id} Task timed out after {limit:.2f} seconds"
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        self._platform_log(
            worker, capture, f"{stamp} {message}\n", request_id, limit * 1000, "Status: timeout"
        )
        return InvocationResult(
            payload=_error_payload("Sandbox.Timedout", message, request_id),
            function_error="Unhandled",
            log_tail=capture.tail(),
            duration_ms=limit * 1000,
            request_id=request_id,
        )

    def _crashed(
        self,
        worker: _Worker,
        capture: _Capture,
        request_id: str,
        started: float,
    ) -> InvocationResult:
        code = worker.exit_code()
        duration_ms = (time.monotonic() - started) * 1000
        reason = _exit_description(code)
        message = f"RequestId: {request_id} Error: Runtime exited with error: {reason}"
        self._platform_log(
            worker,
            capture,
            f"{message}\nRuntime.ExitError\n",
            request_id,
            duration_ms,
            "Status: error\tError Type: Runtime.ExitError",
        )
        return InvocationResult(
            payload=_error_payload("Runtime.ExitError", message, request_id),
            function_error="Unhandled",
            log_tail=capture.tail(),
            duration_ms=duration_ms,
            request_id=request_id,
        )

    def _init_failed(
        self,
        worker: _Worker,
        capture: _Capture,
        request_id: str,
        error: dict[str, Any],
    ) -> InvocationResult:
        worker.exit_code()
        self._platform_log(
            worker,
            capture,
            "",
            request_id,
            0.0,
            f"Status: error\tError Type: {error.get('errorType', 'Runtime.Unknown')}",
        )
        return InvocationResult(
            payload=json.dumps({**error, "requestId": request_id}).encode(),
            function_error="Unhandled",
            log_tail=capture.tail(),
            duration_ms=0.0,
            request_id=request_id,
        )

    # -- housekeeping -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeClosedError("Lambda runtime closed")

    def _function(self, name: str) -> _Function:
        fn = self._functions.get(name)
        if fn is None:
            raise UnknownFunctionError(f"Function not found: {name}")
        return fn

    def _expired_idle(self) -> list[_Worker]:
        """Idle processes past their TTL, removed from the registry (caller holds the lock)."""
        if self._idle_ttl is None:
            return []
        cutoff = time.monotonic() - self._idle_ttl
        expired: list[_Worker] = []
        for fn in self._functions.values():
            stale = [w for w in fn.idle if w.last_used < cutoff]
            if stale:
                fn.idle = [w for w in fn.idle if w.last_used >= cutoff]
                fn.workers.difference_update(stale)
                expired.extend(stale)
        return expired

    def _retire(self, workers: list[_Worker]) -> None:
        """Stop processes in the background; close() still waits for them."""
        if not workers:
            return
        with self._lock:
            self._retiring.update(workers)

        def stop() -> None:
            _dispose(workers)
            with self._lock:
                self._retiring.difference_update(workers)

        threading.Thread(target=stop, name="lambda-retire", daemon=True).start()

    def close(self) -> None:
        """Stop every process (SIGTERM, SIGKILL after 2 s). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            # Retiring processes have a thread disposing of them already; only idle ones
            # are ours to dispose of.
            idle = {w for fn in self._functions.values() for w in fn.workers if not w.busy}
            workers = set(self._retiring)
            for fn in self._functions.values():
                workers.update(fn.workers)
                fn.workers.clear()
                fn.idle.clear()
            timers, self._timers = self._timers, set()
            jobs = list(self._async_jobs)
        for timer in timers:
            timer.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for job in jobs:
            _settle(job.future, error=RuntimeClosedError("Lambda runtime closed"))
        # Busy processes are killed too; their invoking threads see the exit, report it,
        # and free the pipes on release.
        _stop_all(workers)
        _dispose(idle)
        for fn in self._functions.values():
            fn.sink.close()
        atexit.unregister(self.close)
