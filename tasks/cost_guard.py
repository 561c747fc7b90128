"""Cost guard (every few minutes): stop pool instances running without an active lease."""

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import cost_guard
from darkroom.aws.executions import ExecutionStatus
from darkroom.aws.lease_store import LeaseStore
from darkroom.aws.pool_instances import PoolInstances
from darkroom.observability import configure, logger, metrics
from darkroom.settings import CostGuardSettings, load
from darkroom.tracing import tracer

settings = load(CostGuardSettings)
configure(settings)
instances = PoolInstances()
leases = LeaseStore(settings.workers_table)


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = cost_guard.run(
        # The declared instances and those the pool scaler launched.
        leases.pool(settings.worker_instance_ids),
        instances=instances,
        leases=leases,
        # Fresh per run: an execution's status changes between runs.
        execution_status=ExecutionStatus(),
        max_idle=timedelta(seconds=settings.cost_guard_max_idle_seconds),
    )
    decision = outcome.decision
    metrics.add_metric(cost_guard.METRIC_RUNNING, MetricUnit.Count, decision.running)
    metrics.add_metric(cost_guard.METRIC_UNLEASED, MetricUnit.Count, decision.unleased)
    metrics.add_metric(
        cost_guard.METRIC_LONGEST_RUN, MetricUnit.Seconds, decision.longest_run_seconds
    )
    metrics.add_metric(cost_guard.METRIC_STOPPED, MetricUnit.Count, len(outcome.stopped))
    if outcome.errors:
        # Fail the invocation so the function's Errors metric (and its alarm) shows it.
        raise RuntimeError(f"cost guard could not stop: {'; '.join(outcome.errors)}")
    return {
        "running": decision.running,
        "unleased": decision.unleased,
        "marked": list(decision.mark),
        "stopped": outcome.stopped,
        "released": outcome.released,
    }
