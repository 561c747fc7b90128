"""The thumbnail function's logic: S3 events on the input bucket -> the output bucket.

- ObjectCreated: the source is streamed to scratch disk, thumbnailed by
  darkroom.imaging.thumbnailer, and each size written to `thumbnails/<key>/<size>.<ext>`.
  Thumbnails the image no longer has (the other extension, after a replacement changed
  its transparency) are deleted, so the output always mirrors the current source.
- ObjectRemoved: every thumbnail key the source could have is deleted. The output
  bucket is never listed or read, so the function cannot trigger or feed on itself.
- A file that cannot be thumbnailed (a permanent error: the same bytes, or a key too long
  for its thumbnails' keys, always fail the same way) gives one structured log line
  naming the key and the reason, a metric, and no thumbnails (stale ones from an earlier
  version of the object are removed); the invocation succeeds, so Lambda does not retry it.
- Anything else (S3 throttling, a network fault, a bug) is raised: Lambda's asynchronous
  retries and the on-failure destination take over. Every step is idempotent, so a retry
  or a duplicated event writes the same objects again.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from darkroom import keys
from darkroom.aws.image_buckets import SourceMissing
from darkroom.imaging.thumbnailer import (
    OUTPUT_FORMATS,
    ThumbnailError,
    make_thumbnails,
    validate_sizes,
)
from darkroom.observability import NAMESPACE, SERVICE, logger, metrics
from darkroom.s3_events import object_changes

Action = Literal["thumbnailed", "removed", "failed", "skipped"]

# S3 refuses a key over 1,024 bytes (UTF-8). A source whose thumbnail keys would be
# longer can never be thumbnailed: a permanent failure of that file, not a fault to retry.
MAX_KEY_BYTES = 1024
KEY_TOO_LONG = "key_too_long"


class Buckets(Protocol):
    """The input bucket read, the output bucket written (S3 in Lambda; a dict in tests)."""

    def download(self, bucket: str, key: str, dest: IO[bytes]) -> int: ...
    def put(self, bucket: str, key: str, data: bytes, content_type: str) -> None: ...
    def delete(self, bucket: str, keys: Sequence[str]) -> None: ...


class Recorder(Protocol):
    """Where outcomes are counted (EMF metrics in Lambda; a list in tests)."""

    def thumbnailed(self, count: int, megapixels: float, milliseconds: float) -> None: ...
    def failed(self, reason: str) -> None: ...
    def removed(self) -> None: ...


class EmfRecorder:
    """Powertools metrics; the handler's @metrics.log_metrics flushes them."""

    def thumbnailed(self, count: int, megapixels: float, milliseconds: float) -> None:
        metrics.add_metric(name="ThumbnailsMade", unit=MetricUnit.Count, value=count)
        metrics.add_metric(name="SourceMegapixels", unit=MetricUnit.NoUnit, value=megapixels)
        metrics.add_metric(
            name="ThumbnailDuration", unit=MetricUnit.Milliseconds, value=milliseconds
        )

    def failed(self, reason: str) -> None:
        # Its own EMF document: a reason dimension must not split the other metrics.
        with single_metric(
            name="ThumbnailFailures",
            unit=MetricUnit.Count,
            value=1,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE},
        ) as metric:
            metric.add_dimension(name="reason", value=reason)

    def removed(self) -> None:
        metrics.add_metric(name="ThumbnailSetsDeleted", unit=MetricUnit.Count, value=1)


