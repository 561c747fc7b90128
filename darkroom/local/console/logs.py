"""Function and worker logs: the files the local cloud writes under its state directory's
`logs/`, one per function (`<function>.log`, Lambda's START/END/REPORT lines around the
handler's own) and one per pool instance (`worker-<instance>.log`)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TAIL_BYTES = 64 * 1024
_START = re.compile(r"^START RequestId: (\S+)")
_REPORT = re.compile(r"^REPORT RequestId: (\S+)\t(.*)$")


def streams(log_dir: Path) -> list[str]:
    return sorted(p.stem for p in log_dir.glob("*.log") if p.is_file())


def tail(log_dir: Path, stream: str, limit: int = TAIL_BYTES) -> str | None:
    """The end of one stream, or None for a name that is not one (never a path)."""
    if stream not in streams(log_dir):
        return None
    path = log_dir / f"{stream}.log"
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - limit))
        data = f.read()
    if size > limit:
        # Start at a whole line: the first one is most likely cut.
        data = data.partition(b"\n")[2]
    return data.decode("utf-8", "replace")


@dataclass
class Invocation:
    request_id: str
    duration_ms: float | None = None
    max_memory_mb: int | None = None
    # What the platform adds to REPORT when an invocation ends badly (timeout, OOM).
    status: str | None = None
    errors: int = 0
    last_message: str = ""
    key: str | None = None  # the object a thumbnail invocation read, as its log names it
    finished: bool = False


def invocations(log_dir: Path, function: str, limit: int = 20) -> list[dict[str, Any]]:
    """The function's most recent invocations, newest first, from its log's REPORT lines
    (what CloudWatch Logs Insights would query in AWS)."""
    text = tail(log_dir, function, limit=4 * TAIL_BYTES) or ""
    found: dict[str, Invocation] = {}
    current: Invocation | None = None
    for line in text.splitlines():
        if start := _START.match(line):
            current = found.setdefault(start.group(1), Invocation(start.group(1)))
        elif report := _REPORT.match(line):
            _report(found.setdefault(report.group(1), Invocation(report.group(1))), report.group(2))
            current = None
        elif current is not None and line.strip() and not line.startswith("END RequestId"):
            _read(current, line)
    return [asdict(i) for i in reversed(list(found.values()))][:limit]


def _read(invocation: Invocation, line: str) -> None:
    """One line the handler wrote: a structured record says its level and message (a
    metrics record, Lambda's embedded metric format, says nothing to a reader)."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        invocation.last_message = line[:500]
        invocation.errors += "Traceback" in line
        return
    if "_aws" in record:
        return
    level = str(record.get("level", ""))
    invocation.errors += level in ("ERROR", "CRITICAL")
    invocation.last_message = f"{level} {record.get('message', '')}".strip()[:500]
    if record.get("key"):
        invocation.key = str(record["key"])


def _report(invocation: Invocation, fields: str) -> None:
    invocation.finished = True
    for part in fields.split("\t"):
        key, _, value = part.partition(": ")
        if key == "Duration":
            invocation.duration_ms = float(value.split()[0])
        elif key == "Max Memory Used":
            invocation.max_memory_mb = int(value.split()[0])
        elif key == "Status":
            invocation.status = value
