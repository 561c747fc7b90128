"""One DynamoDB table: plain Python values in and out, one error per failed condition.

Every store goes through this adapter, so encoding (ddb_codec), pagination and what
DynamoDB's errors mean live in one place; a store keeps only its keys and conditions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from darkroom.aws.clients import client, error_code
from darkroom.aws.ddb_codec import from_item, to_attribute, to_item
from darkroom.errors import DarkroomError, TransientError
from darkroom.names import TableSchema

Item = dict[str, Any]

# Throttles (botocore's own retries already spent) and passing faults: the state
# machine's Retry lists name TransientError, so a step retries instead of failing the job.
_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_BATCH_GET_MAX = 100
_BATCH_WRITE_MAX = 25
TRANSACTION_MAX = 100  # actions DynamoDB takes in one TransactWriteItems
_UNPROCESSED_TRIES = 5


class ConditionFailed(DarkroomError):
    """A conditional write found the item other than its condition expects."""


@contextmanager
def _dynamodb_errors() -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        if code == "ConditionalCheckFailedException" or (
            code == "TransactionCanceledException"
            and any(
                reason.get("Code") == "ConditionalCheckFailed"
                for reason in exc.response.get("CancellationReasons", [])
            )
        ):
            raise ConditionFailed(str(exc)) from exc
        if code in ("TransactionCanceledException", "TransactionConflictException"):
            # Another transaction on the same items at that moment: try again.
            raise TransientError(f"DynamoDB: {exc}") from exc
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _TRANSIENT_CODES or status >= 500:
            raise TransientError(f"DynamoDB: {exc}") from exc
        raise


def create_request(schema: TableSchema, name: str | None = None) -> dict[str, Any]:
    """CreateTable's arguments for a schema (the local cloud and tests; CDK in AWS)."""
    keys = [(schema.partition_key, "HASH")]
    if schema.sort_key:
        keys.append((schema.sort_key, "RANGE"))
    attributes = {k for k, _ in keys}
    request: dict[str, Any] = {
        "TableName": name or schema.name,
        "KeySchema": [{"AttributeName": k, "KeyType": t} for k, t in keys],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if schema.index:
        index = schema.index
        attributes |= {index.partition_key, index.sort_key}
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    request["AttributeDefinitions"] = [
        {"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)
    ]
    return request


@dataclass(frozen=True)
class Update:
    """A conditional UpdateItem, as one action of a transaction (Table.write_together)."""

    key: Mapping[str, Any]
    expression: str
    condition: str | None = None
    names: Mapping[str, str] | None = None
    values: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Put:
    """A PutItem, as one action of a transaction."""

    item: Mapping[str, Any]
    condition: str | None = None
    names: Mapping[str, str] | None = None
    values: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Check:
    """A condition on another item that the transaction needs to hold."""

    key: Mapping[str, Any]
    condition: str
    names: Mapping[str, str] | None = None
    values: Mapping[str, Any] | None = None


class Table:
    def __init__(self, name: str, schema: TableSchema, ddb: Any | None = None) -> None:
        self.name = name
        self.schema = schema
        self._ddb = ddb or client("dynamodb")

    def key(self, partition: str, sort: str | None = None) -> Item:
        key = {self.schema.partition_key: partition}
        if self.schema.sort_key:
            if sort is None:
                raise ValueError(f"{self.name} needs a sort key ({self.schema.sort_key})")
            key[self.schema.sort_key] = sort
        return key

    # -- reads --------------------------------------------------------------------
    def get(self, key: Mapping[str, Any]) -> Item | None:
        with _dynamodb_errors():
            raw = self._ddb.get_item(
                TableName=self.name, Key=to_item(key), ConsistentRead=True
            ).get("Item")
        return from_item(raw) if raw else None

    def get_many(self, keys: Sequence[Mapping[str, Any]]) -> list[Item]:
        """The items that exist among `keys`, in no particular order (consistent reads)."""
        found: list[Item] = []
        for start in range(0, len(keys), _BATCH_GET_MAX):
            pending = [to_item(k) for k in keys[start : start + _BATCH_GET_MAX]]
            for attempt in range(_UNPROCESSED_TRIES):
                with _dynamodb_errors():
                    answer = self._ddb.batch_get_item(
                        RequestItems={self.name: {"Keys": pending, "ConsistentRead": True}}
                    )
                found.extend(from_item(i) for i in answer.get("Responses", {}).get(self.name, []))
                pending = answer.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
                if not pending:
                    break
                # Unprocessed keys are DynamoDB shedding load: back off before asking again.
                time.sleep(0.05 * 2**attempt)
            else:
                raise TransientError(f"DynamoDB left {len(pending)} key(s) of {self.name} unread")
        return found

    def query(
        self,
        key_condition: str,
        *,
        values: Mapping[str, Any],
        names: Mapping[str, str] | None = None,
        index: str | None = None,
        descending: bool = False,
        page_size: int | None = None,
        consistent: bool = False,
        start_after: Mapping[str, Any] | None = None,
    ) -> Iterator[Item]:
        """Every matching item, fetched a page at a time as the caller iterates; with
        `start_after` (a key, which need not exist), only those past it."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeValues": {k: to_attribute(v) for k, v in values.items()},
            "ScanIndexForward": not descending,
        }
        if names:
            request["ExpressionAttributeNames"] = dict(names)
        if index:
            request["IndexName"] = index
        else:
            request["ConsistentRead"] = consistent
        if page_size:
            request["Limit"] = page_size
        if start_after is not None:
            request["ExclusiveStartKey"] = to_item(start_after)
        yield from self._pages("query", request)

    def newest(
        self, entity: str, *, before: str | None = None, page_size: int | None = None
    ) -> Iterator[Item]:
        """Items of `entity` from the listing index, newest first; with `before` (a created
        key, as a cursor holds), only those created before it."""
        index = self.schema.index
        if index is None:
            raise ValueError(f"{self.name} has no listing index")
        condition = "#pk = :entity"
        attribute_names = {"#pk": index.partition_key}
        values: dict[str, Any] = {":entity": entity}
        if before is not None:
            condition += " AND #sk < :before"
            attribute_names["#sk"] = index.sort_key
            values[":before"] = before
        return self.query(
            condition,
            names=attribute_names,
            values=values,
            index=index.name,
            descending=True,
            page_size=page_size,
        )

    def scan(self, *, consistent: bool = False) -> Iterator[Item]:
        yield from self._pages("scan", {"TableName": self.name, "ConsistentRead": consistent})

    def _pages(self, operation: str, request: dict[str, Any]) -> Iterator[Item]:
        call = getattr(self._ddb, operation)
        while True:
            with _dynamodb_errors():
                page = call(**request)
            yield from (from_item(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- writes -------------------------------------------------------------------
    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        request: dict[str, Any] = {"TableName": self.name, "Item": to_item(item)}
        request.update(_expressions(condition, names, values))
        with _dynamodb_errors():
            self._ddb.put_item(**request)

    def put_new(self, item: Mapping[str, Any]) -> None:
        """Write the item only if none has its key; ConditionFailed otherwise."""
        self.put(item, condition=f"attribute_not_exists({self.schema.partition_key})")

    def write_together(self, actions: Sequence[Update | Put | Check]) -> None:
        """Apply every write or none (one transaction, at most TRANSACTION_MAX actions);
        ConditionFailed if any condition does not hold."""
        if len(actions) > TRANSACTION_MAX:
            raise ValueError(f"a transaction takes at most {TRANSACTION_MAX} actions")
        request = []
        for a in actions:
            action: dict[str, Any] = {"TableName": self.name}
            if isinstance(a, Put):
                action["Item"] = to_item(a.item)
            else:
                action["Key"] = to_item(a.key)
            if isinstance(a, Update):
                action["UpdateExpression"] = a.expression
            action.update(_expressions(a.condition, a.names, a.values))
            kind = {Update: "Update", Put: "Put", Check: "ConditionCheck"}[type(a)]
            request.append({kind: action})
        with _dynamodb_errors():
            self._ddb.transact_write_items(TransactItems=request)

    def update(
        self,
        key: Mapping[str, Any],
        expression: str,
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> Item:
        """Apply the update expression (if the condition holds); the item as it now is."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": to_item(key),
            "UpdateExpression": expression,
            "ReturnValues": "ALL_NEW",
        }
        request.update(_expressions(condition, names, values))
        with _dynamodb_errors():
            raw = self._ddb.update_item(**request)["Attributes"]
        return from_item(raw)

    def delete(
        self,
        key: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        """Delete the item if it exists (deleting a missing item is not an error), and
        if `condition` holds (ConditionFailed otherwise)."""
        request: dict[str, Any] = {"TableName": self.name, "Key": to_item(key)}
        request.update(_expressions(condition, names, values))
        with _dynamodb_errors():
            self._ddb.delete_item(**request)

    def put_many(self, items: Sequence[Mapping[str, Any]]) -> None:
        """Write these items (unconditionally), 25 a request."""
        self._write_many([{"PutRequest": {"Item": to_item(i)}} for i in items])

    def delete_many(self, keys: Sequence[Mapping[str, Any]]) -> None:
        """Delete these items, 25 a request."""
        self._write_many([{"DeleteRequest": {"Key": to_item(k)}} for k in keys])

    def _write_many(self, requests: Sequence[dict[str, Any]]) -> None:
        # The requests DynamoDB leaves unprocessed are sent again, after a pause.
        for start in range(0, len(requests), _BATCH_WRITE_MAX):
            pending = list(requests[start : start + _BATCH_WRITE_MAX])
            for attempt in range(_UNPROCESSED_TRIES):
                with _dynamodb_errors():
                    answer = self._ddb.batch_write_item(RequestItems={self.name: pending})
                pending = answer.get("UnprocessedItems", {}).get(self.name, [])
                if not pending:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise TransientError(f"DynamoDB left {len(pending)} item(s) of {self.name}")


def _expressions(
    condition: str | None, names: Mapping[str, str] | None, values: Mapping[str, Any] | None
) -> dict[str, Any]:
    # DynamoDB refuses empty name and value maps, so they are sent only when used.
    request: dict[str, Any] = {}
    if condition:
        request["ConditionExpression"] = condition
    if names:
        request["ExpressionAttributeNames"] = dict(names)
    if values:
        request["ExpressionAttributeValues"] = {k: to_attribute(v) for k, v in values.items()}
    return request
