"""StartWorker: lease an idle pool instance to a shard (or a run's packaging) and start
it, or raise NoIdleWorker while the shard waits its turn."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import worker_queue
from darkroom.aws.executions import Executions, ExecutionStatus
from darkroom.aws.job_events import JobEvents
from darkroom.aws.job_store import JobStore
from darkroom.aws.lease_store import LeaseStore
from darkroom.aws.pool_instances import PoolInstances
from darkroom.observability import configure, logger
from darkroom.settings import StartWorkerSettings, load
from darkroom.task_events import StartWorkerEvent
from darkroom.tracing import tracer

settings = load(StartWorkerSettings)
configure(settings)
jobs = JobStore(settings.jobs_table, events=JobEvents())
leases = LeaseStore(settings.workers_table)
pool = PoolInstances()
executions = Executions()


@logger.inject_lambda_context(correlation_id_path="job_id")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = StartWorkerEvent.model_validate(event)
    return worker_queue.start_worker(
        task.job_id,
        task.execution_arn,
        shard=task.shard,
        task=task.task,
        avoid=task.avoid or None,
        # The declared instances and those the pool scaler launched and registered.
        instance_ids=leases.pool(settings.worker_instance_ids),
        declared=settings.worker_instance_ids,
        instance_types=settings.worker_instance_types,
        jobs=jobs,
        leases=leases,
        pool=pool,
        # Fresh per invocation: an execution's status changes between retries.
        execution_status=ExecutionStatus(executions),
    )
