"""RegisterJob: validate the input, list the job's RAW files, write the job record."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pipeline
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.observability import logger
from darkroom.settings import TaskSettings

settings = TaskSettings()
settings.require("raw_bucket", "jobs_table")
jobs = JobStore(settings.jobs_table)
objects = Objects()


@logger.inject_lambda_context(correlation_id_path="input.job_id")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return pipeline.register_job(
        event.get("input") or {},
        event["execution_arn"],
        raw_bucket=settings.raw_bucket,
        jobs=jobs,
        objects=objects,
        heartbeat_seconds=settings.worker_heartbeat_seconds,
        timeout_seconds=settings.job_timeout_seconds,
    )
