"""RegisterJob: validate the input, list the job's RAW files, write the job record."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pipeline
from darkroom.aws.job_events import JobEvents
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.observability import configure, logger
from darkroom.settings import RegisterJobSettings, load
from darkroom.task_events import RegisterJobEvent
from darkroom.tracing import tracer

settings = load(RegisterJobSettings)
configure(settings)
jobs = JobStore(settings.jobs_table, events=JobEvents())
objects = Objects()


@logger.inject_lambda_context(correlation_id_path="input.job_id")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = RegisterJobEvent.model_validate(event)
    return pipeline.register_job(
        task.input,
        task.execution_arn,
        raw_bucket=settings.raw_bucket,
        jobs=jobs,
        objects=objects,
        heartbeat_seconds=settings.worker_heartbeat_seconds,
        timeout_seconds=settings.job_timeout_seconds,
        shard_size=settings.shard_size,
        pool_size=len(settings.worker_instance_ids),
    )
