"""The thumbnail function's logic against in-memory buckets: events, keys, errors."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote_plus

import pytest
from botocore.exceptions import ClientError
from PIL import Image

from darkroom.aws.image_buckets import SourceMissing
from darkroom.imaging.fixtures import images as fx
from darkroom.observability import logger
from darkroom.thumbnail_service import ThumbnailService

INPUT, OUTPUT = "in-bucket", "out-bucket"


class MemoryBuckets:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.reads: list[tuple[str, str]] = []
        self.fail_next: Exception | None = None

    def download(self, bucket: str, key: str, dest: IO[bytes]) -> int:
        self.reads.append((bucket, key))
        if self.fail_next is not None:
            raise self.fail_next
        if (bucket, key) not in self.objects:
            raise SourceMissing(key)
        data = self.objects[(bucket, key)][0]
        dest.write(data)
        dest.flush()
        dest.seek(0)
        return len(data)

    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        _fits_s3(key, "PutObject")
        self.objects[(bucket, key)] = (data, content_type)

    def delete(self, bucket: str, keys: Sequence[str]) -> None:
        for key in keys:
            _fits_s3(key, "DeleteObjects")
            self.objects.pop((bucket, key), None)

    def output(self) -> dict[str, tuple[bytes, str]]:
        return {key: value for (bucket, key), value in self.objects.items() if bucket == OUTPUT}


def _fits_s3(key: str, operation: str) -> None:
    if len(key.encode()) > 1024:
        error = {"Code": "KeyTooLongError", "Message": "Your key is too long"}
        raise ClientError({"Error": error}, operation)


class ListRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def thumbnailed(self, count: int, megapixels: float, milliseconds: float) -> None:
        self.events.append(("thumbnailed", count, megapixels))

    def failed(self, reason: str) -> None:
        self.events.append(("failed", reason))

    def removed(self) -> None:
        self.events.append(("removed",))


def s3_event(event_name: str, key: str, bucket: str = INPUT) -> dict[str, Any]:
    """What S3 sends: the key form-encoded (spaces as '+')."""
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": event_name,
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": 1}},
            }
        ]
    }


@pytest.fixture
def buckets() -> MemoryBuckets:
    return MemoryBuckets()


@pytest.fixture
def recorder() -> ListRecorder:
    return ListRecorder()


@pytest.fixture
def service(buckets: MemoryBuckets, recorder: ListRecorder) -> ThumbnailService:
    return ThumbnailService(
        buckets,
        output_bucket=OUTPUT,
        sizes=(64, 256),
        max_image_pixels=10_000_000,
        recorder=recorder,
    )


def photo() -> bytes:
    return fx.encoded(fx.quadrants(600, 400), "JPEG")


def translucent() -> bytes:
    image = fx.quadrants(600, 400).convert("RGBA")
    image.putalpha(128)
    return fx.encoded(image, "PNG")


def test_a_created_image_gets_every_size_in_the_output_bucket(
    buckets: MemoryBuckets, recorder: ListRecorder, service: ThumbnailService
) -> None:
    key = "shoots/day one/IMG 1+2.jpg"
    buckets.put(INPUT, key, photo(), "image/jpeg")
    (outcome,) = service.handle(s3_event("ObjectCreated:Put", key))
    assert outcome.action == "thumbnailed"
    expected = {f"thumbnails/{key}/64.jpg", f"thumbnails/{key}/256.jpg"}
    assert set(buckets.output()) == expected
    assert set(outcome.thumbnails) == expected
    data, content_type = buckets.output()[f"thumbnails/{key}/256.jpg"]
    assert content_type == "image/jpeg"
    assert Image.open(io.BytesIO(data)).size == (256, 171)
    assert recorder.events == [("thumbnailed", 2, pytest.approx(0.24))]


def test_it_never_reads_the_output_bucket(
    buckets: MemoryBuckets, service: ThumbnailService
) -> None:
    buckets.put(INPUT, "a.jpg", photo(), "image/jpeg")
    service.handle(s3_event("ObjectCreated:Put", "a.jpg"))
    service.handle(s3_event("ObjectRemoved:Delete", "a.jpg"))
    assert all(bucket == INPUT for bucket, _ in buckets.reads)


def test_the_same_event_twice_gives_the_same_objects(
    buckets: MemoryBuckets, service: ThumbnailService
) -> None:
    buckets.put(INPUT, "twice.png", translucent(), "image/png")
    event = s3_event("ObjectCreated:Put", "twice.png")
    service.handle(event)
    first = buckets.output()
    service.handle(event)
    assert buckets.output() == first
    assert {key.rsplit(".", 1)[1] for key in first} == {"webp"}


def test_a_removed_source_loses_its_thumbnails(
    buckets: MemoryBuckets, recorder: ListRecorder, service: ThumbnailService
) -> None:
    buckets.put(INPUT, "gone.jpg", photo(), "image/jpeg")
    buckets.put(OUTPUT, "thumbnails/other.jpg/64.jpg", b"keep", "image/jpeg")
    service.handle(s3_event("ObjectCreated:Put", "gone.jpg"))
    (outcome,) = service.handle(s3_event("ObjectRemoved:Delete", "gone.jpg"))
    assert outcome.action == "removed"
    assert set(buckets.output()) == {"thumbnails/other.jpg/64.jpg"}
    assert recorder.events[-1] == ("removed",)


def test_a_replacement_that_gains_transparency_leaves_no_stale_jpegs(
    buckets: MemoryBuckets, service: ThumbnailService
) -> None:
    buckets.put(INPUT, "logo", photo(), "image/jpeg")
    service.handle(s3_event("ObjectCreated:Put", "logo"))
    buckets.put(INPUT, "logo", translucent(), "image/png")
    service.handle(s3_event("ObjectCreated:Put", "logo"))
    assert set(buckets.output()) == {"thumbnails/logo/64.webp", "thumbnails/logo/256.webp"}


def test_a_bad_file_is_one_log_line_and_a_metric_not_an_exception(
    buckets: MemoryBuckets,
    recorder: ListRecorder,
    service: ThumbnailService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = "notes/read me.jpg"
    buckets.put(INPUT, key, b"this is a text file, not a photo\n", "image/jpeg")
    (outcome,) = service.handle(s3_event("ObjectCreated:Put", key))
    assert (outcome.action, outcome.reason) == ("failed", "not_an_image")
    assert buckets.output() == {}
    assert recorder.events == [("failed", "not_an_image")]
    (line,) = [record for record in caplog.records if record.levelname == "WARNING"]
    assert (getattr(line, "key", None), getattr(line, "reason", None)) == (key, "not_an_image")
    assert logger.get_correlation_id() == key


def test_a_source_replaced_by_a_bad_file_loses_its_old_thumbnails(
    buckets: MemoryBuckets, service: ThumbnailService
) -> None:
    buckets.put(INPUT, "p.jpg", photo(), "image/jpeg")
    service.handle(s3_event("ObjectCreated:Put", "p.jpg"))
    buckets.put(INPUT, "p.jpg", photo()[:2000], "image/jpeg")
    (outcome,) = service.handle(s3_event("ObjectCreated:Put", "p.jpg"))
    assert outcome.reason == "truncated"
    assert buckets.output() == {}


def test_a_key_too_long_for_its_thumbnails_fails_that_file_by_name_and_is_not_retried(
    buckets: MemoryBuckets, recorder: ListRecorder, service: ThumbnailService
) -> None:
    # S3 holds the source (1,011 bytes of key) but not "thumbnails/<key>/256.webp".
    key = "shoots/" + "é" * 500 + ".jpg"
    assert 1000 <= len(key.encode()) <= 1024
    buckets.put(INPUT, key, photo(), "image/jpeg")
    (outcome,) = service.handle(s3_event("ObjectCreated:Put", key))
    assert (outcome.action, outcome.reason) == ("failed", "key_too_long")
    assert outcome.detail is not None and "1024" in outcome.detail
    assert buckets.reads == [] and buckets.output() == {}
    assert recorder.events == [("failed", "key_too_long")]
    (removed,) = service.handle(s3_event("ObjectRemoved:Delete", key))
    assert removed.action == "removed"
    # A key just short enough still gets every thumbnail.
    fits = "p" * (1024 - len("thumbnails//256.webp"))
    buckets.put(INPUT, fits, photo(), "image/jpeg")
    (outcome,) = service.handle(s3_event("ObjectCreated:Put", fits))
    assert outcome.action == "thumbnailed"


def test_a_source_deleted_before_it_was_read_is_skipped(service: ThumbnailService) -> None:
    (outcome,) = service.handle(s3_event("ObjectCreated:Put", "vanished.jpg"))
    assert outcome.action == "skipped"


def test_folder_markers_are_skipped(buckets: MemoryBuckets, service: ThumbnailService) -> None:
    buckets.put(INPUT, "shoots/", b"", "application/x-directory")
    (outcome,) = service.handle(s3_event("ObjectCreated:Put", "shoots/"))
    assert outcome.action == "skipped"
    assert buckets.reads == []


def test_a_transient_s3_error_is_raised_for_lambda_to_retry(
    buckets: MemoryBuckets, recorder: ListRecorder, service: ThumbnailService
) -> None:
    buckets.put(INPUT, "a.jpg", photo(), "image/jpeg")
    buckets.fail_next = ClientError(
        {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}},
        "GetObject",
    )
    with pytest.raises(ClientError):
        service.handle(s3_event("ObjectCreated:Put", "a.jpg"))
    assert recorder.events == []


def slow_down(operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, operation
    )


def test_a_transient_s3_error_writing_a_thumbnail_is_raised_for_lambda_to_retry(
    buckets: MemoryBuckets,
    recorder: ListRecorder,
    service: ThumbnailService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buckets.put(INPUT, "a.jpg", photo(), "image/jpeg")

    def put(bucket: str, key: str, data: bytes, content_type: str) -> None:
        raise slow_down("PutObject")

    monkeypatch.setattr(buckets, "put", put)
    with pytest.raises(ClientError):
        service.handle(s3_event("ObjectCreated:Put", "a.jpg"))
    assert recorder.events == []


def test_a_transient_s3_error_deleting_thumbnails_is_raised_for_lambda_to_retry(
    buckets: MemoryBuckets,
    recorder: ListRecorder,
    service: ThumbnailService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buckets.put(INPUT, "a.jpg", photo(), "image/jpeg")
    service.handle(s3_event("ObjectCreated:Put", "a.jpg"))
    made = buckets.output()

    def delete(bucket: str, keys: Sequence[str]) -> None:
        raise slow_down("DeleteObjects")

    monkeypatch.setattr(buckets, "delete", delete)
    with pytest.raises(ClientError):
        service.handle(s3_event("ObjectRemoved:Delete", "a.jpg"))
    assert buckets.output() == made
    assert ("removed",) not in recorder.events


def test_keys_s3_fails_to_delete_are_raised_not_logged() -> None:
    """DeleteObjects answers 200 even when some keys failed: the buckets must look inside."""
    from darkroom.aws.image_buckets import ImageBuckets

    class PartlyFailingS3:
        def delete_objects(self, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:
            first = Delete["Objects"][0]["Key"]
            return {"Errors": [{"Key": first, "Code": "InternalError", "Message": "retry"}]}

    service = ThumbnailService(
        ImageBuckets(PartlyFailingS3()),
        output_bucket=OUTPUT,
        sizes=(64,),
        max_image_pixels=1_000_000,
        recorder=ListRecorder(),
    )
    with pytest.raises(RuntimeError, match=re.escape("thumbnails/a.jpg/64.jpg: InternalError")):
        service.handle(s3_event("ObjectRemoved:Delete", "a.jpg"))


def test_every_record_of_an_event_is_handled(
    buckets: MemoryBuckets, service: ThumbnailService
) -> None:
    buckets.put(INPUT, "one.jpg", photo(), "image/jpeg")
    buckets.put(INPUT, "two.jpg", b"", "image/jpeg")
    event = s3_event("ObjectCreated:Put", "one.jpg")
    event["Records"] += s3_event("ObjectCreated:Put", "two.jpg")["Records"]
    outcomes = service.handle(event)
    assert [(o.key, o.action, o.reason) for o in outcomes] == [
        ("one.jpg", "thumbnailed", None),
        ("two.jpg", "failed", "empty_file"),
    ]
    assert json.dumps([o.as_dict() for o in outcomes])


def test_misconfiguration_fails_at_start_up(buckets: MemoryBuckets) -> None:
    with pytest.raises(ValueError):
        ThumbnailService(buckets, output_bucket=OUTPUT, sizes=(0,), max_image_pixels=1)
    with pytest.raises(ValueError):
        ThumbnailService(buckets, output_bucket="", sizes=(64,), max_image_pixels=1)


# -- the S3 adapter, against moto in-process -----------------------------------------------
def test_the_s3_store_streams_writes_and_deletes_idempotently(tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws

    from darkroom.aws.image_buckets import ImageBuckets

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in (INPUT, OUTPUT):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=INPUT, Key="a b+c.jpg", Body=photo())
        real = ImageBuckets(s3)
        with (tmp_path / "scratch").open("w+b") as scratch:
            assert real.download(INPUT, "a b+c.jpg", scratch) == len(photo())
            assert scratch.read() == photo()
            with pytest.raises(SourceMissing):
                real.download(INPUT, "missing.jpg", scratch)
        real.put(OUTPUT, "thumbnails/a b+c.jpg/64.jpg", b"x", "image/jpeg")
        head = s3.head_object(Bucket=OUTPUT, Key="thumbnails/a b+c.jpg/64.jpg")
        assert head["ContentType"] == "image/jpeg"
        real.delete(OUTPUT, ["thumbnails/a b+c.jpg/64.jpg", "thumbnails/never/64.webp"])
        assert s3.list_objects_v2(Bucket=OUTPUT).get("KeyCount") == 0


# -- the real handler: EMF metrics on stdout ------------------------------------------------
def emf_documents(stdout: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in stdout.splitlines()
        if line.startswith("{") and '"_aws"' in line
    ]


def metric_values(document: dict[str, Any]) -> dict[str, list[float]]:
    """Each metric's values (Powertools writes a list, which EMF allows, even for one)."""
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    values = {metric["Name"]: document[metric["Name"]] for metric in directive["Metrics"]}
    return {name: value if isinstance(value, list) else [value] for name, value in values.items()}


