"""StopWorker / ReleaseWorker: stop the instance and free the lease this execution holds."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pipeline
from darkroom.aws.lease_store import LeaseStore
from darkroom.aws.worker_pool import WorkerPool
from darkroom.observability import logger
from darkroom.settings import TaskSettings

settings = TaskSettings()
settings.require("workers_table")
leases = LeaseStore(settings.workers_table)
pool = WorkerPool()


# StopWorker gets job_id; ReleaseWorker gets the whole execution input.
@logger.inject_lambda_context(correlation_id_path="job_id || input.job_id")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The failure path may not know the instance (StartWorker may never have run).
    return pipeline.stop_worker(
        event["execution_arn"], event.get("instance_id"), leases=leases, pool=pool
    )
