"""Thumbnails: the input bucket invokes the function directly; it writes to the output bucket.

The handler (tasks.thumbnail.handler) writes only to the output bucket, so it cannot
trigger itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from constructs import Construct

from cdk.config import DeployConfig
from cdk.functions import DarkroomFunction
from cdk.raw_pipeline import failure_queue
from cdk.storage import Storage
from darkroom.names import Function

# darkroom.keys.thumbnail_key: thumbnails/<source key>/<size>.<ext>
THUMBNAIL_PREFIX = "thumbnails/"
# Same events as the local cloud: a removed source removes its thumbnails.
EVENTS = (s3.EventType.OBJECT_CREATED, s3.EventType.OBJECT_REMOVED)


class Thumbnails(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: DeployConfig,
        storage: Storage,
        code: lambda_.Code,
        settings_values: Mapping[str, Any],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)
        self.failures = failure_queue(self, "Failures")
        self.thumbnailer = DarkroomFunction(
            self,
            "Thumbnail",
            function=Function.THUMBNAIL,
            code=code,
            settings_values=settings_values,
            statements=[
                iam.PolicyStatement(
                    actions=["s3:GetObject"], resources=[storage.input.arn_for_objects("*")]
                ),
                # Without it S3 answers a missing key with 403, not 404: a source deleted
                # before its event is handled would be retried into the failure queue
                # instead of being recognised (SourceMissing) and skipped.
                iam.PolicyStatement(
                    actions=["s3:ListBucket"], resources=[storage.input.bucket_arn]
                ),
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:DeleteObject"],
                    resources=[storage.output.arn_for_objects(f"{THUMBNAIL_PREFIX}*")],
                ),
            ],
            log_retention=log_retention,
            description="writes thumbnails of each image uploaded to the input bucket",
            # Measured by `.venv/bin/python -m benchmarks.thumbnail --repeat 3` (peak RSS
            # of a Python process with the Lambda's imports): 114 MB on a 24 MP JPEG,
            # 140 MB on a 24 MP PNG, 811 MB on an RGBA PNG just under max_image_pixels
            # (100 MP; the palette and tRNS PNGs the same, 16-bit grey 516 MB) and 1662 MB
            # on an RGBA WebP of that size (Pillow's WebP decoder holds about four
            # full-size copies). 2048 MB covers the worst with headroom; CPU grows with
            # memory, so the common small image costs about the same GB-seconds.
            memory_mb=config.thumbnail_memory_mb,
            # Opt-in (thumbnail_reserved_concurrency): a bulk upload then cannot take
            # the account's whole Lambda concurrency from the RAW pipeline's tasks; S3
            # retries throttled async events.
            reserved_concurrency=config.thumbnail_reserved_concurrency or None,
        )
        self.function = self.thumbnailer.function
        self.function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(6),
            on_failure=destinations.SqsDestination(self.failures),
        )
        for event in EVENTS:
            storage.input.add_event_notification(event, s3n.LambdaDestination(self.function))
