"""The one reading of S3 event notifications, as the thumbnail function and the
orchestrator both see them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

import pytest

from darkroom import pipeline
from darkroom.s3_events import ObjectChange, object_changes


def record(event_name: str, key: str, bucket: str = "in", **obj: Any) -> dict[str, Any]:
    """One record as S3 sends it: the key form-encoded (spaces as '+', '+' as %2B)."""
    return {
        "eventSource": "aws:s3",
        "eventName": event_name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), **obj}},
    }


@pytest.mark.parametrize(
    "key",
    ["a b/c d.jpg", "plus+sign.jpg", "été/ünïcode 写真.jpg", "100%.png", "a+b c%2B.dng"],
)
def test_keys_are_url_decoded(key: str) -> None:
    (change,) = object_changes({"Records": [record("ObjectCreated:Put", key)]})
    assert change == ObjectChange(created=True, bucket="in", key=key)


def test_created_and_removed_with_the_size_when_the_record_has_one() -> None:
    event = {
        "Records": [
            record("ObjectCreated:CompleteMultipartUpload", "big.dng", size=123_456),
            record("ObjectRemoved:Delete", "gone.jpg"),
            record("ObjectRemoved:DeleteMarkerCreated", "hidden.jpg", bucket="other"),
        ]
    }
    assert object_changes(event) == [
        ObjectChange(True, "in", "big.dng", 123_456),
        ObjectChange(False, "in", "gone.jpg", None),
        ObjectChange(False, "other", "hidden.jpg", None),
    ]


def test_other_events_and_incomplete_records_are_left_out() -> None:
    restore = record("ObjectRestore:Completed", "x.jpg")
    no_key = record("ObjectCreated:Put", "")
    no_bucket = {"eventName": "ObjectCreated:Put", "s3": {"object": {"key": "x.jpg"}}}
    assert object_changes({"Records": [restore, no_key, no_bucket]}) == []
    assert object_changes({"Records": []}) == []
    assert object_changes({"Event": "s3:TestEvent"}) == []


def test_the_orchestrator_takes_only_created_manifests_in_the_raw_bucket() -> None:
    event = {
        "Records": [
            record("ObjectCreated:Put", "raw/j1/manifest.json", bucket="raw"),
            record("ObjectCreated:Put", "raw/j1/manifest.json", bucket="raw"),
            record("ObjectCreated:Put", "raw/j2/manifest.json", bucket="raw"),
            record("ObjectRemoved:Delete", "raw/j3/manifest.json", bucket="raw"),
            record("ObjectCreated:Put", "raw/j4/manifest.json", bucket="elsewhere"),
            record("ObjectCreated:Put", "raw/j5/IMG 1+2.dng", bucket="raw"),
            record("ObjectCreated:Put", "raw/j 6/manifest.json", bucket="raw"),
        ]
    }
    assert pipeline.manifest_job_ids(event, "raw") == ["j1", "j2"]
