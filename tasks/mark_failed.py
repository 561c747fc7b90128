"""MarkFailed: the job is FAILED with a stable error name and its cause. FailShard: only
one shard's pending files are, and the job goes on."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pipeline
from darkroom.aws.job_events import JobEvents
from darkroom.aws.job_store import JobStore
from darkroom.observability import configure, logger
from darkroom.settings import MarkFailedSettings, load
from darkroom.task_events import MarkFailedEvent
from darkroom.tracing import tracer

settings = load(MarkFailedSettings)
configure(settings)
jobs = JobStore(settings.jobs_table, events=JobEvents())


@logger.inject_lambda_context(correlation_id_path="input.job_id")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = MarkFailedEvent.model_validate(event)
    if task.shard is not None:
        return pipeline.fail_shard(
            task.input_job_id, task.execution_arn, task.shard, task.error, jobs=jobs
        )
    return pipeline.mark_failed(task.input_job_id, task.execution_arn, task.error, jobs=jobs)
