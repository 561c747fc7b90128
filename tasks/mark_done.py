"""MarkDone: the job's terminal status (DONE or DONE_WITH_ERRORS), counts and outputs."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pipeline
from darkroom.aws.job_store import JobStore
from darkroom.observability import logger
from darkroom.settings import TaskSettings

settings = TaskSettings()
settings.require("jobs_table")
jobs = JobStore(settings.jobs_table)


@logger.inject_lambda_context(correlation_id_path="job_id")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return pipeline.mark_done(
        event["job_id"], event["execution_arn"], event.get("result") or {}, jobs=jobs
    )
