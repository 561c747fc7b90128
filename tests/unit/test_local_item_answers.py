"""The local cloud answers DynamoDB item reads with the items as JSON, rather than
through moto's shape-by-shape serializer (10 ms an item): the same answers, to the byte
of every attribute, for every attribute type. And it parses each distinct condition
expression once: every conditional write is decided as when parsed each time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.responses import DynamoResult

from darkroom.local import moto_hooks
from tests.moto_config import create_pk_sk_table, offline_aws

TABLE = "items"
EVERY_TYPE = {
    "pk": {"S": "job"},
    "s": {"S": 'café \U0001f4f7 "quoted" \\ back'},
    "n": {"N": "-12.5e3"},
    "big": {"N": "123456789012345678901234567890"},
    "yes": {"BOOL": True},
    "none": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2.5"]},
    "m": {"M": {"web": {"M": {"key": {"S": "processed/x.jpg"}, "bytes": {"N": "123"}}}}},
    "l": {"L": [{"S": "x"}, {"N": "1"}, {"L": []}, {"M": {}}]},
}
BINARY = {"b": {"B": b"\x00\xffraw"}, "bs": {"BS": [b"\x01", b"\x02"]}}


def _answers(client: Any) -> list[dict[str, Any]]:
    key = {"pk": {"S": "job"}, "sk": {"S": "FILE#1"}}
    binary_key = {"pk": {"S": "job"}, "sk": {"S": "FILE#2"}}
    answers = [
        client.get_item(TableName=TABLE, Key=key),
        client.get_item(TableName=TABLE, Key=binary_key),
        client.get_item(TableName=TABLE, Key={"pk": {"S": "no"}, "sk": {"S": "such"}}),
        client.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "job"}},
            ConsistentRead=True,
            Limit=1,
        ),
        client.scan(TableName=TABLE),
        client.batch_get_item(RequestItems={TABLE: {"Keys": [key, binary_key]}}),
    ]
    for answer in answers:
        answer.pop("ResponseMetadata")
    return answers


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    offline_aws(monkeypatch)
    with mock_aws():
        ddb = boto3.client("dynamodb")
        create_pk_sk_table(ddb, TABLE)
        ddb.put_item(TableName=TABLE, Item={**EVERY_TYPE, "sk": {"S": "FILE#1"}})
        ddb.put_item(TableName=TABLE, Item={**EVERY_TYPE, **BINARY, "sk": {"S": "FILE#2"}})
        yield ddb


def test_item_reads_answer_the_same_as_through_motos_serializer(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = _answers(client)
    through_serializer: list[str] = []
    original = moto_hooks._original_execute_result

    def serializer(self: Any, context: Any) -> Any:
        through_serializer.append(context.operation_model.name)
        return original(self, context)

    monkeypatch.setattr(moto_hooks, "_original_execute_result", serializer)
    monkeypatch.setattr(DynamoResult, "execute_result", moto_hooks._execute_dynamo_result)
    fast = _answers(client)
    assert fast == slow
    # Only the answers holding a binary attribute went through the serializer.
    assert through_serializer == ["GetItem", "Scan", "BatchGetItem"]
    # The query paged as moto pages it, and the binary item came back decoded.
    assert "LastEvaluatedKey" in fast[3]
    assert fast[1]["Item"]["b"] == {"B": b"\x00\xffraw"}


def _conditional_writes(client: Any) -> list[str]:
    """Each write's outcome: "ok" or its error code, twice over each expression."""

    def put(sk: str, condition: str, values: dict[str, Any] | None = None, **extra: Any) -> str:
        kwargs: dict[str, Any] = {
            "TableName": TABLE,
            "Item": {"pk": {"S": "c"}, "sk": {"S": sk}, "n": {"N": "1"}},
            "ConditionExpression": condition,
            **extra,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        try:
            client.put_item(**kwargs)
        except client.exceptions.ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "ok"

    def transact(sks: list[str], run: str) -> str:
        items = [
            {
                "Put": {
                    "TableName": TABLE,
                    "Item": {"pk": {"S": "c"}, "sk": {"S": sk}, "run": {"S": run}},
                    "ConditionExpression": "attribute_not_exists(#r) OR #r <> :run",
                    "ExpressionAttributeNames": {"#r": "run"},
                    "ExpressionAttributeValues": {":run": {"S": run}},
                }
            }
            for sk in sks
        ]
        try:
            client.transact_write_items(TransactItems=items)
        except client.exceptions.ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "ok"

    return [
        put("1", "attribute_not_exists(sk)"),
        put("1", "attribute_not_exists(sk)"),
        put("2", "attribute_not_exists(sk)"),
        put("1", "n = :v", {":v": {"N": "1"}}),
        put("1", "n = :v", {":v": {"N": "2"}}),
        put("1", "n = :v", {":v": {"N": "1"}}),
        # An unused name is refused, from a parse and from a parsed tree alike.
        put("3", "attribute_not_exists(sk)", ExpressionAttributeNames={"#x": "x"}),
        put("3", "attribute_not_exists(sk)", ExpressionAttributeNames={"#x": "x"}),
        transact(["a", "b", "c"], "r1"),
        transact(["c", "d"], "r2"),
        transact(["d", "e"], "r2"),  # d is r2's already: the whole transaction fails
        transact(["e", "f"], "r3"),
    ]


def test_conditions_parsed_once_decide_every_write_as_parsed_each_time(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ConditionExpressionParser, "parse", moto_hooks._original_parse)
    each_time = _conditional_writes(client)
    client.delete_table(TableName=TABLE)
    create_pk_sk_table(client, TABLE)

    parses: list[str | None] = []
    parse = moto_hooks._original_parse

    def counted(self: ConditionExpressionParser) -> Any:
        parses.append(self.condition_expression)
        return parse(self)

    monkeypatch.setattr(moto_hooks, "_original_parse", counted)
    monkeypatch.setattr(moto_hooks, "_PARSED", {})
    monkeypatch.setattr(ConditionExpressionParser, "parse", moto_hooks._parse_once)
    once = _conditional_writes(client)
    assert once == each_time
    assert each_time.count("ok") >= 6 and "ConditionalCheckFailedException" in each_time
    assert "TransactionCanceledException" in each_time and "ValidationException" in each_time
    # The transaction's expression, checked for 9 items (twice each), was parsed once.
    assert parses.count("attribute_not_exists(#r) OR #r <> :run") == 3  # one per :run
