"""StopWorker / ReleaseWorker: stop the instances and free the leases this execution holds
(one shard's, or every one)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import worker_queue
from darkroom.aws.lease_store import LeaseStore
from darkroom.aws.pool_instances import PoolInstances
from darkroom.observability import configure, logger
from darkroom.settings import StopWorkerSettings, load
from darkroom.task_events import StopWorkerEvent
from darkroom.tracing import tracer

settings = load(StopWorkerSettings)
configure(settings)
leases = LeaseStore(settings.workers_table)
pool = PoolInstances()


# StopWorker gets job_id; ReleaseWorker gets the whole execution input.
@logger.inject_lambda_context(correlation_id_path="job_id || input.job_id")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = StopWorkerEvent.model_validate(event)
    # The failure path may not know the instance (StartWorker may never have run), and
    # frees every lease the execution holds; a shard's release frees only its own.
    return worker_queue.stop_worker(
        task.execution_arn, task.instance_id, leases=leases, pool=pool, shard=task.shard
    )
