"""Pool scaler (every minute): launch pool instances while shards wait, terminate the
ones it launched once idle (darkroom/pool_scaler.py)."""

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pool_scaler
from darkroom.aws.lease_store import LeaseStore
from darkroom.aws.pool_instances import PoolInstances
from darkroom.observability import configure, logger, metrics
from darkroom.settings import PoolScalerSettings, load
from darkroom.tracing import tracer

settings = load(PoolScalerSettings)
configure(settings)
instances = PoolInstances()
leases = LeaseStore(settings.workers_table)
# Instance types do not change size while the function is warm.
_vcpus: dict[str, int] = {}


def _limits() -> pool_scaler.Limits:
    if not _vcpus:
        _vcpus.update(instances.vcpus(settings.worker_instance_types))
    return pool_scaler.Limits(
        max_instances=settings.pool_max_instances,
        max_vcpus=settings.pool_max_vcpus,
        scale_up_after=timedelta(seconds=settings.pool_scale_up_after_seconds),
        idle_for=timedelta(seconds=settings.pool_idle_terminate_seconds),
        launch_vcpus=_vcpus.get(settings.worker_instance_types[0], 0),
        vcpus=dict(_vcpus),
    )


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = pool_scaler.run(
        settings.worker_instance_ids,
        instances=instances,
        leases=leases,
        template=settings.pool_launch_template,
        limits=_limits(),
        subnet_ids=settings.worker_subnet_ids,
    )
    plan = outcome.plan
    metrics.add_metric(pool_scaler.METRIC_POOL_SIZE, MetricUnit.Count, plan.live)
    metrics.add_metric(pool_scaler.METRIC_WAITING, MetricUnit.Count, plan.waiting)
    metrics.add_metric(pool_scaler.METRIC_LAUNCHED, MetricUnit.Count, len(outcome.launched))
    metrics.add_metric(pool_scaler.METRIC_TERMINATED, MetricUnit.Count, len(outcome.terminated))
    if outcome.errors:
        # The Errors metric shows it; the next pass repairs what this one left.
        raise pool_scaler.ScalerFailed("; ".join(outcome.errors))
    return {
        "live": plan.live,
        "waiting": plan.waiting,
        "launched": outcome.launched,
        "registered": outcome.registered,
        "terminated": outcome.terminated,
        "forgotten": outcome.forgotten,
    }
