"""The pipeline's reconcilers: no ending is silent, no submission is lost.

- Ending reconciler: an EventBridge rule sends this state machine's FAILED, TIMED_OUT
  and ABORTED status changes to a function (darkroom/endings.py) that fails the job and
  frees that execution's worker, which no Catch does for those endings.
- Submission reconciler: on a schedule, a function (darkroom/submissions.py) starts
  submitted jobs that have no execution and redrives the orchestrator's on-failure queue.
  A function of its own rather than a part of the cost guard: it needs StartExecution
  and the queue, the guard needs to stop instances, and neither role should hold both.
- Pool scaler: on a schedule, a function (darkroom/pool_scaler.py) launches pool
  instances from the launch template while shards wait and terminates idle launched
  ones; a role of its own for the same reason (RunInstances, TerminateInstances).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk.config import DeployConfig
from cdk.functions import DarkroomFunction, every, launched_instances, table_statement
from cdk.storage import Storage
from darkroom import names
from darkroom.names import Function

# An ending must outlive an outage of the function: EventBridge retries delivery for a
# day, Lambda retries the function twice over six hours, and what is left is parked.
DELIVERY_RETRIES = 185
DELIVERY_MAX_AGE = cdk.Duration.hours(24)


class Reconcilers(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        storage: Storage,
        code: lambda_.Code,
        state_machine: sfn.StateMachine,
        executions_arn: str,
        pool: Sequence[str],
        submission_failures: sqs.IQueue,
        ending_failures: sqs.IQueue,
        settings_values: Mapping[str, Any],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)

        # -- endings ------------------------------------------------------------------
        self.ending = DarkroomFunction(
            self,
            "Ending",
            function=Function.RECONCILE_ENDING,
            code=code,
            settings_values=settings_values,
            statements=[
                # JobStore.find, release_claim and the FAILED transition (conditional).
                table_statement(storage.jobs, "GetItem", "UpdateItem"),
                # The lease this execution holds (LeaseStore.held_by scans: the event does
                # not say which instance), then its conditional release.
                table_statement(storage.workers, "Scan", "UpdateItem"),
                iam.PolicyStatement(actions=["ec2:StopInstances"], resources=list(pool)),
                launched_instances(self, "ec2:StopInstances"),
            ],
            log_retention=log_retention,
            description="fails the job and frees the worker of an execution that ended badly",
        )
        self.ending.function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(6),
            on_failure=destinations.SqsDestination(ending_failures),
        )
        self.ending_rule = events.Rule(
            self,
            "Endings",
            description="this state machine's executions that end without succeeding",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=[names.EXECUTION_STATUS_CHANGE],
                detail={
                    "stateMachineArn": [state_machine.state_machine_arn],
                    "status": list(names.EXECUTION_ENDINGS),
                },
            ),
            targets=[
                targets.LambdaFunction(
                    self.ending.function,
                    retry_attempts=DELIVERY_RETRIES,
                    max_event_age=DELIVERY_MAX_AGE,
                    dead_letter_queue=ending_failures,
                )
            ],
        )

        # -- submissions --------------------------------------------------------------
        self.submissions = DarkroomFunction(
            self,
            "Submissions",
            function=Function.RECONCILE_SUBMISSIONS,
            code=code,
            settings_values={
                **settings_values,
                "state_machine_arn": state_machine.state_machine_arn,
                "submission_failures_queue_url": submission_failures.queue_url,
            },
            statements=[
                # UploadStore.newest: the uploads' listing index, never a scan.
                iam.PolicyStatement(
                    actions=["dynamodb:Query"],
                    resources=[f"{storage.uploads.table_arn}/index/{names.NEWEST_INDEX}"],
                ),
                # JobStore.registered.
                table_statement(storage.jobs, "BatchGetItem"),
                # Whether a submitted job's execution exists, and starting it.
                iam.PolicyStatement(
                    actions=["states:DescribeExecution"], resources=[executions_arn]
                ),
                iam.PolicyStatement(
                    actions=["states:StartExecution"],
                    resources=[state_machine.state_machine_arn],
                ),
                iam.PolicyStatement(
                    actions=["sqs:ReceiveMessage", "sqs:DeleteMessage"],
                    resources=[submission_failures.queue_arn],
                ),
            ],
            log_retention=log_retention,
            description="starts submitted jobs that have no execution; redrives submissions",
        )
        self.submissions_schedule = every(
            self,
            "SubmissionsSchedule",
            names.SUBMISSION_RECONCILE_SCHEDULE_MINUTES,
            self.submissions.function,
        )
        self.functions = {
            Function.RECONCILE_ENDING: self.ending,
            Function.RECONCILE_SUBMISSIONS: self.submissions,
        }


class PoolScaler(Construct):
    """The pool scaler (darkroom/pool_scaler.py), on the reconcilers' pattern: one
    function on a schedule, whose every pass is idempotent and repairs the last one's.

    Its role launches only from the pool's launch template, passes only the workers'
    role, and terminates only instances carrying both of the template's pool tags (never
    one the stack declares, which lacks the scaled tag).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        storage: Storage,
        code: lambda_.Code,
        launch_template: ec2.LaunchTemplate,
        worker_role: iam.IRole,
        subnet_ids: Sequence[str],
        volume_key_statements: Sequence[iam.PolicyStatement],
        config: DeployConfig,
        settings_values: Mapping[str, Any],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)
        stack = cdk.Stack.of(self)

        def arn(resource: str, name: str = "*") -> str:
            return stack.format_arn(service="ec2", resource=resource, resource_name=name)

        template_arn = arn("launch-template", launch_template.launch_template_id or "")
        pool_tags = {
            f"aws:ResourceTag/{names.WORKER_POOL_TAG_KEY}": names.WORKER_POOL_TAG_VALUE,
            f"aws:ResourceTag/{names.WORKER_SCALED_TAG_KEY}": names.WORKER_SCALED_TAG_VALUE,
        }
        self.scaler = DarkroomFunction(
            self,
            "Scaler",
            function=Function.POOL_SCALER,
            code=code,
            settings_values={
                **settings_values,
                "pool_max_instances": config.pool_max_size,
                "pool_max_vcpus": config.pool_max_vcpus,
                "pool_scale_up_after_seconds": config.pool_scale_up_after_minutes * 60,
                "pool_idle_terminate_seconds": config.pool_idle_terminate_minutes * 60,
                "pool_launch_template": launch_template.launch_template_id,
                "worker_subnet_ids": cdk.Fn.join(",", list(subnet_ids)),
            },
            statements=[
                iam.PolicyStatement(
                    sid="SeePool",
                    actions=["ec2:DescribeInstances", "ec2:DescribeInstanceTypes"],
                    # EC2's Describe* actions support no resource-level permissions.
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="LaunchFromTemplate",
                    actions=["ec2:RunInstances"],
                    resources=[template_arn],
                ),
                iam.PolicyStatement(
                    sid="LaunchedResources",
                    actions=["ec2:RunInstances"],
                    # What a launch creates or names; each only through the template.
                    resources=[
                        arn(kind)
                        for kind in (
                            "instance",
                            "volume",
                            "network-interface",
                            "subnet",
                            "security-group",
                            "image",
                        )
                    ],
                    conditions={"ArnEquals": {"ec2:LaunchTemplate": template_arn}},
                ),
                iam.PolicyStatement(
                    sid="TagAtLaunch",
                    actions=["ec2:CreateTags"],
                    resources=[arn("instance"), arn("volume")],
                    conditions={"StringEquals": {"ec2:CreateAction": "RunInstances"}},
                ),
                iam.PolicyStatement(
                    sid="PassWorkerRole",
                    actions=["iam:PassRole"],
                    resources=[worker_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    sid="TerminateLaunched",
                    actions=["ec2:TerminateInstances"],
                    resources=[arn("instance")],
                    conditions={"StringEquals": pool_tags},
                ),
                # LeaseStore.all/waiters (Scan), ensure (PutItem), retire/unretire
                # (UpdateItem), forget (DeleteItem): each conditional.
                table_statement(storage.workers, "Scan", "PutItem", "UpdateItem", "DeleteItem"),
                *volume_key_statements,
            ],
            log_retention=log_retention,
            description="grows the worker pool while shards wait; terminates idle launched ones",
        )
        self.function = self.scaler.function
        self.rule = every(self, "Schedule", names.POOL_SCALER_SCHEDULE_MINUTES, self.function)
        self.functions = {Function.POOL_SCALER: self.scaler}
