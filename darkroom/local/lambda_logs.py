"""Log streams of the local Lambda runtime: each function's log file, and the tail of one
invocation that Lambda returns with LogType=Tail."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

LOG_TAIL_BYTES = 4096  # what Lambda returns as LogResult with LogType=Tail


class LogSink:
    """The function's log file, shared by all its sandboxes; writes whole lines only."""

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


class InvocationLog:
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


def platform_report(
    text: str, request_id: str, duration_ms: float, memory_mb: int, status: str
) -> bytes:
    """What Lambda's platform logs when an invocation ends abnormally: `text`, then the
    END and REPORT lines the sandbox itself could not write."""
    return (
        f"{text}END RequestId: {request_id}\n"
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {memory_mb} MB\t"
        f"{status}\n"
    ).encode()
