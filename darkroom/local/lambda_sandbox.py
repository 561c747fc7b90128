"""One execution environment of the local Lambda runtime: a sandbox.

A sandbox is a bootstrap process (darkroom.local.lambda_bootstrap) started with exactly
the function's environment, the JSON-lines channel to it, and the pump that copies its
output to the function's log. POSIX only: each sandbox is a process group of its own, and
its pipes are read with poll().
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from darkroom.local.lambda_logs import InvocationLog, LogSink
from darkroom.local.lambda_spec import FunctionSpec

STOP_GRACE_SECONDS = 2.0
# Bounds the wait for a sandbox's log pipe to catch up with its response; only a handler
# that closed fd 2 itself ever hits it.
LOG_DRAIN_SECONDS = 2.0
_MAX_LINE_BYTES = 64 * 1024
# Appended to the child's PYTHONPATH so the bootstrap imports even from a source checkout.
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class ChannelClosedError(Exception):
    """The sandbox's end of the protocol is gone: its process exited or was killed."""


def sandbox_env(spec: FunctionSpec, log_stream_name: str) -> dict[str, str]:
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


class Sandbox:
    """One execution environment: a bootstrap process, its protocol channel and log pump."""

    def __init__(
        self,
        spec: FunctionSpec,
        generation: int,
        python: str,
        sink: LogSink,
        log: InvocationLog,
    ) -> None:
        self.spec = spec
        self.generation = generation
        self.last_used = time.monotonic()
        self.sink = sink
        self.busy = True  # guarded by the runtime's lock; a new sandbox starts busy
        self._log: InvocationLog | None = log  # set first: init output belongs to it
        self._log_lock = threading.Lock()
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
            env=sandbox_env(spec, self.log_stream_name),
            bufsize=0,
            # Its own process group: a timeout kills whatever the handler spawned too,
            # and the developer's Ctrl-C goes to the local cloud, not straight to handlers.
            start_new_session=True,
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self._stdin = self.proc.stdin
        self._stdout_fd = self.proc.stdout.fileno()
        # poll, not select: select refuses descriptors past 1024, which a long-lived local
        # cloud (many clients, sandboxes and sockets in one process) does reach.
        self._readable = select.poll()
        self._readable.register(self._stdout_fd, select.POLLIN)
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
        with self._log_lock:
            if self._log is not None:
                self._log.feed(data)

    def begin_capture(self, log: InvocationLog) -> None:
        with self._log_lock:
            self._log = log

    def end_capture(self) -> None:
        with self._log_lock:
            self._log = None

    def drain_logs(self, timeout: float = LOG_DRAIN_SECONDS) -> None:
        """After the process ended: let the pump read what is left in the pipe."""
        self._pump.join(timeout)

    # -- protocol ---------------------------------------------------------------------

    def send(self, message: Mapping[str, Any]) -> None:
        try:
            self._stdin.write(json.dumps(message).encode() + b"\n")
        except (BrokenPipeError, ValueError) as exc:
            raise ChannelClosedError from exc

    def receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None when the monotonic deadline passes first."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not self._readable.poll(remaining * 1000):
                return None
            chunk = os.read(self._stdout_fd, 1 << 20)
            if not chunk:
                raise ChannelClosedError
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


def stop_all(sandboxes: Iterable[Sandbox], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM every process group, SIGKILL what is left after the grace period.

    Pipes are left alone: a busy sandbox's pipes belong to the thread invoking it.
    """
    sandboxes = list(sandboxes)
    for sandbox in sandboxes:
        if sandbox.alive():
            sandbox.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for sandbox in sandboxes:
        try:
            sandbox.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            sandbox.signal_group(signal.SIGKILL)
            sandbox.proc.wait()
        # Whatever the handler spawned dies with the group even if the leader exited.
        sandbox.signal_group(signal.SIGKILL)


def dispose(sandboxes: Iterable[Sandbox]) -> None:
    """Stop sandboxes nobody is invoking and free their pipes."""
    sandboxes = list(sandboxes)
    stop_all(sandboxes)
    for sandbox in sandboxes:
        sandbox.drain_logs(0.5)
        sandbox.release_pipes()
