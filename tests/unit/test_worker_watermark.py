"""The worker and the recipe's watermark: the asset fetched once per shard and laid on the
renditions it names, its version in each file's notes; a missing or broken asset fails
each file saying so (nothing delivered unmarked); an S3 failure fetching it fails the
shard for a retry, with nothing recorded or uploaded."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from darkroom import keys
from darkroom.aws.objects import ObjectStream
from darkroom.errors import TransientError
from darkroom.jobs import FileStatus
from tests.unit.test_develop_job import PROCESSED, RAW, WEB_THUMB, Objects, run_job, shoot

__all__ = ["shoot"]  # the module's fixture, used here

MARKED = {**WEB_THUMB, "watermark": {"asset": "logo", "opacity": 1.0, "size": 0.4}}
ORANGE = (255, 128, 0)


class VersionedObjects(Objects):
    """The fake S3, answering as a versioned bucket and S3's own errors: a missing key is
    NoSuchKey, and reads of some keys can be made to fail the way a throttled S3 does."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.failing_reads: set[str] = set()
        self.reads: list[str] = []

    @contextmanager
    def reading(self, bucket: str, key: str) -> Iterator[ObjectStream]:
        self.reads.append(key)
        if key in self.failing_reads:
            raise TransientError("S3: SlowDown (injected)")
        path = self._path(bucket, key)
        if not path.exists():
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
        body = path.read_bytes()
        yield ObjectStream(size=len(body), modified=None, chunks=iter((body,)), version_id="v7")


def _logo_png(tmp_path: Path) -> Path:
    logo = Image.new("RGBA", (100, 50), (*ORANGE, 255))
    path = tmp_path / "logo.png"
    logo.save(path)
    return path


def _objects(tmp_path: Path, asset: Path | bytes | None) -> VersionedObjects:
    objects = VersionedObjects(tmp_path / "s3")
    if isinstance(asset, bytes):
        stored = tmp_path / "asset.bin"
        stored.write_bytes(asset)
        asset = stored
    if asset is not None:
        objects.store(asset, RAW, keys.asset_key("logo"))
    return objects


def _corner(objects: Objects, rendition: str, stem: str) -> np.ndarray:
    key = next(k for k in objects.keys(PROCESSED) if f"/{rendition}/{stem}." in k)
    with Image.open(objects._path(PROCESSED, key)) as img:
        pixels = np.asarray(img, dtype=int)
    return pixels[-pixels.shape[0] // 12, -pixels.shape[1] // 8]


def test_the_asset_is_fetched_once_and_marks_the_web_renditions_only(
    shoot: list[Path], tmp_path: Path
) -> None:
    objects = _objects(tmp_path, _logo_png(tmp_path))
    objects, jobs, callbacks = run_job(tmp_path, shoot, objects, recipe=MARKED)
    assert callbacks.failed == [] and callbacks.succeeded[0]["files_done"] == len(shoot)
    assert objects.reads.count(keys.asset_key("logo")) == 1
    for path in shoot:
        progress = jobs.progress[path.name]
        assert progress.notes["watermark"] == ("logo at bottom-right on web (asset version v7)"), (
            progress.notes
        )
        assert _corner(objects, "web", path.stem) == pytest.approx(ORANGE, abs=8)
        assert _corner(objects, "thumb", path.stem) != pytest.approx(ORANGE, abs=8)
    assert not any(p.is_file() for p in (tmp_path / "scratch").rglob("*"))


@pytest.mark.parametrize(
    ("asset", "code", "message"),
    [
        (None, "watermark_unavailable", "the watermark asset 'logo' does not exist"),
        (b"GIF89a not a png", "watermark_unreadable", "the watermark asset 'logo' is unusable"),
    ],
)
def test_a_missing_or_broken_asset_fails_every_file_and_delivers_nothing(
    shoot: list[Path], tmp_path: Path, asset: bytes | None, code: str, message: str
) -> None:
    objects = _objects(tmp_path, asset)
    objects, jobs, callbacks = run_job(tmp_path, shoot[:2], objects, recipe=MARKED)
    # The shard ends normally: its files carry their errors, MarkDone judges the run.
    assert callbacks.failed == []
    assert callbacks.succeeded[0]["files_failed"] == 2
    for path in shoot[:2]:
        progress = jobs.progress[path.name]
        assert progress.status is FileStatus.FAILED
        assert progress.error_code == code
        assert progress.error and message in progress.error
        assert progress.error.startswith(f"{path.name}: ")
    assert objects.keys(PROCESSED) == []


def test_an_s3_failure_fetching_the_asset_fails_the_shard_for_a_retry_having_done_nothing(
    shoot: list[Path], tmp_path: Path
) -> None:
    objects = _objects(tmp_path, _logo_png(tmp_path))
    objects.failing_reads = {keys.asset_key("logo")}
    objects, jobs, callbacks = run_job(tmp_path, shoot[:2], objects, recipe=MARKED)
    ((error, cause),) = callbacks.failed
    assert error == "WorkerFailed" and "SlowDown" in cause
    # No file recorded, nothing uploaded, no RAW even downloaded: the retry starts clean.
    assert jobs.progress == {} and objects.keys(PROCESSED) == []
    assert objects.versions_read == []

    objects.failing_reads = set()
    objects, jobs, callbacks = run_job(tmp_path, shoot[:2], objects, recipe=MARKED)
    assert callbacks.failed == [] and callbacks.succeeded[0]["files_done"] == 2
    assert {p.status for p in jobs.progress.values()} == {FileStatus.DONE}


def test_a_shard_with_nothing_left_to_develop_fetches_no_asset(
    shoot: list[Path], tmp_path: Path
) -> None:
    objects = _objects(tmp_path, None)
    _, _, callbacks = run_job(tmp_path, [], objects, recipe=MARKED)
    assert callbacks.failed == [] and objects.reads == []


def test_an_asset_larger_than_the_limit_is_refused_unread(
    shoot: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "MAX_ASSET_BYTES", 64)
    png = io.BytesIO()
    Image.new("RGBA", (100, 50), (*ORANGE, 255)).save(png, "PNG")
    objects = _objects(tmp_path, png.getvalue())
    _, jobs, _ = run_job(tmp_path, shoot[:1], objects, recipe=MARKED)
    progress = jobs.progress[shoot[0].name]
    assert progress.error_code == "watermark_unreadable"
    assert progress.error and "at most 64 are accepted" in progress.error
