"""Submission reconciler (scheduled): start submitted jobs the orchestrator never started."""

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import submissions
from darkroom.aws.executions import Executions
from darkroom.aws.job_store import JobStore
from darkroom.aws.queues import FailureQueue
from darkroom.aws.uploads import UploadStore
from darkroom.observability import configure, logger
from darkroom.settings import ReconcileSubmissionsSettings, load
from darkroom.tracing import tracer

settings = load(ReconcileSubmissionsSettings)
configure(settings)
uploads = UploadStore(settings.uploads_table)
jobs = JobStore(settings.jobs_table)
executions = Executions(settings.state_machine_arn)
failures = FailureQueue(settings.submission_failures_queue_url)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return submissions.reconcile(
        uploads=uploads,
        jobs=jobs,
        executions=executions,
        failures=failures,
        raw_bucket=settings.raw_bucket,
        resubmit_after=timedelta(seconds=settings.resubmit_after_seconds),
    ).to_dict()