@dataclass(frozen=True)
class Outcome:
    key: str
    action: Action
    thumbnails: tuple[str, ...] = ()
    reason: str | None = None
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class ThumbnailService:
    def __init__(
        self,
        buckets: Buckets,
        *,
        output_bucket: str,
        sizes: Sequence[int],
        max_image_pixels: int,
        recorder: Recorder | None = None,
        scratch_dir: Path | None = None,
    ) -> None:
        if not output_bucket:
            raise ValueError("an output bucket is needed")
        self.buckets = buckets
        self.output_bucket = output_bucket
        self.sizes = validate_sizes(sizes)
        self.max_image_pixels = max_image_pixels
        self.recorder: Recorder = recorder or EmfRecorder()
        self.scratch_dir = scratch_dir

    def handle(self, event: Mapping[str, Any]) -> list[Outcome]:
        outcomes = []
        for change in object_changes(event):
            logger.set_correlation_id(change.key)
            if change.created:
                outcomes.append(self.create(change.bucket, change.key))
            else:
                outcomes.append(self.remove(change.key))
        return outcomes

    def thumbnail_keys(self, source_key: str) -> list[str]:
        """Every key a thumbnail of `source_key` can have, whatever its format."""
        return [
            keys.thumbnail_key(source_key, size, out.extension)
            for size in self.sizes
            for out in OUTPUT_FORMATS
        ]

    def create(self, bucket: str, key: str) -> Outcome:
        if key.endswith("/"):
            # A "folder" made in the S3 console: an empty object that is no image.
            return Outcome(key, "skipped", detail="folder marker")
        longest = max(self.thumbnail_keys(key), key=lambda k: len(k.encode()))
        if len(longest.encode()) > MAX_KEY_BYTES:
            detail = (
                f"its thumbnail keys would be up to {len(longest.encode())} bytes; "
                f"S3 keys hold at most {MAX_KEY_BYTES}"
            )
            return self._failed(bucket, key, KEY_TOO_LONG, detail)
        started = time.perf_counter()
        with tempfile.NamedTemporaryFile(dir=self.scratch_dir, prefix="thumbnail-") as scratch:
            try:
                self.buckets.download(bucket, key, scratch)
            except SourceMissing:
                # Deleted (or replaced) since the event: its own event handles the rest.
                logger.info("source gone, nothing to do", extra={"bucket": bucket, "key": key})
                return Outcome(key, "skipped", detail="source no longer exists")
            try:
                result = make_thumbnails(
                    scratch, self.sizes, max_pixels=self.max_image_pixels, name=key
                )
            except ThumbnailError as error:
                return self._failed(bucket, key, error.code.value, str(error))

        written = []
        for thumbnail in result.thumbnails:
            target = keys.thumbnail_key(key, thumbnail.size, thumbnail.format.extension)
            self.buckets.put(
                self.output_bucket, target, thumbnail.data, thumbnail.format.content_type
            )
            written.append(target)
        self._delete(key, keep=written)
        milliseconds = (time.perf_counter() - started) * 1000
        self.recorder.thumbnailed(len(written), result.source_megapixels, milliseconds)
        logger.info(
            "thumbnails written",
            extra={
                "bucket": bucket,
                "key": key,
                "source_format": result.source_format,
                "source_size": f"{result.source_width}x{result.source_height}",
                "thumbnails": written,
                "duration_ms": round(milliseconds, 1),
                **({"notes": list(result.notes)} if result.notes else {}),
            },
        )
        return Outcome(key, "thumbnailed", thumbnails=tuple(written))

    def remove(self, key: str) -> Outcome:
        self._delete(key, keep=())
        self.recorder.removed()
        logger.info("thumbnails deleted", extra={"key": key})
        return Outcome(key, "removed")

    def _failed(self, bucket: str, key: str, reason: str, detail: str) -> Outcome:
        # Thumbnails of an earlier, good version of the object would now be a lie.
        self._delete(key, keep=())
        self.recorder.failed(reason)
        logger.warning(
            "thumbnail failed",
            extra={"bucket": bucket, "key": key, "reason": reason, "detail": detail},
        )
        return Outcome(key, "failed", reason=reason, detail=detail)

    def _delete(self, key: str, keep: Iterable[str]) -> None:
        kept = set(keep)
        # A key S3 cannot hold was never written (and asking to delete it is an error).
        stale = [
            k
            for k in self.thumbnail_keys(key)
            if k not in kept and len(k.encode()) <= MAX_KEY_BYTES
        ]
        if stale:
            self.buckets.delete(self.output_bucket, stale)
