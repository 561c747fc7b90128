"""The local cloud's DynamoDB transactions: all or nothing, as in AWS, without moto's copy
of every table a transaction names (which made a 5,000-file job's transactions cost
seconds each)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends

from darkroom.local import moto_hooks
from tests.moto_config import create_pk_sk_table, offline_aws

TABLE = "jobs"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    offline_aws(monkeypatch)
    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", moto_hooks._transact_write_items)
    with mock_aws():
        client = boto3.client("dynamodb")
        create_pk_sk_table(client, TABLE)
        client.put_item(TableName=TABLE, Item=_item("JOB", n=1))
        yield client


def _item(sk: str, **numbers: int) -> dict[str, Any]:
    return {"pk": {"S": "j1"}, "sk": {"S": sk}} | {k: {"N": str(v)} for k, v in numbers.items()}


def _key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "j1"}, "sk": {"S": sk}}


def _items(client: Any) -> dict[str, dict[str, Any]]:
    found = client.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "j1"}},
    )["Items"]
    return {i["sk"]["S"]: i for i in found}


def _bump_job() -> dict[str, Any]:
    return {
        "Update": {
            "TableName": TABLE,
            "Key": _key("JOB"),
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        }
    }


def test_a_transaction_that_succeeds_writes_every_item(ddb: Any) -> None:
    ddb.transact_write_items(
        TransactItems=[_bump_job(), {"Put": {"TableName": TABLE, "Item": _item("FILE#a", v=1)}}]
    )
    items = _items(ddb)
    assert items["JOB"]["n"] == {"N": "2"}
    assert items["FILE#a"]["v"] == {"N": "1"}


def test_a_cancelled_transaction_leaves_every_item_as_it_was(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item=_item("FILE#old", v=7))
    table = dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE]
    with pytest.raises(ClientError) as raised:
        ddb.transact_write_items(
            TransactItems=[
                _bump_job(),
                {"Put": {"TableName": TABLE, "Item": _item("FILE#new", v=1)}},
                {"Delete": {"TableName": TABLE, "Key": _key("FILE#old")}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": _key("FILE#missing"),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    items = _items(ddb)
    assert set(items) == {"JOB", "FILE#old"}
    assert items["JOB"]["n"] == {"N": "1"}
    assert items["FILE#old"]["v"] == {"N": "7"}
    # Rolled back in place: the table was not swapped for a copy.
    assert dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE] is table
    assert "__deepcopy__" not in vars(table)


def test_two_operations_on_one_item_are_refused_and_nothing_is_written(ddb: Any) -> None:
    with pytest.raises(ClientError) as raised:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": _item("FILE#a", v=1)}},
                {"Put": {"TableName": TABLE, "Item": _item("FILE#a", v=2)}},
            ]
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert set(_items(ddb)) == {"JOB"}
