"""One darkroom Lambda function: its own role, its own log group, nothing inherited.

Its environment is its settings model (darkroom.settings.FUNCTION_SETTINGS) filled from
`settings_values`: every field the stack can fill, by field name; the model takes its
own fields and keeps its defaults for the rest, as the local cloud does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk.config import DeployConfig
from cdk.storage import Storage
from cdk.tidy import drop_implied_role_dependency
from darkroom import names, settings

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64


def settings_values(
    config: DeployConfig, storage: Storage, worker_instance_ids: Sequence[str]
) -> dict[str, Any]:
    """The settings fields the deploy config and the stack's storage and pool fill."""
    return {
        "raw_bucket": storage.raw.bucket_name,
        "processed_bucket": storage.processed.bucket_name,
        "output_bucket": storage.output.bucket_name,
        "jobs_table": storage.jobs.table_name,
        "workers_table": storage.workers.table_name,
        "uploads_table": storage.uploads.table_name,
        "shares_table": storage.shares.table_name,
        "worker_instance_ids": cdk.Fn.join(",", list(worker_instance_ids)),
        "worker_instance_types": config.instance_types,
        "worker_heartbeat_seconds": config.worker_heartbeat_seconds,
        "job_timeout_seconds": config.job_timeout_seconds,
        "thumbnail_sizes": config.thumbnail_sizes_env,
        "max_image_pixels": config.max_image_pixels,
        "cost_guard_max_idle_seconds": config.cost_guard_max_idle_minutes * 60,
        **config.studio,
    }


def table_statement(
    table: dynamodb.ITable, *actions: str, sid: str | None = None
) -> iam.PolicyStatement:
    """DynamoDB actions on one table (not its indexes: grant those by their own ARN)."""
    return iam.PolicyStatement(
        sid=sid, actions=[f"dynamodb:{a}" for a in actions], resources=[table.table_arn]
    )


class DarkroomFunction(Construct):
    """A function from darkroom.names (handler, timeout) and darkroom.settings (env).

    `function` is its darkroom.names.Function key; it deploys under the stack's own name
    for it (names.in_stack), as does its log group.

    The role starts empty (no AWSLambdaBasicExecutionRole): it may write to its own log
    group, send its traces to X-Ray and do what `statements` say, nothing more.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        function: str,
        code: lambda_.Code,
        settings_values: Mapping[str, Any],
        statements: Sequence[iam.PolicyStatement],
        log_retention: logs.RetentionDays,
        description: str,
        memory_mb: int | None = None,
        handler: str | None = None,
        timeout_seconds: int | None = None,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, id)
        stack_name = cdk.Stack.of(self).stack_name
        function_name = names.in_stack(function, stack_name)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=names.function_log_group(function, stack_name),
            retention=log_retention,
            # Operational logs, not client data; a retained group would block a redeploy
            # under the same name.
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{function_name}: its log group and {description}",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogGroup",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="Tracing",
                actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                # X-Ray supports no resource-level permissions.
                resources=["*"],
            )
        )
        for statement in statements:
            self.role.add_to_policy(statement)
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            handler=handler or names.HANDLERS[function],
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=code,
            environment=settings.environment(settings.FUNCTION_SETTINGS[function], settings_values),
            timeout=cdk.Duration.seconds(
                timeout_seconds or names.FUNCTION_TIMEOUT_SECONDS[function]
            ),
            memory_size=memory_mb or names.FUNCTION_MEMORY_MB[function],
            role=self.role,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency,
        )
        cfn = self.function.node.default_child
        assert isinstance(cfn, lambda_.CfnFunction)
        # Each invocation joins the state machine's trace. Set here rather than through
        # `tracing=` so the grant above is the function's own, named statement.
        cfn.tracing_config = lambda_.CfnFunction.TracingConfigProperty(mode="Active")
        drop_implied_role_dependency(cfn, self.role.node.default_child)


def every(scope: Construct, id: str, minutes: int, function: lambda_.IFunction) -> events.Rule:
    """A schedule that invokes a reconciler every `minutes`, with no retry: the next
    pass retries, and each repairs what the last one left (their steps are idempotent)."""
    return events.Rule(
        scope,
        id,
        schedule=events.Schedule.rate(cdk.Duration.minutes(minutes)),
        targets=[targets.LambdaFunction(function, retry_attempts=0)],
    )


def launched_instances(
    scope: Construct,
    *actions: str,
    sid: str | None = None,
    conditions: Mapping[str, Mapping[str, Any]] | None = None,
) -> iam.PolicyStatement:
    """`actions` on the instances the pool scaler launched (ids no template can name):
    those carrying both the pool tag and the scaled tag, never another instance."""
    stack = cdk.Stack.of(scope)
    return iam.PolicyStatement(
        sid=sid,
        actions=list(actions),
        resources=[stack.format_arn(service="ec2", resource="instance", resource_name="*")],
        conditions={
            "StringEquals": {
                f"aws:ResourceTag/{names.WORKER_POOL_TAG_KEY}": names.WORKER_POOL_TAG_VALUE,
                f"aws:ResourceTag/{names.WORKER_SCALED_TAG_KEY}": names.WORKER_SCALED_TAG_VALUE,
            },
            **(conditions or {}),
        },
    )
