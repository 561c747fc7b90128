"""An execution ended (EventBridge status change): leave its job terminal, free its worker."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import endings
from darkroom.aws.job_events import JobEvents
from darkroom.aws.job_store import JobStore
from darkroom.aws.lease_store import LeaseStore
from darkroom.aws.pool_instances import PoolInstances
from darkroom.observability import configure, logger
from darkroom.settings import ReconcileEndingSettings, load
from darkroom.tracing import tracer

settings = load(ReconcileEndingSettings)
configure(settings)
jobs = JobStore(settings.jobs_table, events=JobEvents())
leases = LeaseStore(settings.workers_table)
pool = PoolInstances()


@logger.inject_lambda_context(correlation_id_path="detail.name")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ending = endings.Ending.from_event(event)
    return endings.reconcile(ending, jobs=jobs, leases=leases, pool=pool).to_dict()
