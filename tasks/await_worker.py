"""WaitForWorker: hand the execution's task token to the leased instance."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import worker_queue
from darkroom.aws.lease_store import LeaseStore
from darkroom.observability import configure, logger
from darkroom.settings import AwaitWorkerSettings, load
from darkroom.task_events import AwaitWorkerEvent
from darkroom.tracing import tracer

settings = load(AwaitWorkerSettings)
configure(settings)
leases = LeaseStore(settings.workers_table)


@logger.inject_lambda_context(correlation_id_path="job_id")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = AwaitWorkerEvent.model_validate(event)
    worker_queue.await_worker(
        task.instance_id, task.execution_arn, task.task_token, leases=leases, shard=task.shard
    )
    return {"instance_id": task.instance_id, "token_handed_over": True}
