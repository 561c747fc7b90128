"""The big-job benchmark's arithmetic: item sizes and write units by DynamoDB's rules, the
developing span and the overhead per file, and the targets it marks met."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from benchmarks.big_job import json_item_bytes, overhead_per_file_ms, targets, union_seconds
from benchmarks.ddb_meter import WriteMeter, item_size, number_size, summary, write_units


@pytest.mark.parametrize(
    ("number", "size"),
    [("0", 2), ("7", 2), ("12", 2), ("123", 3), ("-123.45", 4), ("1000", 2), ("0.001", 2)],
)
def test_a_number_takes_a_byte_per_two_significant_digits_plus_one(number: str, size: int) -> None:
    assert number_size(number) == size


def test_an_item_counts_its_names_and_values() -> None:
    item = {
        "id": {"S": "abc"},  # 2 + 3
        "n": {"N": "12345"},  # 1 + 4
        "ok": {"BOOL": True},  # 2 + 1
        "none": {"NULL": True},  # 4 + 1
        "tags": {"SS": ["a", "bb"]},  # 4 + 3
        "l": {"L": [{"S": "xy"}, {"N": "1"}]},  # 1 + 3 + (1 + 2) + (1 + 2)
        "m": {"M": {"k": {"S": "v"}}},  # 1 + 3 + (1 + 1 + 1)
        "empty": {"M": {}},  # 5 + 3
        "b": {"B": b"\x00\x01\x02"},  # 1 + 3
        "é": {"S": "é"},  # 2 + 2
    }
    assert item_size(item) == 5 + 5 + 3 + 5 + 7 + 10 + 7 + 8 + 4 + 4
    assert item_size(None) == 0


def test_write_units_are_the_larger_image_in_started_kilobytes() -> None:
    assert write_units(0, 0) == 1  # a write to nothing still costs a unit
    assert write_units(0, 1024) == 1
    assert write_units(0, 1025) == 2
    assert write_units(3000, 100) == 3  # an update that shrinks an item bills its old size
    assert write_units(100, 3000, transactional=True) == 6


def test_the_meter_bills_moto_s_writes_by_item_size() -> None:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        meter = WriteMeter()
        big = "x" * 1500
        with meter.installed():
            ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "v": {"S": big}})
            ddb.update_item(
                TableName="t",
                Key={"pk": {"S": "a"}},
                UpdateExpression="SET v = :v",
                ExpressionAttributeValues={":v": {"S": "small"}},
            )
            with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
                ddb.put_item(
                    TableName="t",
                    Item={"pk": {"S": "a"}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "t", "Item": {"pk": {"S": "b"}, "v": {"S": big}}}},
                    {"ConditionCheck": {
                        "TableName": "t",
                        "Key": {"pk": {"S": "a"}},
                        "ConditionExpression": "attribute_exists(pk)",
                    }},
                ]
            )  # fmt: skip
            ddb.delete_item(TableName="t", Key={"pk": {"S": "b"}})
        # After uninstalling, writes are no longer billed.
        ddb.put_item(TableName="t", Item={"pk": {"S": "c"}})
        writes = meter.take()

    # 2 + 1 + 1 + 1500 = 1504 bytes: 2 units; the update bills the larger, old image.
    assert [(w.operation, w.units) for w in writes] == [
        ("PutItem", 2),
        ("UpdateItem", 2),
        ("PutItem", 1),  # a failed condition is billed
        ("TransactWriteItems", 4),
        ("TransactWriteItems", 2),  # the condition check, on the 9-byte item
        ("DeleteItem", 2),
    ]
    totals = summary(writes)
    assert totals["units"] == 13
    assert totals["units_by_operation"]["TransactWriteItems"] == 6
    assert totals["units_by_table"] == {"t": 13}


def test_developing_is_the_union_of_the_workers_intervals_within_the_job() -> None:
    # Two shards overlapping from 15 to 20, a third after a gap, one sticking out.
    intervals = [(10.0, 20.0), (15.0, 30.0), (40.0, 50.0), (95.0, 120.0)]
    assert union_seconds(intervals, 0.0, 100.0) == pytest.approx(20 + 10 + 5)
    assert union_seconds([], 0.0, 100.0) == 0.0
    assert union_seconds([(1.0, 2.0), (1.2, 1.5)], 0.0, 10.0) == pytest.approx(1.0)


def test_overhead_per_file_is_the_wall_time_not_developing_over_the_files() -> None:
    assert overhead_per_file_ms(wall=130.0, developing=100.0, files=5000) == pytest.approx(6.0)
    assert overhead_per_file_ms(wall=30.0, developing=6.0, files=10) == pytest.approx(2400.0)


def test_an_item_s_bound_is_its_wire_form_as_json() -> None:
    assert json_item_bytes({"pk": {"S": "é"}}) == len('{"pk": {"S": "é"}}'.encode())


def _row(
    files: int, overhead: float, item: int, response: int, rss: int, status: str = "DONE"
) -> dict[str, object]:
    return {
        "files": files,
        "status": status,
        "overhead_ms_per_file": overhead,
        "largest_item": {"json_bytes": item},
        "largest_response": {"bytes": response, "errors": []},
        "worker_peak_rss_bytes": rss,
    }


def test_targets_are_judged_where_the_issue_sets_them() -> None:
    rows = [
        _row(100, 300.0, 2000, 30_000, 200 * 2**20),
        _row(5000, 19.0, 3000, 900_000, 230 * 2**20),
    ]
    assert [t["met"] for t in targets(rows)] == [True, True, True, False]
    # Without a 5,000-file row the overhead target is not measured, not met.
    assert targets(rows[:1])[0]["met"] is None
    assert targets(rows[:1])[3]["met"] is None
    # A 5,000-file job that failed before any worker ran is not a flat memory.
    failed = [rows[0], _row(5000, 0.0, 3000, 900_000, 0, status="FAILED")]
    assert targets(failed)[0]["met"] is None
    assert targets(failed)[3]["met"] is None
