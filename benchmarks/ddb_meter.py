"""DynamoDB write units of the embedded local cloud, metered where moto stores the items.

The local cloud reports no consumed capacity, and its call recorder keeps only the names
of what a call touches, not item bodies. moto's server runs in the process that started
the cloud, so the meter wraps moto's item writes there: for each write it reads the item
before and after (under one lock, so no other write slips in between) and bills it by
DynamoDB's published rules (developer guide, "DynamoDB item sizes and formats" and
"Capacity unit consumption for write operations"):

- an item's size is the sum of its attribute names' UTF-8 bytes and its values' sizes:
  a string its UTF-8 bytes, a number 1 byte per two significant digits + 1, a binary its
  raw bytes, a boolean or null 1 byte, a list or map 3 bytes + its elements + 1 byte
  per element, a set the sum of its elements;
- a PutItem or UpdateItem costs 1 write unit per started KB of the larger of the item
  before and after the write; a DeleteItem of the deleted item; a write to no item,
  1 unit; a write whose condition fails costs as if it had happened (DynamoDB bills it);
- BatchWriteItem bills each put and delete as above (moto runs them one by one);
- TransactWriteItems bills 2 units per started KB of each item it puts, updates,
  deletes or condition-checks; a cancelled transaction is billed for every item.

The two reads cost about 0.4 ms a write in moto's process (to_json and sizing; lost in
the noise of a write's own 10 ms there), which the benchmark counts as overhead.
"""

from __future__ import annotations

import base64
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

KB = 1024


def number_size(text: str) -> int:
    """Bytes of a DynamoDB number: 1 per two significant digits, plus 1."""
    digits = str(Decimal(text).normalize()).lstrip("-").split("E")[0].replace(".", "")
    significant = len(digits.strip("0")) or 1
    return math.ceil(significant / 2) + 1


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one typed value in DynamoDB's wire form ({"S": "..."}, {"M": {...}}, ...)."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return number_size(str(data))
    if kind == "B":
        return len(data) if isinstance(data, bytes | bytearray) else len(base64.b64decode(data))
    if kind in {"BOOL", "NULL"}:
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in data)
    if kind == "NS":
        return sum(number_size(str(n)) for n in data)
    if kind == "BS":
        return sum(value_size({"B": b}) for b in data)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in data.items())
    raise ValueError(f"not a DynamoDB type: {kind}")


def item_size(item: Mapping[str, Mapping[str, Any]] | None) -> int:
    """Bytes of an item in DynamoDB's wire form, as DynamoDB bills it (0: no item)."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(before: int, after: int, *, transactional: bool = False) -> int:
    """Write units of one item's write, from its size before and after (bytes)."""
    units = max(1, math.ceil(max(before, after) / KB))
    return 2 * units if transactional else units


@dataclass(frozen=True)
class Write:
    table: str
    operation: str
    units: int
    size: int  # bytes of the larger of the item before and after


def summary(writes: list[Write]) -> dict[str, Any]:
    """Writes and units in all, and units by operation and by table."""
    by_operation: Counter[str] = Counter()
    by_table: Counter[str] = Counter()
    for w in writes:
        by_operation[w.operation] += w.units
        by_table[w.table] += w.units
    return {
        "writes": len(writes),
        "units": sum(w.units for w in writes),
        "units_by_operation": dict(by_operation),
        "units_by_table": dict(by_table),
    }


def _moto_size(item: Any) -> int:
    return item_size(item.to_json()["Attributes"]) if item is not None else 0


class WriteMeter:
    """Bills every item write moto's DynamoDB makes while installed."""

    def __init__(self) -> None:
        self._writes: list[Write] = []
        self._lock = threading.RLock()
        self._local = threading.local()

    def take(self) -> list[Write]:
        """The writes billed since the last take."""
        with self._lock:
            writes, self._writes = self._writes, []
        return writes

    def _bill(self, write: Write) -> None:
        pending = getattr(self._local, "transaction", None)
        if pending is not None:
            pending.append(write)
        else:
            self._writes.append(write)

    @contextmanager
    def installed(self) -> Iterator[WriteMeter]:
        from moto.dynamodb.exceptions import ConditionalCheckFailed
        from moto.dynamodb.models import DynamoDBBackend

        originals = {
            name: getattr(DynamoDBBackend, name)
            for name in ("put_item", "update_item", "delete_item", "transact_write_items")
        }
        meter = self

        def keyed(backend: Any, table_name: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
            table = backend.get_table(table_name)
            names = [table.hash_key_attr, table.range_key_attr]
            return {n: attrs[n] for n in names if n is not None and n in attrs}

        def current(backend: Any, table_name: str, key: Mapping[str, Any]) -> int:
            try:
                return _moto_size(backend.get_item(table_name, dict(key)))
            except Exception:  # an invalid key: the write itself will fail
                return 0

        def metered(name: str, operation: str) -> Callable[..., Any]:
            original = originals[name]

            def write(backend: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
                payload = kwargs.get("item_attrs", kwargs.get("key", args[0] if args else {}))
                key = keyed(backend, table_name, payload) if name == "put_item" else payload
                transactional = getattr(meter._local, "transaction", None) is not None
                with meter._lock:
                    before = current(backend, table_name, key)
                    requested = item_size(payload) if name == "put_item" else 0
                    try:
                        result = original(backend, table_name, *args, **kwargs)
                    except ConditionalCheckFailed:
                        size = max(before, requested)
                        meter._bill(
                            Write(
                                table_name,
                                operation,
                                write_units(size, 0, transactional=transactional),
                                size,
                            )
                        )
                        raise
                    after = 0 if name == "delete_item" else current(backend, table_name, key)
                    size = max(before, after)
                    meter._bill(
                        Write(
                            table_name,
                            "TransactWriteItems" if transactional else operation,
                            write_units(before, after, transactional=transactional),
                            size,
                        )
                    )
                    return result

            return write

        def transact(backend: Any, transact_items: list[dict[str, Any]], **kw: Any) -> Any:
            with meter._lock:
                pending: list[Write] = []
                meter._local.transaction = pending
                checks: list[Write] = []
                try:
                    for entry in transact_items:
                        ((kind, op),) = entry.items()
                        if kind == "ConditionCheck":
                            size = current(backend, op["TableName"], op["Key"])
                            units = write_units(size, 0, transactional=True)
                            checks.append(Write(op["TableName"], "TransactWriteItems", units, size))
                    result = originals["transact_write_items"](backend, transact_items, **kw)
                except Exception:
                    # Cancelled: every item is billed, at its size now (the state rolled back).
                    meter._local.transaction = None
                    for entry in transact_items:
                        ((kind, op),) = entry.items()
                        key = op.get("Key") or keyed(backend, op["TableName"], op["Item"])
                        size = max(
                            current(backend, op["TableName"], key), item_size(op.get("Item"))
                        )
                        meter._bill(
                            Write(
                                op["TableName"],
                                "TransactWriteItems",
                                write_units(size, 0, transactional=True),
                                size,
                            )
                        )
                    raise
                finally:
                    meter._local.transaction = None
                meter._writes.extend(pending + checks)
                return result

        patched = {
            "put_item": metered("put_item", "PutItem"),
            "update_item": metered("update_item", "UpdateItem"),
            "delete_item": metered("delete_item", "DeleteItem"),
            "transact_write_items": transact,
        }
        for name, function in patched.items():
            setattr(DynamoDBBackend, name, function)
        try:
            yield self
        finally:
            for name, function in originals.items():
                setattr(DynamoDBBackend, name, function)
