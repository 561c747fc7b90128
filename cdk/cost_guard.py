"""The cost guard: every few minutes, stop pool instances running without an active lease.

The logic is darkroom/cost_guard.py; this is its schedule, role and environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk.functions import DarkroomFunction, every, launched_instances
from cdk.raw_pipeline import execution_arns, instance_arns
from cdk.storage import Storage
from darkroom import names
from darkroom.names import Function


class CostGuard(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        storage: Storage,
        code: lambda_.Code,
        worker_instance_ids: Sequence[str],
        settings_values: Mapping[str, Any],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)
        pool = instance_arns(self, worker_instance_ids)
        self.guard = DarkroomFunction(
            self,
            "Guard",
            function=Function.COST_GUARD,
            code=code,
            settings_values=settings_values,
            statements=[
                iam.PolicyStatement(
                    sid="SeePool",
                    actions=["ec2:DescribeInstances"],
                    # EC2's Describe* actions support no resource-level permissions.
                    resources=["*"],
                ),
                iam.PolicyStatement(sid="StopPool", actions=["ec2:StopInstances"], resources=pool),
                launched_instances(self, "ec2:StopInstances", sid="StopLaunched"),
                launched_instances(
                    self,
                    "ec2:CreateTags",
                    "ec2:DeleteTags",
                    sid="MarkLaunched",
                    conditions={
                        "ForAllValues:StringEquals": {"aws:TagKeys": [names.UNLEASED_SINCE_TAG]}
                    },
                ),
                iam.PolicyStatement(
                    sid="MarkPool",
                    actions=["ec2:CreateTags", "ec2:DeleteTags"],
                    resources=pool,
                    # Its own bookkeeping tag, never the pool tag or a name.
                    conditions={
                        "ForAllValues:StringEquals": {"aws:TagKeys": [names.UNLEASED_SINCE_TAG]}
                    },
                ),
                iam.PolicyStatement(
                    sid="Leases",
                    actions=["dynamodb:Scan", "dynamodb:UpdateItem"],
                    resources=[storage.workers.table_arn],
                ),
                iam.PolicyStatement(
                    sid="LeaseExecutions",
                    actions=["states:DescribeExecution"],
                    resources=[execution_arns(self)],
                ),
            ],
            log_retention=log_retention,
            # No reserved concurrency: a run takes seconds every few minutes, its tag and
            # stop calls are idempotent, and new accounts (a concurrency quota of 10)
            # refuse any reservation.
            description="stops pool instances that run without an active lease",
        )
        self.function = self.guard.function
        self.rule = every(self, "Schedule", names.COST_GUARD_SCHEDULE_MINUTES, self.function)
