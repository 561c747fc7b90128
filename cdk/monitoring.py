"""The dashboard a studio's engineer keeps open, and the alarms that page them.

Sources: Step Functions' own metrics (executions, durations), Lambda's, SQS's, API
Gateway's (the delivery API's requests, errors, latency), metric filters on the worker's
log lines (files developed and failed), and the cost guard's EMF metrics (instances
running, the longest-running one), which it publishes every run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from cdk.api import DeliveryApi
from cdk.config import (
    METRIC_FILES_DEVELOPED,
    METRIC_FILES_FAILED,
    METRIC_NAMESPACE,
    METRIC_SERVICE_DIMENSION,
    METRIC_WORKER_LONGEST_RUN,
    METRIC_WORKERS_RUNNING,
    METRIC_WORKERS_STOPPED,
    METRIC_WORKERS_UNLEASED,
    WORKER_LOG_FILE_DEVELOPED,
    WORKER_LOG_FILE_FAILED,
    DeployConfig,
)
from darkroom import names
from darkroom.pool_scaler import (
    METRIC_LAUNCHED,
    METRIC_POOL_SIZE,
    METRIC_TERMINATED,
    METRIC_WAITING,
)

FIVE_MINUTES = cdk.Duration.minutes(5)
HOUR = cdk.Duration.hours(1)
# A leased instance may run for the job's timeout plus its boot and install.
WORKER_OVERRUN_MARGIN_SECONDS = 1800
# The delivery API: server errors in five minutes before anyone is told (one is a blip, a
# handful is a broken deploy or a failing dependency), and the p99 latency (ms) that, held
# for 15 minutes, means clients wait (cold starts alone stay well under it).
API_5XX_THRESHOLD = 5
API_P99_LATENCY_MS = 5000


# Shards waiting this long for a worker means the pool cannot grow to meet them.
SHARDS_WAITING_MINUTES = 30


def _guard_metric(name: str, statistic: str, period: cdk.Duration = FIVE_MINUTES) -> cw.Metric:
    """One of the cost guard's or the pool scaler's EMF metrics."""
    return cw.Metric(
        namespace=METRIC_NAMESPACE,
        metric_name=name,
        dimensions_map=dict(METRIC_SERVICE_DIMENSION),
        statistic=statistic,
        period=period,
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: DeployConfig,
        state_machine: sfn.StateMachine,
        pipeline_functions: Mapping[str, lambda_.IFunction],
        thumbnail: lambda_.IFunction,
        cost_guard: lambda_.IFunction,
        failure_queues: Mapping[str, sqs.IQueue],
        worker_logs: logs.ILogGroup,
        api: DeliveryApi,
    ) -> None:
        super().__init__(scope, id)

        # -- metrics from the worker's JSON log lines (worker/job.py) -----------------
        def file_metric(id: str, message: str, metric_name: str) -> cw.Metric:
            logs.MetricFilter(
                self,
                id,
                log_group=worker_logs,
                filter_pattern=logs.FilterPattern.string_value("$.message", "=", message),
                metric_namespace=METRIC_NAMESPACE,
                metric_name=metric_name,
                metric_value="1",
            )
            return cw.Metric(
                namespace=METRIC_NAMESPACE, metric_name=metric_name, statistic="Sum", period=HOUR
            )

        files_developed = file_metric(
            "FilesDevelopedFilter", WORKER_LOG_FILE_DEVELOPED, METRIC_FILES_DEVELOPED
        )
        files_failed = file_metric("FilesFailedFilter", WORKER_LOG_FILE_FAILED, METRIC_FILES_FAILED)

        # -- alarms ---------------------------------------------------------------------
        stack = cdk.Stack.of(self)
        # The stack's name: the sender of every alarm mail, telling two stacks apart.
        alarms_name = f"{stack.stack_name} alarms"
        self.topic = sns.Topic(self, "Alarms", display_name=alarms_name, enforce_ssl=True)
        # enforce_ssl writes a topic policy, and a topic policy replaces SNS's default
        # one: without this Allow, CloudWatch could not publish and no alarm would arrive.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        notify = cw_actions.SnsAction(self.topic)

        self.alarms: dict[str, cw.Alarm] = {}

        def alarm(id: str, metric: cw.IMetric, description: str, **props: object) -> cw.Alarm:
            created = cw.Alarm(
                self,
                id,
                metric=metric,
                alarm_description=description,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                **props,  # type: ignore[arg-type]
            )
            created.add_alarm_action(notify)
            self.alarms[id] = created
            return created

        alarm(
            "FailedExecutions",
            cw.MathExpression(
                expression="FILL(failed, 0) + FILL(timedOut, 0)",
                using_metrics={
                    "failed": state_machine.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
                    "timedOut": state_machine.metric_timed_out(
                        period=FIVE_MINUTES, statistic="Sum"
                    ),
                },
                label="failed + timed out executions",
                period=FIVE_MINUTES,
            ),
            "A RAW job's execution failed or timed out: see the execution in the Step "
            "Functions console, fix the cause, then `darkroom reprocess <job>`.",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        for name, queue in failure_queues.items():
            alarm(
                f"{name}Queued",
                queue.metric_approximate_number_of_messages_visible(
                    period=FIVE_MINUTES, statistic="Maximum"
                ),
                f"Events whose {name.lower()} function failed after every retry are waiting "
                "on the on-failure queue: read them, fix the cause, redrive or resubmit.",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            )
        alarm(
            "WorkerRunningTooLong",
            _guard_metric(METRIC_WORKER_LONGEST_RUN, "Maximum"),
            "A pool instance has been running longer than the longest job allowed "
            f"({config.job_timeout_seconds} s plus {WORKER_OVERRUN_MARGIN_SECONDS} s to boot): "
            "it is burning money. Check its lease and the cost guard.",
            threshold=config.job_timeout_seconds + WORKER_OVERRUN_MARGIN_SECONDS,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        alarm(
            "ApiServerErrors",
            api.http_api.metric_server_error(period=FIVE_MINUTES, statistic="Sum"),
            f"The delivery API answered {API_5XX_THRESHOLD} or more requests with a 5xx in "
            "five minutes: see the API function's log group and the API's access logs.",
            threshold=API_5XX_THRESHOLD,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        alarm(
            "ApiLatency",
            api.http_api.metric_latency(period=FIVE_MINUTES, statistic="p99"),
            f"The delivery API's p99 latency has stayed over {API_P99_LATENCY_MS} ms for 15 "
            "minutes: see the API function's duration and its log group.",
            threshold=API_P99_LATENCY_MS,
            evaluation_periods=3,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        alarm(
            "ApiFunctionErrors",
            api.function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
            "The API function failed outright (a timeout, a crash at start-up, memory): "
            "it answers errors itself otherwise. See its log group.",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        alarm(
            "ShardsWaiting",
            _guard_metric(METRIC_WAITING, "Minimum"),
            f"Shards have waited for a worker for {SHARDS_WAITING_MINUTES} minutes without "
            "a break: the pool is at its maximum (pool_max_size, pool_max_vcpus) or the "
            "scaler's launches fail (capacity, the vCPU quota: see its log group). Jobs are "
            "queued, not lost; they start as workers free up.",
            threshold=1,
            evaluation_periods=SHARDS_WAITING_MINUTES // 5,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )
        alarm(
            "CostGuardFailing",
            cost_guard.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
            "The cost guard is failing: idle workers may not be stopped. See its log group.",
            threshold=1,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        )

        # -- the dashboard --------------------------------------------------------------
        instance_hours = cw.MathExpression(
            expression=f"FILL(running, 0) * {names.COST_GUARD_SCHEDULE_MINUTES} / 60",
            using_metrics={"running": _guard_metric(METRIC_WORKERS_RUNNING, "Sum", HOUR)},
            label="worker instance hours",
            period=HOUR,
        )
        executions = [
            state_machine.metric_started(statistic="Sum", period=HOUR, label="started"),
            state_machine.metric_succeeded(statistic="Sum", period=HOUR, label="succeeded"),
            state_machine.metric_failed(statistic="Sum", period=HOUR, label="failed"),
            state_machine.metric_timed_out(statistic="Sum", period=HOUR, label="timed out"),
            state_machine.metric_aborted(statistic="Sum", period=HOUR, label="aborted"),
        ]
        duration = [
            state_machine.metric_time(statistic=stat, period=HOUR, label=f"job duration {stat}")
            for stat in ("Average", "p90", "Maximum")
        ]
        self.dashboard = cw.Dashboard(
            self,
            "Dashboard",
            dashboard_name=names.dashboard_name(stack.region, stack.stack_name),
            default_interval=cdk.Duration.days(7),
        )
        self.dashboard.add_widgets(
            cw.TextWidget(
                markdown=f"# {stack.stack_name}\nRAW jobs (Step Functions + EC2 workers), "
                "thumbnails (S3 + Lambda) and the delivery API (API Gateway + Lambda). Alarms "
                f"notify the `{alarms_name}` SNS topic.",
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="RAW executions by outcome", left=executions, width=12, stacked=True
            ),
            cw.GraphWidget(title="Job duration (execution time, ms)", left=duration, width=12),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Files developed and failed",
                left=[
                    files_developed.with_(label="developed"),
                    files_failed.with_(label="failed"),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Worker instance hours (per hour)",
                left=[instance_hours],
                right=[
                    _guard_metric(METRIC_WORKERS_UNLEASED, "Maximum").with_(
                        label="running without a lease"
                    ),
                    _guard_metric(METRIC_WORKERS_STOPPED, "Sum").with_(
                        label="stopped by the cost guard"
                    ),
                ],
                width=8,
            ),
            cw.SingleValueWidget(
                title="Worker instance hours (dashboard range)",
                metrics=[instance_hours],
                set_period_to_time_range=True,
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Thumbnails: invocations, errors, throttles",
                left=[
                    thumbnail.metric_invocations(statistic="Sum", period=FIVE_MINUTES),
                    thumbnail.metric_errors(statistic="Sum", period=FIVE_MINUTES),
                    thumbnail.metric_throttles(statistic="Sum", period=FIVE_MINUTES),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Thumbnails: duration (ms)",
                left=[
                    thumbnail.metric_duration(statistic=stat, period=FIVE_MINUTES, label=stat)
                    for stat in ("p50", "p99", "Maximum")
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Function errors (pipeline, cost guard, API)",
                left=_errors({**pipeline_functions, "cost guard": cost_guard, "api": api.function}),
                width=12,
            ),
            cw.GraphWidget(
                title="On-failure queues (messages waiting)",
                left=[
                    queue.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", period=FIVE_MINUTES, label=name
                    )
                    for name, queue in failure_queues.items()
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Delivery API: requests, 4xx, 5xx",
                left=[
                    api.http_api.metric_count(
                        statistic="Sum", period=FIVE_MINUTES, label="requests"
                    ),
                    api.http_api.metric_client_error(
                        statistic="Sum", period=FIVE_MINUTES, label="4xx"
                    ),
                    api.http_api.metric_server_error(
                        statistic="Sum", period=FIVE_MINUTES, label="5xx"
                    ),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Delivery API: latency (ms)",
                left=[
                    api.http_api.metric_latency(statistic=stat, period=FIVE_MINUTES, label=stat)
                    for stat in ("p50", "p99", "Maximum")
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Worker pool: instances and shards waiting",
                left=[
                    _guard_metric(METRIC_POOL_SIZE, "Maximum").with_(label="instances"),
                    _guard_metric(METRIC_WAITING, "Maximum").with_(label="shards waiting"),
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Worker pool: launched and terminated by the scaler",
                left=[
                    _guard_metric(METRIC_LAUNCHED, "Sum").with_(label="launched"),
                    _guard_metric(METRIC_TERMINATED, "Sum").with_(label="terminated"),
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24)
        )


def _errors(functions: Mapping[str, lambda_.IFunction]) -> Sequence[cw.IMetric]:
    return [
        fn.metric_errors(statistic="Sum", period=FIVE_MINUTES, label=name)
        for name, fn in sorted(functions.items())
    ]
