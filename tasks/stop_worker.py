"""StopWorker / ReleaseWorker: stop the instances and free the leases this execution holds
(one shard's, or every one)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import worker_queue
from darkroom.aws.job_store import JobStore
from darkroom.aws.lease_store import LeaseStore
from darkroom.aws.pool_instances import PoolInstances
from darkroom.observability import configure, logger
from darkroom.settings import StopWorkerSettings, load
from darkroom.task_events import StopWorkerEvent
from darkroom.tracing import tracer

settings = load(StopWorkerSettings)
configure(settings)
leases = LeaseStore(settings.workers_table)
jobs = JobStore(settings.jobs_table)
pool = PoolInstances()


# StopWorker gets job_id; ReleaseWorker gets the whole execution input.
@logger.inject_lambda_context(correlation_id_path="job_id || input.job_id")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = StopWorkerEvent.model_validate(event)
    # The failure path may not know the instance (StartWorker may never have run), and
    # frees every lease the execution holds; a shard's release frees only its own. A
    # shard that finished may hand its instance on running, if more work follows.
    finished = task.instance_id is not None and task.shard is not None and not task.release_only
    return worker_queue.stop_worker(
        task.execution_arn,
        task.instance_id,
        leases=leases,
        pool=pool,
        shard=task.shard,
        more_to_come=(
            worker_queue.shards_to_lease(jobs, task.job_id, task.execution_arn)
            if finished and task.job_id
            else None
        ),
    )
