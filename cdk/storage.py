"""Buckets and tables: private, encrypted, TLS-only, no ACLs, lifecycle for the big data."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk.config import DeployConfig
from darkroom import names


class Storage(Construct):
    def __init__(self, scope: Construct, id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, id)
        data_removal = cdk.RemovalPolicy.RETAIN if config.retain_data else cdk.RemovalPolicy.DESTROY

        # Server access logs of the four data buckets: who read or wrote a client's
        # photos, for audits. It cannot log to itself (S3 would log its own log writes).
        self.access_logs = _private_bucket(
            self,
            "AccessLogs",
            # S3's log delivery writes with SSE-S3 only; a KMS key would reject it.
            encryption=s3.BucketEncryption.S3_MANAGED,
            removal_policy=data_removal,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=cdk.Duration.days(config.access_log_expire_days),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
        )

        # Originals are the one thing nothing can rebuild: versioned, so an overwrite or a
        # delete leaves the earlier version, and aged only as the deployer chose.
        self.raw = self._data_bucket(
            "Raw", names.RAW_BUCKET, _raw_rules(config), data_removal, versioned=True
        )
        self.processed = self._data_bucket(
            "Processed",
            names.PROCESSED_BUCKET,
            _age_rules(
                names.PROCESSED_PREFIX,
                [(s3.StorageClass.INFREQUENT_ACCESS, config.processed_infrequent_access_days)],
                config.processed_expire_days,
            ),
            data_removal,
        )
        # Thumbnails are derived and re-creatable: no transitions, uploads cleaned up.
        self.input = self._data_bucket("Input", names.INPUT_BUCKET, [], data_removal)
        self.output = self._data_bucket("Output", names.OUTPUT_BUCKET, [], data_removal)

        # Keys and indexes are darkroom.names' schemas, which the local cloud creates too.
        self.jobs = self._table("Jobs", names.JOBS_SCHEMA, data_removal)
        self.workers = self._table("Workers", names.WORKERS_SCHEMA, data_removal)
        # The API's: jobs declared but not yet registered, and client share links. Both
        # expire by DynamoDB TTL (darkroom/aws/uploads.py, shares.py set expires_ttl).
        self.uploads = self._table("Uploads", names.UPLOADS_SCHEMA, data_removal)
        self.shares = self._table("Shares", names.SHARES_SCHEMA, data_removal)

    def _data_bucket(
        self,
        id: str,
        logical_name: str,
        rules: list[s3.LifecycleRule],
        removal: cdk.RemovalPolicy,
        *,
        versioned: bool = False,
    ) -> s3.Bucket:
        bucket = _private_bucket(
            self,
            id,
            encryption=s3.BucketEncryption.S3_MANAGED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{logical_name}/",
            # Abandoned multipart uploads are billed as storage until aborted.
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="abort-incomplete-uploads",
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                ),
                *rules,
            ],
            versioned=versioned,
            removal_policy=removal,
        )
        cdk.Tags.of(bucket).add("darkroom:bucket", logical_name)
        return bucket

    def _table(
        self, id: str, schema: names.TableSchema, removal: cdk.RemovalPolicy
    ) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            id,
            partition_key=_string(schema.partition_key),
            sort_key=_string(schema.sort_key) if schema.sort_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # AWS-owned key: encrypted at rest with no KMS request charges.
            encryption=dynamodb.TableEncryption.DEFAULT,
            removal_policy=removal,
            time_to_live_attribute=schema.ttl,
        )
        if schema.index:
            # Listing newest first reads whole items (the job view), so all is projected;
            # a job's shares are few and small, so theirs is too.
            table.add_global_secondary_index(
                index_name=schema.index.name,
                partition_key=_string(schema.index.partition_key),
                sort_key=_string(schema.index.sort_key),
                projection_type=dynamodb.ProjectionType.ALL,
            )
        return table


def _raw_rules(config: DeployConfig) -> list[s3.LifecycleRule]:
    """The RAW bucket's aging: Standard-IA after 30 days by default; Glacier Instant
    Retrieval only if asked (it answers GetObject at once, as a reprocess needs: Flexible
    Retrieval would need a restore first); deletion only if both expiries are set."""
    rules = _age_rules(
        names.RAW_PREFIX,
        [
            (s3.StorageClass.INFREQUENT_ACCESS, config.raw_infrequent_access_days),
            (s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, config.raw_archive_after_days),
        ],
        config.raw_expire_after_days,
        noncurrent_expire_days=config.raw_noncurrent_expire_after_days,
    )
    if config.raw_noncurrent_expire_after_days:
        # Once their versions are gone, the delete markers left by expiry go too.
        rules.append(
            s3.LifecycleRule(
                id="remove-expired-delete-markers",
                prefix=names.RAW_PREFIX,
                expired_object_delete_marker=True,
            )
        )
    return rules


def _age_rules(
    prefix: str,
    transitions: list[tuple[s3.StorageClass, int | None]],
    expire_days: int | None,
    *,
    noncurrent_expire_days: int | None = None,
) -> list[s3.LifecycleRule]:
    """One rule aging what is under `prefix` (none when nothing is configured; 0 or None
    is never)."""
    moves = [
        s3.Transition(storage_class=storage_class, transition_after=cdk.Duration.days(days))
        for storage_class, days in transitions
        if days
    ]
    if not (moves or expire_days or noncurrent_expire_days):
        return []
    return [
        s3.LifecycleRule(
            id=f"age-{prefix.rstrip('/')}",
            prefix=prefix,
            transitions=moves or None,
            expiration=cdk.Duration.days(expire_days) if expire_days else None,
            noncurrent_version_expiration=(
                cdk.Duration.days(noncurrent_expire_days) if noncurrent_expire_days else None
            ),
        )
    ]


def _string(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)


def _private_bucket(scope: Construct, id: str, **props: Any) -> s3.Bucket:
    return s3.Bucket(
        scope,
        id,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,  # ACLs off
        enforce_ssl=True,
        minimum_tls_version=1.2,
        **props,
    )
