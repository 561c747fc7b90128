"""The table adapter: plain values in and out, pages, and what DynamoDB's errors become."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from darkroom import names
from darkroom.aws.table import ConditionFailed, Table, create_request
from darkroom.errors import TransientError
from tests.moto_config import offline_aws

REGION = "us-east-1"


@pytest.fixture
def ddb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    offline_aws(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(**create_request(names.JOBS_SCHEMA, "jobs"))
        yield client


def test_values_go_in_and_come_out_as_plain_python(ddb: Any) -> None:
    table = Table("jobs", names.JOBS_SCHEMA, ddb)
    key = table.key("j1", "JOB")
    table.put({**key, "recipe": {"ev": 0.5, "sizes": [400, 2048]}, "name": None})
    assert table.get(key) == {**key, "recipe": {"ev": 0.5, "sizes": [400, 2048]}, "name": None}
    assert table.get(table.key("j2", "JOB")) is None


def test_put_new_and_a_failed_update_condition_raise_condition_failed(ddb: Any) -> None:
    table = Table("jobs", names.JOBS_SCHEMA, ddb)
    key = table.key("j1", "JOB")
    table.put_new({**key, "n": 1})
    with pytest.raises(ConditionFailed):
        table.put_new({**key, "n": 2})
    after = table.update(key, "SET n = n + :one", condition="n = :n", values={":one": 1, ":n": 1})
    assert after == {**key, "n": 2}
    with pytest.raises(ConditionFailed):
        table.update(key, "SET n = :x", condition="n = :n", values={":x": 9, ":n": 1})
    assert table.get(key) == {**key, "n": 2}


def test_a_table_with_a_sort_key_needs_both_parts_of_a_key() -> None:
    table = Table("jobs", names.JOBS_SCHEMA, ddb=object())
    assert table.key("j1", "JOB") == {"job_id": "j1", "sk": "JOB"}
    with pytest.raises(ValueError, match="sort key"):
        table.key("j1")


def test_queries_and_scans_read_every_page(ddb: Any) -> None:
    table = Table("jobs", names.JOBS_SCHEMA, ddb)
    for i in range(7):
        table.put({**table.key("j1", f"FILE#{i}"), "i": i})
    table.put({**table.key("j2", "JOB")})
    files = table.query(
        "job_id = :j AND begins_with(sk, :file)",
        values={":j": "j1", ":file": "FILE#"},
        page_size=2,
        descending=True,
    )
    assert [item["i"] for item in files] == [6, 5, 4, 3, 2, 1, 0]
    assert len(list(table.scan())) == 8


def test_get_many_reads_the_keys_that_exist(ddb: Any) -> None:
    table = Table("jobs", names.JOBS_SCHEMA, ddb)
    for job_id in ("a", "b"):
        table.put({**table.key(job_id, "JOB"), "n": 1})
    keys = [table.key(job_id, "JOB") for job_id in ("a", "b", "c")]
    assert sorted(item["job_id"] for item in table.get_many(keys)) == ["a", "b"]
    assert table.get_many([]) == []


def test_the_listing_index_holds_only_items_with_an_entity(ddb: Any) -> None:
    table = Table("jobs", names.JOBS_SCHEMA, ddb)
    for job_id, created in (("a", "1"), ("b", "2"), ("c", "3")):
        key = table.key(job_id, "JOB")
        table.put({**key, "entity": "JOB", "created_key": f"{created}#{job_id}"})
        table.put({**table.key(job_id, "FILE#x.dng"), "status": "DONE"})
    newest = [i["job_id"] for i in table.newest("JOB", page_size=1)]
    assert newest == ["c", "b", "a"]
    assert [i["job_id"] for i in table.newest("JOB", before="3#c")] == ["b", "a"]
    with pytest.raises(ValueError, match="no listing index"):
        next(Table("workers", names.WORKERS_SCHEMA, ddb).newest("JOB"))


# -- what DynamoDB's errors become ----------------------------------------------------
def _stubbed() -> tuple[Table, Stubber]:
    client = boto3.client(
        "dynamodb",
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return Table("jobs", names.JOBS_SCHEMA, client), Stubber(client)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("RequestLimitExceeded", 400),
        ("LimitExceededException", 400),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
        ("SomethingNew", 502),
    ],
)
def test_throttles_and_server_faults_are_transient(code: str, status: int) -> None:
    table, stub = _stubbed()
    with stub:
        stub.add_client_error("update_item", code, http_status_code=status)
        with pytest.raises(TransientError, match=code):
            table.update(table.key("j", "JOB"), "SET n = :n", values={":n": 1})
        stub.add_client_error("query", code, http_status_code=status)
        with pytest.raises(TransientError):
            list(table.query("job_id = :j", values={":j": "j"}))


def test_a_failed_condition_is_condition_failed_and_other_errors_pass_through() -> None:
    table, stub = _stubbed()
    with stub:
        stub.add_client_error("put_item", "ConditionalCheckFailedException")
        with pytest.raises(ConditionFailed):
            table.put_new({**table.key("j", "JOB")})
        stub.add_client_error("get_item", "ValidationException", http_status_code=400)
        with pytest.raises(Exception) as raised:
            table.get(table.key("j", "JOB"))
        assert not isinstance(raised.value, (TransientError, ConditionFailed))


def test_keys_dynamodb_leaves_unprocessed_are_asked_again_then_transient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("darkroom.aws.table.time.sleep", lambda _: None)
    table, stub = _stubbed()
    key = {"job_id": {"S": "a"}, "sk": {"S": "JOB"}}
    unprocessed = {"jobs": {"Keys": [key], "ConsistentRead": True}}
    with stub:
        stub.add_response("batch_get_item", {"Responses": {}, "UnprocessedKeys": unprocessed})
        stub.add_response("batch_get_item", {"Responses": {"jobs": [{**key, "n": {"N": "1"}}]}})
        assert table.get_many([table.key("a", "JOB")]) == [{"job_id": "a", "sk": "JOB", "n": 1}]
        for _ in range(5):
            stub.add_response("batch_get_item", {"Responses": {}, "UnprocessedKeys": unprocessed})
        with pytest.raises(TransientError, match="unread"):
            table.get_many([table.key("a", "JOB")])
