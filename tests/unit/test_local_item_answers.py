"""The local cloud answers DynamoDB item reads with the items as JSON, rather than
through moto's shape-by-shape serializer (10 ms an item): the same answers, to the byte
of every attribute, for every attribute type."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
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
