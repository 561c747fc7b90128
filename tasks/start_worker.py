"""StartWorker: lease an idle pool instance and start it, or raise NoIdleWorker."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pipeline
from darkroom.aws.executions import Executions, ExecutionStatus
from darkroom.aws.job_store import JobStore
from darkroom.aws.lease_store import LeaseStore
from darkroom.aws.worker_pool import WorkerPool
from darkroom.observability import logger
from darkroom.settings import TaskSettings

settings = TaskSettings()
settings.require("jobs_table", "workers_table", "worker_instance_ids")
jobs = JobStore(settings.jobs_table)
leases = LeaseStore(settings.workers_table)
pool = WorkerPool()
executions = Executions()


@logger.inject_lambda_context(correlation_id_path="job_id")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return pipeline.start_worker(
        event["job_id"],
        event["execution_arn"],
        instance_ids=settings.worker_instance_ids,
        jobs=jobs,
        leases=leases,
        pool=pool,
        # Fresh per invocation: an execution's status changes between retries.
        execution_status=ExecutionStatus(executions),
    )
