"""MarkDone: the run's manifest written, its renditions and ZIPs delivered, superseded
ones deleted, the job DONE or DONE_WITH_ERRORS."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pipeline
from darkroom.aws.job_events import JobEvents
from darkroom.aws.job_store import JobStore
from darkroom.aws.objects import Objects
from darkroom.observability import configure, logger
from darkroom.settings import MarkDoneSettings, load
from darkroom.task_events import MarkDoneEvent
from darkroom.tracing import tracer

settings = load(MarkDoneSettings)
configure(settings)
jobs = JobStore(settings.jobs_table, events=JobEvents())
objects = Objects()


@logger.inject_lambda_context(correlation_id_path="job_id")
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = MarkDoneEvent.model_validate(event)
    return pipeline.mark_done(
        task.job_id,
        task.execution_arn,
        task.package,
        jobs=jobs,
        objects=objects,
        processed_bucket=settings.processed_bucket,
    )
