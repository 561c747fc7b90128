"""Thumbnails end to end on the embedded local cloud: S3 -> the real Lambda -> S3."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote_plus

import pytest
from PIL import Image

from darkroom import names
from darkroom.cli.thumbnail_cmd import drop_demo_images, show_thumbnails
from darkroom.imaging.fixtures import images as fx
from darkroom.local.cloud import LocalCloud

pytestmark = pytest.mark.integration

T = TypeVar("T")
WAIT_SECONDS = 60.0


def wait_for(predicate: Callable[[], T], timeout: float = WAIT_SECONDS) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert value, f"condition not met within {timeout}s"
    return value


def thumbnails_of(s3: Any, key: str) -> dict[str, dict[str, Any]]:
    response = s3.list_objects_v2(Bucket=names.OUTPUT_BUCKET, Prefix=f"thumbnails/{key}/")
    return {item["Key"]: item for item in response.get("Contents", [])}


def has_exactly(s3: Any, key: str, expected: set[str]) -> bool:
    return set(thumbnails_of(s3, key)) == expected


def s3_event(key: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": event_name,
                "s3": {
                    "bucket": {"name": names.INPUT_BUCKET},
                    "object": {"key": quote_plus(key)},
                },
            }
        ]
    }


def invoke(cloud: LocalCloud, event: dict[str, Any]) -> dict[str, Any]:
    response = cloud.client("lambda").invoke(
        FunctionName=names.Function.THUMBNAIL, Payload=json.dumps(event).encode()
    )
    assert "FunctionError" not in response, response["Payload"].read()
    result: dict[str, Any] = json.loads(response["Payload"].read())
    return result


def log_records(cloud: LocalCloud) -> list[dict[str, Any]]:
    path = cloud.state_dir / "logs" / f"{names.Function.THUMBNAIL}.log"
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def test_uploads_get_thumbnails_and_deletes_remove_them(cloud: LocalCloud) -> None:
    s3 = cloud.client("s3")
    translucent = fx.quadrants(900, 600).convert("RGBA")
    translucent.putalpha(160)
    sources = {
        "plain.jpg": (fx.encoded(fx.quadrants(1800, 1200), "JPEG"), "jpg", (1024, 683)),
        "shoot one/photo 1.jpg": (fx.oriented_jpeg(fx.quadrants(1200, 600), 6), "jpg", (1024, 512)),
        "plus+sign.png": (fx.encoded(translucent, "PNG"), "webp", (900, 600)),
        "été/写真 ünï.webp": (fx.encoded(fx.quadrants(600, 900), "WEBP"), "jpg", (600, 900)),
    }
    for key, (data, _, _) in sources.items():
        s3.put_object(Bucket=names.INPUT_BUCKET, Key=key, Body=data)

    for key, (_, extension, large) in sources.items():
        expected = {f"thumbnails/{key}/{size}.{extension}" for size in (256, 1024)}
        wait_for(partial(has_exactly, s3, key, expected))
        body = s3.get_object(Bucket=names.OUTPUT_BUCKET, Key=f"thumbnails/{key}/1024.{extension}")
        assert body["ContentType"] == f"image/{'jpeg' if extension == 'jpg' else 'webp'}"
        assert Image.open(io.BytesIO(body["Body"].read())).size == large

    for key in sources:
        s3.delete_object(Bucket=names.INPUT_BUCKET, Key=key)
    for key in sources:
        wait_for(partial(has_exactly, s3, key, set()))


def test_the_same_event_twice_gives_the_same_objects(cloud: LocalCloud) -> None:
    s3 = cloud.client("s3")
    key = "again/same event.jpg"
    s3.put_object(
        Bucket=names.INPUT_BUCKET, Key=key, Body=fx.encoded(fx.quadrants(1600, 1000), "JPEG")
    )
    wait_for(lambda: len(thumbnails_of(s3, key)) == 2)

    def snapshot() -> dict[str, tuple[str, bytes]]:
        return {
            k: (item["ETag"], s3.get_object(Bucket=names.OUTPUT_BUCKET, Key=k)["Body"].read())
            for k, item in thumbnails_of(s3, key).items()
        }

    first = invoke(cloud, s3_event(key))
    after_first = snapshot()
    second = invoke(cloud, s3_event(key))
    assert first == second
    assert snapshot() == after_first
    assert [r["action"] for r in first["results"]] == ["thumbnailed"]


def test_a_bad_file_gets_no_thumbnail_and_one_log_line_naming_it(cloud: LocalCloud) -> None:
    s3 = cloud.client("s3")
    key = "broken/notes + more.jpg"
    s3.put_object(Bucket=names.INPUT_BUCKET, Key=key, Body=b"a text file, named like a photo\n")

    def failure_lines() -> list[dict[str, Any]]:
        return [r for r in log_records(cloud) if r.get("key") == key and r.get("reason")]

    (line,) = wait_for(failure_lines)
    assert line["reason"] == "not_an_image"
    assert line["level"] == "WARNING"
    assert line["correlation_id"] == key
    assert thumbnails_of(s3, key) == {}
    # A permanent error is a successful invocation: nothing for Lambda to retry.
    result = invoke(cloud, s3_event(key))
    assert result["results"][0]["reason"] == "not_an_image"


def test_the_demo_images_show_up_as_thumbnails(cloud: LocalCloud, tmp_path: Any) -> None:
    s3 = cloud.client("s3")
    keys = drop_demo_images(s3, tmp_path / "demo")
    assert show_thumbnails(s3, keys, timeout=WAIT_SECONDS, download_to=tmp_path / "thumbs")
    portrait = tmp_path / "thumbs" / "demo" / "portrait rotated.jpg" / "1024.jpg"
    width, height = Image.open(portrait).size
    assert height > width
    assert (tmp_path / "thumbs" / "demo" / "logo+alpha.png" / "256.webp").is_file()
