"""The RAW job pipeline: the committed state machine, its task Lambdas, the orchestrator.

The state machine's definition is workflows/raw_pipeline.asl.json exactly as committed;
its ${Placeholders} are read from the file at synth time and each is filled with the ARN
of the function darkroom.names assigns to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk.config import DeployConfig
from cdk.functions import DarkroomFunction, launched_instances, table_statement
from cdk.reconcilers import Reconcilers
from cdk.storage import Storage
from cdk.tidy import drop_implied_role_dependency
from darkroom import names, workflow
from darkroom.names import Function

# The S3 object whose creation submits a job: raw/<job_id>/manifest.json.
MANIFEST_SUFFIX = "/" + names.MANIFEST_NAME


def state_machine_arn(scope: Construct) -> str:
    """Built from its name, so the worker's role can name it without a reference (a
    reference would make the pool depend on the machine that depends on the pool)."""
    stack = cdk.Stack.of(scope)
    return stack.format_arn(
        service="states",
        resource="stateMachine",
        resource_name=names.state_machine_name(stack.stack_name),
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )


def execution_arns(scope: Construct) -> str:
    """Every execution of the darkroom state machine."""
    stack = cdk.Stack.of(scope)
    return stack.format_arn(
        service="states",
        resource="execution",
        resource_name=f"{names.state_machine_name(stack.stack_name)}:*",
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )


def instance_arns(scope: Construct, instance_ids: Sequence[str]) -> list[str]:
    stack = cdk.Stack.of(scope)
    return [
        stack.format_arn(service="ec2", resource="instance", resource_name=instance_id)
        for instance_id in instance_ids
    ]


def failure_queue(scope: Construct, id: str) -> sqs.Queue:
    """Where an asynchronously invoked function's event goes once its retries are spent."""
    return sqs.Queue(
        scope,
        id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=cdk.Duration.days(14),
    )


class RawPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: DeployConfig,
        storage: Storage,
        code: lambda_.Code,
        worker_instance_ids: Sequence[str],
        worker_start_statements: Sequence[iam.PolicyStatement],
        settings_values: Mapping[str, Any],
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, id)
        stack_name = cdk.Stack.of(self).stack_name
        jobs, workers, raw = storage.jobs, storage.workers, storage.raw
        processed = storage.processed
        pool = instance_arns(self, worker_instance_ids)

        def function(
            id: str, name: str, description: str, statements: list[iam.PolicyStatement]
        ) -> DarkroomFunction:
            return DarkroomFunction(
                self,
                id,
                function=name,
                code=code,
                settings_values=settings_values,
                statements=statements,
                log_retention=log_retention,
                description=description,
            )

        # What each does is in darkroom/pipeline.py; the statements follow its calls.
        self.register_job = function(
            "RegisterJob",
            Function.REGISTER_JOB,
            "reads the job's RAW listing and manifest, writes the job record",
            [
                # The originals' current versions (ListObjectVersions), recorded per file.
                iam.PolicyStatement(
                    actions=["s3:ListBucketVersions"],
                    resources=[raw.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{names.RAW_PREFIX}*"]}},
                ),
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[raw.arn_for_objects(f"{names.RAW_PREFIX}*")],
                ),
                # The job item (claim, register) and its file items: read (Query) and
                # written in transactions (PutItem) that check the job item is still this
                # execution's (ConditionCheckItem).
                table_statement(
                    jobs, "GetItem", "UpdateItem", "Query", "PutItem", "ConditionCheckItem"
                ),
            ],
        )
        self.start_worker = function(
            "StartWorker",
            Function.START_WORKER,
            "leases an idle pool instance and starts it",
            [
                # The pool's own lease rows (BatchGetItem); the queue of waiting shards
                # (Scan: the table holds one row per instance and per waiting shard), a
                # waiter leaving it (DeleteItem).
                table_statement(
                    workers, "PutItem", "BatchGetItem", "UpdateItem", "Scan", "DeleteItem"
                ),
                table_statement(jobs, "GetItem", "UpdateItem"),
                iam.PolicyStatement(actions=["ec2:StartInstances"], resources=pool),
                launched_instances(self, "ec2:StartInstances"),
                # Its fallback instance types and the volume key (cdk/worker_pool.py).
                *worker_start_statements,
                # Whether the execution holding a lease has ended (aborted in the console).
                iam.PolicyStatement(
                    actions=["states:DescribeExecution"], resources=[execution_arns(self)]
                ),
            ],
        )
        self.await_worker = function(
            "AwaitWorker",
            Function.AWAIT_WORKER,
            "hands the task token to the leased instance",
            [table_statement(workers, "UpdateItem")],
        )
        self.stop_worker = function(
            "StopWorker",
            Function.STOP_WORKER,
            "stops the instance and releases the lease this execution holds",
            [
                table_statement(workers, "GetItem", "Scan", "UpdateItem"),
                iam.PolicyStatement(actions=["ec2:StopInstances"], resources=pool),
                launched_instances(self, "ec2:StopInstances"),
            ],
        )
        self.mark_done = function(
            "MarkDone",
            Function.MARK_DONE,
            "delivers the run's renditions, deletes superseded ones, records the job's status",
            [
                table_statement(jobs, "GetItem", "UpdateItem", "Query"),
                # What the job has under processed/<job_id>/, and deleting what no file
                # delivers any more.
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[processed.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{names.PROCESSED_PREFIX}*"]}},
                ),
                iam.PolicyStatement(
                    actions=["s3:DeleteObject", "s3:AbortMultipartUpload"],
                    resources=[processed.arn_for_objects(f"{names.PROCESSED_PREFIX}*")],
                ),
                # Uploads a worker that died left open (a ZIP or a part of one).
                iam.PolicyStatement(
                    actions=["s3:ListBucketMultipartUploads"], resources=[processed.bucket_arn]
                ),
                # The run's manifest, written from the file items once every shard is over.
                iam.PolicyStatement(
                    actions=["s3:PutObject"],
                    resources=[
                        processed.arn_for_objects(
                            f"{names.PROCESSED_PREFIX}*/{names.MANIFEST_NAME}"
                        )
                    ],
                ),
            ],
        )
        self.mark_failed = function(
            "MarkFailed",
            Function.MARK_FAILED,
            "records the job's failure, or a shard's",
            # Query: FailShard reads the failed shard's file items.
            [table_statement(jobs, "GetItem", "UpdateItem", "Query")],
        )
        by_name: dict[str, DarkroomFunction] = {
            Function.REGISTER_JOB: self.register_job,
            Function.START_WORKER: self.start_worker,
            Function.AWAIT_WORKER: self.await_worker,
            Function.STOP_WORKER: self.stop_worker,
            Function.MARK_DONE: self.mark_done,
            Function.MARK_FAILED: self.mark_failed,
        }
        self.tasks = by_name

        # -- the state machine ------------------------------------------------------
        template = workflow.load_template()
        used = workflow.placeholders(template)
        unknown = sorted(used - names.ASL_FUNCTION_PLACEHOLDERS.keys())
        if unknown:
            raise ValueError(
                f"{workflow.ASL_NAME} uses placeholders darkroom.names does not map to a "
                f"function: {', '.join(unknown)}"
            )
        invoked = {by_name[names.ASL_FUNCTION_PLACEHOLDERS[p]] for p in used}
        self.log_group = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=names.state_machine_log_group(stack_name),
            retention=log_retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=names.state_machine_name(stack_name),
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(template),
            definition_substitutions={
                p: by_name[names.ASL_FUNCTION_PLACEHOLDERS[p]].function.function_arn
                for p in sorted(used)
            },
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                # Execution data carries task tokens: whoever reads the logs could answer
                # for the worker.
                include_execution_data=False,
            ),
            tracing_enabled=True,
        )
        drop_implied_role_dependency(
            self.state_machine.node.default_child, self.state_machine.role.node.default_child
        )
        # The definition names the functions only through substitutions, so CDK cannot
        # infer the grant; unqualified ARNs, as the ASL invokes them.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"],
                resources=sorted(
                    (f.function.function_arn for f in invoked), key=lambda arn: str(arn)
                ),
            )
        )

        # -- the orchestrator: manifest.json created -> an execution named after the job
        # A reference this time: the orchestrator is created after the machine it starts.
        self.submission_failures = failure_queue(self, "SubmissionFailures")
        self.orchestrator = DarkroomFunction(
            self,
            "Orchestrator",
            function=Function.ORCHESTRATOR,
            code=code,
            settings_values={
                **settings_values,
                "state_machine_arn": self.state_machine.state_machine_arn,
            },
            statements=[
                iam.PolicyStatement(
                    actions=["states:StartExecution"],
                    resources=[self.state_machine.state_machine_arn],
                )
            ],
            log_retention=log_retention,
            description="starts a job's execution when its manifest.json is uploaded",
        )
        self.orchestrator.function.configure_async_invoke(
            # S3 invokes asynchronously; a submission whose retries are spent must not
            # vanish: it waits on the queue (and an alarm) for `darkroom reprocess`.
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(6),
            on_failure=destinations.SqsDestination(self.submission_failures),
        )
        raw.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.orchestrator.function),
            s3.NotificationKeyFilter(prefix=names.RAW_PREFIX, suffix=MANIFEST_SUFFIX),
        )

        # -- what no Catch and no orchestrator retry covers (cdk/reconcilers.py)
        self.ending_failures = failure_queue(self, "EndingFailures")
        self.reconcilers = Reconcilers(
            self,
            "Reconcilers",
            storage=storage,
            code=code,
            state_machine=self.state_machine,
            executions_arn=execution_arns(self),
            pool=pool,
            submission_failures=self.submission_failures,
            ending_failures=self.ending_failures,
            settings_values=settings_values,
            log_retention=log_retention,
        )
        self.functions = {
            **self.tasks,
            Function.ORCHESTRATOR: self.orchestrator,
            **self.reconcilers.functions,
        }
        # Every on-failure queue, by the name its alarm goes by.
        self.failure_queues = {
            "Submission": self.submission_failures,
            "Ending": self.ending_failures,
        }
