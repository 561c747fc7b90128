"""The darkroom stack: every construct, wired, with its outputs."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk import bundling, nag
from cdk.api import DeliveryApi
from cdk.config import EDGE_REGION, RETENTION_DAYS, DeployConfig, ExtraOutput
from cdk.cost_guard import CostGuard
from cdk.delivery import Delivery, put_job_events
from cdk.edge import Edge, EdgeAcl
from cdk.functions import settings_values
from cdk.monitoring import Monitoring
from cdk.raw_pipeline import RawPipeline, failure_queue
from cdk.reconcilers import PoolScaler
from cdk.storage import Storage
from cdk.thumbnails import Thumbnails
from cdk.tidy import drop_implied_role_dependency
from cdk.worker_pool import WorkerPool
from darkroom import names
from darkroom.names import Function, Output

# CloudWatch Logs' retention periods, in RetentionDays' order (INFINITE last, unused).
RETENTION = dict(zip(sorted(RETENTION_DAYS), list(logs.RetentionDays)[:-1], strict=True))
assert (
    RETENTION[30] == logs.RetentionDays.ONE_MONTH
    and RETENTION[3653] == logs.RetentionDays.TEN_YEARS
)
# CDK's singleton that applies S3 bucket notifications at deploy time.
NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


class DarkroomStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: DeployConfig,
        cache: bundling.DependencyCache | None = None,
        edge_web_acl_arn: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            id,
            description=(
                "darkroom: RAW jobs on Step Functions + EC2 workers, thumbnails on S3 + Lambda, "
                "a delivery HTTP API"
            ),
            **kwargs,
        )
        self.config = config
        retention = RETENTION[config.log_retention_days]
        code = bundling.lambda_code(cache)

        self.storage = Storage(self, "Storage", config=config)
        self.worker_pool = WorkerPool(
            self,
            "WorkerPool",
            config=config,
            storage=self.storage,
            log_retention=retention,
            cache=cache,
        )
        # What every function's settings may take from this deploy (darkroom.settings).
        values = settings_values(config, self.storage, self.worker_pool.instance_ids)
        self.pipeline = RawPipeline(
            self,
            "RawPipeline",
            config=config,
            storage=self.storage,
            code=code,
            worker_instance_ids=self.worker_pool.instance_ids,
            worker_start_statements=self.worker_pool.start_statements,
            settings_values=values,
            log_retention=retention,
        )
        self.thumbnails = Thumbnails(
            self,
            "Thumbnails",
            config=config,
            storage=self.storage,
            code=code,
            settings_values=values,
            log_retention=retention,
        )
        self.cost_guard = CostGuard(
            self,
            "CostGuard",
            storage=self.storage,
            code=code,
            worker_instance_ids=self.worker_pool.instance_ids,
            settings_values=values,
            log_retention=retention,
        )

        self.pool_scaler = PoolScaler(
            self,
            "PoolScaler",
            storage=self.storage,
            code=code,
            launch_template=self.worker_pool.launch_template,
            worker_role=self.worker_pool.role,
            subnet_ids=self.worker_pool.subnet_ids,
            volume_key_statements=self.worker_pool.volume_key_statements,
            config=config,
            settings_values=values,
            log_retention=retention,
        )

        # The delivery API (cdk/api.py): IAM authorisation on photographer routes, a
        # public share route throttled tighter than the stage, JSON access logs under
        # `retention`, its function from darkroom.names; its alarms are in `Monitoring`.
        self.api = DeliveryApi(
            self,
            "Api",
            storage=self.storage,
            state_machine=self.pipeline.state_machine,
            code=code,
            settings_values=values,
            log_retention=retention,
            behind_edge=config.edge,
        )
        self.edge_acl: EdgeAcl | None = None
        self.edge: Edge | None = None
        if config.edge:
            self._edge(edge_web_acl_arn)

        # Automatic delivery (cdk/delivery.py): job events to the notify function. Every
        # runtime that writes a job's status publishes it (darkroom.aws.job_events).
        self.notify_failures = failure_queue(self, "NotifyFailures")
        self.delivery = Delivery(
            self,
            "Delivery",
            config=config,
            storage=self.storage,
            code=code,
            api_url=self.api.url,
            failures=self.notify_failures,
            settings_values=values,
            log_retention=retention,
        )
        publishers = [
            self.pipeline.register_job,
            self.pipeline.start_worker,
            self.pipeline.mark_done,
            self.pipeline.mark_failed,
            self.pipeline.reconcilers.ending,
            self.api.server,
        ]
        for publisher in publishers:
            publisher.role.add_to_policy(put_job_events(self))
        self.worker_pool.role.add_to_policy(put_job_events(self))

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            state_machine=self.pipeline.state_machine,
            pipeline_functions={
                name.removeprefix("darkroom-"): f.function
                for name, f in self.pipeline.functions.items()
            },
            thumbnail=self.thumbnails.function,
            cost_guard=self.cost_guard.function,
            failure_queues={
                "Thumbnail": self.thumbnails.failures,
                **self.pipeline.failure_queues,
                # Job events the notify function never took (EventBridge gave up).
                "Notify": self.notify_failures,
            },
            worker_logs=self.worker_pool.log_group,
            api=self.api,
        )
        self._tame_notifications_handler(retention)
        self._outputs()
        nag.acknowledge(self)

    def _edge(self, web_acl_arn: str | None) -> None:
        """CloudFront + WAF before share links (cdk/edge.py); the web ACL is given (made
        in us-east-1 by cdk/app.py, or the studio's own), or made here in us-east-1."""
        config = self.config
        if not web_acl_arn:
            if self.region != EDGE_REGION:
                raise ValueError(
                    f"the edge's web ACL must be in {EDGE_REGION}: build the stack with "
                    "cdk.app.build, which makes it there, or give edge_web_acl_arn"
                )
            self.edge_acl = EdgeAcl(self, "EdgeAcl", config=config)
            web_acl_arn = self.edge_acl.arn
        self.edge = Edge(
            self, "Edge", config=config, api_domain=self.api.domain, web_acl_arn=web_acl_arn
        )
        self.api.serve_through(self.edge.secret, self.edge.url)

    @property
    def functions(self) -> dict[str, Any]:
        """Every darkroom function construct by name (tests and nag use it)."""
        return {
            **self.pipeline.functions,
            Function.THUMBNAIL: self.thumbnails.thumbnailer,
            Function.COST_GUARD: self.cost_guard.guard,
            **self.pool_scaler.functions,
            Function.API: self.api.server,
            Function.NOTIFY: self.delivery.notify,
        }

    def _tame_notifications_handler(self, retention: logs.RetentionDays) -> None:
        """Give CDK's bucket-notifications Lambda a log group with retention and a role
        that can write only there (instead of AWSLambdaBasicExecutionRole)."""
        handler = self.node.try_find_child(NOTIFICATIONS_HANDLER_ID)
        if handler is None:
            raise RuntimeError("CDK's bucket notifications handler moved; update stack.py")
        function = handler.node.find_child("Resource")
        role = handler.node.find_child("Role")
        assert isinstance(function, cdk.CfnResource) and isinstance(role, iam.Role)
        self.notifications_handler_role = role
        log_group = logs.LogGroup(
            self,
            "NotificationsHandlerLogs",
            log_group_name=cdk.Fn.join("", ["/aws/lambda/", function.ref]),
            retention=retention,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        policy = iam.Policy(
            self,
            "NotificationsHandlerLogging",
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[log_group.log_group_arn],
                )
            ],
        )
        policy.attach_to_role(role)
        cfn_role = role.node.default_child
        assert isinstance(cfn_role, iam.CfnRole)
        cfn_role.add_property_deletion_override("ManagedPolicyArns")
        drop_implied_role_dependency(function, cfn_role)
        # Its first run must find the group (else Lambda creates one without retention).
        for bucket in (self.storage.raw, self.storage.input):
            notifications = bucket.node.try_find_child("Notifications")
            assert notifications is not None
            notifications.node.add_dependency(log_group, policy)

    def _outputs(self) -> None:
        storage, sm = self.storage, self.pipeline.state_machine
        region = self.region

        def output(key: str, value: str, description: str) -> None:
            cdk.CfnOutput(self, key, value=value, description=description)

        output(Output.RAW_BUCKET, storage.raw.bucket_name, "RAW uploads: raw/<job_id>/")
        output(
            Output.PROCESSED_BUCKET,
            storage.processed.bucket_name,
            "Renditions: processed/<job_id>/",
        )
        output(Output.INPUT_BUCKET, storage.input.bucket_name, "Images to thumbnail")
        output(Output.OUTPUT_BUCKET, storage.output.bucket_name, "Thumbnails")
        output(Output.JOBS_TABLE, storage.jobs.table_name, "One item per job")
        output(Output.WORKERS_TABLE, storage.workers.table_name, "One lease per pool instance")
        output(Output.STATE_MACHINE_ARN, sm.state_machine_arn, "The RAW job state machine")
        output(
            Output.API_URL,
            self.api.url,
            "The delivery API (IAM-signed routes; GET /share/{token} is public)",
        )
        output(Output.UPLOADS_TABLE, storage.uploads.table_name, "Jobs the API declared")
        output(Output.SHARES_TABLE, storage.shares.table_name, "Client share links (hashed)")
        output(
            Output.SENDER_IDENTITY,
            self.delivery.sender_identity or names.OUTPUT_NONE,
            "The SES identity delivery mail is sent from (verify it; README: leaving the "
            "SES sandbox)",
        )
        output(
            ExtraOutput.STATE_MACHINE_CONSOLE_URL,
            f"https://{region}.console.aws.amazon.com/states/home?region={region}"
            f"#/statemachines/view/{sm.state_machine_arn}",
            "Executions in the Step Functions console",
        )
        output(
            ExtraOutput.DASHBOARD_URL,
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#dashboards:name={names.dashboard_name(region, self.stack_name)}",
            "The darkroom CloudWatch dashboard",
        )
        output(
            ExtraOutput.WORKER_INSTANCE_IDS,
            cdk.Fn.join(",", self.worker_pool.instance_ids),
            "The worker pool (Session Manager targets)",
        )
        output(
            ExtraOutput.THUMBNAIL_FAILURE_QUEUE_URL,
            self.thumbnails.failures.queue_url,
            "Thumbnail events that failed every retry",
        )
        output(
            ExtraOutput.SUBMISSION_FAILURE_QUEUE_URL,
            self.pipeline.submission_failures.queue_url,
            "Job submissions the orchestrator could not start",
        )
        output(
            ExtraOutput.ALARM_TOPIC_ARN,
            self.monitoring.topic.topic_arn,
            "Subscribe to be told about alarms",
        )
        if self.edge is not None:
            output(
                ExtraOutput.EDGE_URL,
                self.edge.url,
                "Where client share links point: CloudFront and its web ACL",
            )
            output(
                ExtraOutput.EDGE_DISTRIBUTION_DOMAIN,
                self.edge.distribution.distribution_domain_name,
                "Point a custom share domain's DNS (CNAME or alias) here",
            )
