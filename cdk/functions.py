"""One darkroom Lambda function: its own role, its own log group, nothing inherited."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk.tidy import drop_implied_role_dependency
from darkroom import names

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64


class DarkroomFunction(Construct):
    """A function from darkroom.names: handler, timeout and env keys come from there.

    The role starts empty (no AWSLambdaBasicExecutionRole): it may write to its own log
    group and do what `statements` say, nothing more.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        function_name: str,
        code: lambda_.Code,
        environment: Mapping[str, str],
        statements: Sequence[iam.PolicyStatement],
        log_retention: logs.RetentionDays,
        description: str,
        memory_mb: int = 256,
        handler: str | None = None,
        timeout_seconds: int | None = None,
        expected_env_keys: Sequence[str] | None = None,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, id)
        wanted = set(
            expected_env_keys
            if expected_env_keys is not None
            else names.FUNCTION_ENV_KEYS[function_name]
        )
        if set(environment) != wanted:
            # Drift from darkroom.names would give AWS and the laptop different settings.
            raise ValueError(
                f"{function_name}: environment keys {sorted(environment)} "
                f"differ from darkroom.names' {sorted(wanted)}"
            )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=log_retention,
            # Operational logs, not client data; a retained group would block a redeploy
            # under the same fixed name.
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
        for statement in statements:
            self.role.add_to_policy(statement)
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            handler=handler or names.HANDLERS[function_name],
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=code,
            environment=dict(environment),
            timeout=cdk.Duration.seconds(
                timeout_seconds or names.FUNCTION_TIMEOUT_SECONDS[function_name]
            ),
            memory_size=memory_mb,
            role=self.role,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency,
        )
        drop_implied_role_dependency(self.function.node.default_child, self.role.node.default_child)
