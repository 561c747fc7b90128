"""MarkFailed: the job is FAILED with a stable error name and its cause."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pipeline
from darkroom.aws.job_store import JobStore
from darkroom.observability import logger
from darkroom.settings import TaskSettings

settings = TaskSettings()
settings.require("jobs_table")
jobs = JobStore(settings.jobs_table)


@logger.inject_lambda_context(correlation_id_path="input.job_id")
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    # The whole execution input arrives: one typed by hand may lack a (string) job_id.
    job_id = (event.get("input") or {}).get("job_id")
    return pipeline.mark_failed(
        job_id if isinstance(job_id, str) else None,
        event["execution_arn"],
        event.get("error"),
        jobs=jobs,
    )