def test_the_handler_publishes_what_it_made_and_why_a_file_failed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib
    import sys
    import threading

    import boto3
    from moto import mock_aws

    from darkroom import names
    from darkroom.aws import clients
    from darkroom.settings import env_key
    from tests.moto_config import offline_aws

    offline_aws(monkeypatch, "us-east-1")
    monkeypatch.setenv(env_key("output_bucket"), OUTPUT)
    monkeypatch.setenv(env_key("thumbnail_sizes"), "64,256")
    # The handler's cached S3 client is made inside the mock and dropped with it.
    monkeypatch.setattr(clients, "_local", threading.local())
    good, bad = "shoot/IMG 1.jpg", "shoot/read me.jpg"
    event = s3_event("ObjectCreated:Put", good)
    event["Records"] += s3_event("ObjectCreated:Put", bad)["Records"]

    class Context:
        function_name = names.Function.THUMBNAIL
        memory_limit_in_mb = 1024
        invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        aws_request_id = "req-1"

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in (INPUT, OUTPUT):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=INPUT, Key=good, Body=photo())
        s3.put_object(Bucket=INPUT, Key=bad, Body=b"this is a text file, not a photo\n")
        sys.modules.pop("tasks.thumbnail", None)
        try:
            handler = importlib.import_module("tasks.thumbnail").handler
            capsys.readouterr()  # only what the invocation prints
            result = handler(event, Context())
        finally:
            sys.modules.pop("tasks.thumbnail", None)
        written = {o["Key"] for o in s3.list_objects_v2(Bucket=OUTPUT).get("Contents", [])}

    assert [(r["key"], r["action"], r["reason"]) for r in result["results"]] == [
        (good, "thumbnailed", None),
        (bad, "failed", "not_an_image"),
    ]
    assert written == {f"thumbnails/{good}/64.jpg", f"thumbnails/{good}/256.jpg"}
    documents = emf_documents(capsys.readouterr().out)
    made = [d for d in documents if "ThumbnailsMade" in metric_values(d)]
    failures = [d for d in documents if "ThumbnailFailures" in metric_values(d)]
    assert len(made) == 1 and len(failures) == 1, documents
    values = metric_values(made[0])
    assert values["ThumbnailsMade"] == [2]
    assert values["SourceMegapixels"] == [pytest.approx(0.24)]
    (duration,) = values["ThumbnailDuration"]
    assert duration > 0
    assert made[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Darkroom"
    # The reason is a dimension of the failure's own document only.
    (failure_dimensions,) = failures[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert "reason" in failure_dimensions and failures[0]["reason"] == "not_an_image"
    assert metric_values(failures[0]) == {"ThumbnailFailures": [1]}
    assert "reason" not in made[0]
