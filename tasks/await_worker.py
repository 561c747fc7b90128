"""WaitForWorker: hand the execution's task token to the leased instance."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pipeline
from darkroom.aws.lease_store import LeaseStore
from darkroom.observability import logger
from darkroom.settings import TaskSettings

settings = TaskSettings()
settings.require("workers_table")
leases = LeaseStore(settings.workers_table)


@logger.inject_lambda_context(correlation_id_path="job_id")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    pipeline.await_worker(
        event["instance_id"], event["execution_arn"], event["task_token"], leases=leases
    )
    return {"instance_id": event["instance_id"], "token_handed_over": True}
