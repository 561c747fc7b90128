"""The local cloud's S3 version listings: what ListObjectVersions answers is moto's own,
without a copy of every stored body in the bucket on each call."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.s3 import models as s3_models

from darkroom.local import moto_hooks
from tests.moto_config import offline_aws

BUCKET = "darkroom-raw"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    offline_aws(monkeypatch)
    monkeypatch.setattr(s3_models, "copy", moto_hooks._CopyForS3Listings())
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        yield client


def test_a_version_listing_is_moto_s_answer_and_copies_no_body(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = {}
    for n in range(3):
        body = bytes([n]) * 200_000
        version = s3.put_object(Bucket=BUCKET, Key="raw/j1/A.dng", Body=body)["VersionId"]
        bodies[version] = body
    s3.put_object(Bucket=BUCKET, Key="raw/j2/B.dng", Body=b"other job")
    s3.put_object(Bucket=BUCKET, Key="raw/j1/gone.dng", Body=b"deleted")
    s3.delete_object(Bucket=BUCKET, Key="raw/j1/gone.dng")
    restored = []
    monkeypatch.setattr(
        s3_models.FakeKey, "__setstate__", lambda self, state: restored.append(self)
    )

    listed = s3.list_object_versions(Bucket=BUCKET, Prefix="raw/j1/")
    gc.collect()  # the listing's keys are gone: the stored ones must not be closed

    versions = listed["Versions"]
    assert [v["Key"] for v in versions] == ["raw/j1/A.dng"] * 3 + ["raw/j1/gone.dng"]
    assert [v["IsLatest"] for v in versions] == [True, False, False, False]
    assert {v["VersionId"] for v in versions[:3]} == set(bodies)
    assert [m["Key"] for m in listed["DeleteMarkers"]] == ["raw/j1/gone.dng"]
    assert restored == []  # no key was copied through pickling, body and all
    for version, body in bodies.items():
        got = s3.get_object(Bucket=BUCKET, Key="raw/j1/A.dng", VersionId=version)
        assert got["Body"].read() == body
