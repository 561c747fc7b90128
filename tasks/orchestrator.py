"""S3 `raw/<job_id>/manifest.json` created -> start the job's execution (once)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from darkroom import pipeline
from darkroom.aws.executions import Executions
from darkroom.observability import logger
from darkroom.settings import TaskSettings

settings = TaskSettings()
settings.require("raw_bucket", "state_machine_arn")
executions = Executions(settings.state_machine_arn)


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    job_ids = pipeline.manifest_job_ids(event, settings.raw_bucket)
    started = pipeline.start_jobs(job_ids, executions)
    return {
        "executions": [
            {"job_id": s.job_id, "execution_arn": s.execution_arn, "started": s.started_now}
            for s in started
        ]
    }
